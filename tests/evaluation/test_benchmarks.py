"""The benchmark registry and HumanEval as its entry (same prompts, stops, checks as before)."""

from __future__ import annotations

import pytest

from prunekit.errors import PrunekitError
from prunekit.evaluation import humaneval as he
from prunekit.evaluation.benchmarks import (
    REGISTRY,
    CodeBenchmark,
    benchmark_names,
    expand,
    get_benchmark,
)


def test_names_list_every_entry_and_the_family():
    names = benchmark_names()
    assert names[0] == "humaneval" and "humaneval-x" in names
    for lang in ("cpp", "java", "js", "go", "python"):
        assert f"humaneval-x:{lang}" in REGISTRY


def test_expand_families_aliases_and_order():
    assert expand(["humaneval-x"]) == [
        f"humaneval-x:{x}" for x in ("cpp", "java", "js", "go", "python")
    ]
    assert expand(["HumanEval-X:C++", "humaneval-x:javascript", "humaneval"]) == [
        "humaneval-x:cpp",
        "humaneval-x:js",
        "humaneval",
    ]
    assert expand(["humaneval", "humaneval"]) == ["humaneval"]


@pytest.mark.parametrize("bad", ["mbpp", "humaneval-x:rust", "humaneval:java"])
def test_unknown_name_is_one_line_listing_the_valid_ones(bad):
    with pytest.raises(PrunekitError) as exc:
        expand([bad])
    msg = str(exc.value)
    assert "\n" not in msg and bad in msg and "humaneval-x:java" in msg


def test_a_family_is_not_one_benchmark():
    with pytest.raises(PrunekitError, match="several benchmarks"):
        get_benchmark("humaneval-x")


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_entry_builds_and_names_itself(name):
    bench = get_benchmark(name)
    assert isinstance(bench, CodeBenchmark) and bench.name == name and bench.size == 164
    assert bench.problems_file.endswith("_problems.jsonl") and ":" not in bench.problems_file


def test_humaneval_entry_is_the_old_humaneval():
    bench = get_benchmark("humaneval")
    assert bench.title == "HumanEval" and bench.problems_file == "humaneval_problems.jsonl"
    problem = he.load_problems(limit=1)[0]
    assert bench.load(1) == [problem]
    assert bench.prompt(problem, "completion", None) == problem.prompt
    assert bench.stops("completion") == he.COMPLETION_STOPS
    assert bench.stops("chat") == he.CHAT_STOPS
    text = "    return 1\n\ndef helper():\n    pass\n"
    assert bench.completion(text, "completion") == "    return 1\n"
    reply = "def f():\n    return 1\n```\nexplanation"
    assert bench.completion(reply, "chat") == he.extract_code(
        he.truncate_at_stops(reply, he.CHAT_STOPS)
    )
    assert bench.check(problem, "    return 1\n", "completion") == he.build_check(
        problem, "    return 1\n", "completion"
    )
    assert bench.identity() == {}  # the report's HumanEval section keeps its keys
