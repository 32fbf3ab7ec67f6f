"""HumanEval-X: data, program assembly, and per-language execution in the sandbox.

Each language's tests skip with the toolchain's install hint where its compiler or runtime is
missing (setup.sh installs them; CI has them). The full 164-problem check of the reference
solutions is `python -m prunekit.evaluation.canonical humaneval-x` (slow; run by hand).
"""

from __future__ import annotations

import pytest

from prunekit.errors import PrunekitError
from prunekit.evaluation import humaneval_x as hx
from prunekit.evaluation.benchmarks import get_benchmark
from prunekit.evaluation.sandbox import Limits, run_many
from prunekit.evaluation.toolchains import TOOLCHAINS

COMPILED = ("cpp", "java", "js", "go")
FIRST = 5
FAST = Limits(wall_s=5.0, cpu_s=5)
# a body that compiles and returns a wrong value for each language's first problems is hard to
# write generically; an always-false assertion in place of the body fails every problem
WRONG = {
    "cpp": "    abort();\n}\n",
    "java": "        throw new AssertionError();\n    }\n}\n",
    "js": "  throw new Error('wrong')\n}\n",
    "go": '    panic("wrong")\n}\n',
    "python": "    raise AssertionError('wrong')\n",
}
SYNTAX = {
    "cpp": "    return 1 +;\n}\n",
    "java": "        return 1 +;\n    }\n}\n",
    "go": "    return 1 +\n}\n",
}
FOREVER = {
    "cpp": "    while (true) {}\n}\n",
    "java": "        while (true) {}\n    }\n}\n",
    "js": "  while (true) {}\n}\n",
    "go": "    for {\n    }\n}\n",
}
EARLY_EXIT = {
    "cpp": "    exit(0);\n}\n",
    "java": "        System.exit(0);\n        throw new RuntimeException();\n    }\n}\n",
    "js": "  process.exit(0)\n}\n",
    "go": "    prunekitwos.Exit(0)\n    panic(0)\n}\n",  # os, as the Go server stub imports it
}


def needs(lang: str):
    """Skip (with the install hint) where this language's toolchain is missing."""
    tool = TOOLCHAINS.get(lang)
    why = tool.missing() if tool else None
    return pytest.mark.skipif(why is not None, reason=why or "")


def _run(lang: str, completions: list[str], problems=None) -> list:
    bench = get_benchmark(f"humaneval-x:{lang}")
    bench.preflight()
    problems = problems or bench.load(len(completions))
    checks = [bench.check(p, c, "completion") for p, c in zip(problems, completions)]
    return run_many(checks, FAST, workers=2)


@pytest.mark.parametrize("lang", ["cpp", "java", "js", "go", "python"])
def test_data_has_164_problems_per_language(lang):
    problems = hx.load_problems(lang)
    assert len(problems) == 164 and len({p.task_id for p in problems}) == 164
    assert all(p.prompt and p.test and p.canonical_solution for p in problems)
    assert hx.load_problems(lang, limit=3) == problems[:3]


def test_unknown_language_and_bad_limit_are_one_line():
    with pytest.raises(PrunekitError, match="choose one of: cpp, java, js, go, python"):
        hx.language("rust")
    with pytest.raises(PrunekitError, match="--limit"):
        hx.load_problems("cpp", limit=0)


@pytest.mark.parametrize(
    "lang", [pytest.param(x, marks=needs(x)) for x in ("cpp", "java", "js", "go", "python")]
)
def test_first_canonical_solutions_pass_and_broken_ones_fail(lang):
    problems = hx.load_problems(lang, FIRST)
    good = _run(lang, [p.canonical_solution for p in problems], problems)
    assert [r.error for r in good] == [None] * FIRST, [r.detail for r in good]
    bad = _run(lang, [WRONG[lang]] * FIRST, problems)
    assert not any(r.passed for r in bad)
    assert all(r.error in ("assertion", "exception", "exit", "killed") for r in bad), [
        (r.error, r.detail) for r in bad
    ]


@pytest.mark.parametrize("lang", [pytest.param(x, marks=needs(x)) for x in SYNTAX])
def test_compile_error_fails_as_compile(lang):
    (res,) = _run(lang, [SYNTAX[lang]])
    assert not res.passed and res.error == "compile" and res.detail


@pytest.mark.parametrize("lang", [pytest.param(x, marks=needs(x)) for x in FOREVER])
def test_infinite_loop_times_out(lang):
    (res,) = _run(lang, [FOREVER[lang]])
    assert not res.passed and res.error in ("timeout", "cpu_limit"), (res.error, res.detail)


@pytest.mark.parametrize("lang", [pytest.param(x, marks=needs(x)) for x in EARLY_EXIT])
def test_exiting_0_before_the_tests_end_fails(lang):
    """exit(0) from the candidate is no pass: split, the tests see the candidate stop
    answering; in-process, the end marker is printed after the last test."""
    (res,) = _run(lang, [EARLY_EXIT[lang]])
    if lang in hx.SPLITTERS:
        assert not res.passed and res.error == "exit", (res.error, res.detail)
        assert "before answering every call" in res.detail
    else:
        assert not res.passed and res.error == "no_marker", (res.error, res.detail)


@pytest.mark.parametrize("lang", [pytest.param(x, marks=needs(x)) for x in ("cpp", "java")])
def test_a_candidate_main_cannot_replace_the_tests(lang):
    extra = {
        "cpp": "    return false;\n}\nint main() { return 0; }\n",
        "java": "        return false;\n    }\n}\nclass PrunekitRunner { public static void main(String[] a) {} }\n",
    }[lang]
    (res,) = _run(lang, [extra])
    assert not res.passed and res.error == "compile"


def test_completion_is_cut_after_the_closing_brace():
    java, py = hx.LANGUAGES["java"], hx.LANGUAGES["python"]
    text = "        return 1;\n    }\n}\n\npublic class Main {}\n"
    assert hx.cut_completion(text, java) == "        return 1;\n    }\n}\n"
    assert hx.cut_completion("}\nint main(){}", hx.LANGUAGES["cpp"]) == "}\n"
    assert hx.cut_completion("  return 1\n}\n```\nmore", hx.LANGUAGES["js"]) == "  return 1\n}\n"
    assert hx.cut_completion("    return 1\n\ndef g():\n", py) == "    return 1\n"
    assert hx.cut_completion("  no close", java) == "  no close"


def test_cpp_program_wraps_the_tests_and_adds_missing_includes():
    p = hx.load_problems("cpp", 1)[0]
    src = hx._cpp_program(p, p.canonical_solution, "MARK")["main.cpp"]
    assert "#include<algorithm>" in src and src.count("#include<vector>") == 1
    assert "int prunekit_tests(" in src and src.count("int main(") == 1
    assert src.index("prunekit_tests();") > src.index("int prunekit_tests(")
    assert '"MARK"' in src


def test_go_program_imports_only_the_packages_the_code_names():
    p = hx.load_problems("go", 1)[0]  # its prompt imports "math"
    src = hx._go_program(p, p.canonical_solution, "MARK")["main_test.go"]
    assert src.count('"math"') == 1  # the prompt's block replaced by the one the code needs
    assert hx.go_imports(p, "    return true\n}\n") == ""
    assert hx.go_imports(p, '    s := strings.Split(fmt.Sprint(1), "")\n') == (
        'import (\n    "strings"\n    "fmt"\n)\n'
    )
    assert src.count("package main") == 1 and "func TestMain(" in src


def test_java_program_keeps_solution_beside_main():
    p = hx.load_problems("java", 1)[0]
    files = hx._java_program(p, p.canonical_solution, "MARK")
    assert files["Main.java"] == p.prompt + p.canonical_solution + "\n" + p.test
    assert "Main.main(args)" in files["PrunekitRunner.java"]


def test_python_uses_the_judge_with_the_tests_own_check_call():
    bench = get_benchmark("humaneval-x:python")
    p = bench.load(1)[0]
    check = bench.check(p, p.canonical_solution, "completion")
    assert check.entry_point == "has_close_elements" and check.test == p.test


@pytest.fixture(scope="module")
def chat_tokenizer():
    from conftest import _train_tokenizer

    tok = _train_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return tok


@pytest.mark.parametrize("lang", ["cpp", "java", "js", "go", "python"])
def test_chat_prompt_shows_the_problem_and_prefills_the_reply(lang, chat_tokenizer):
    bench = get_benchmark(f"humaneval-x:{lang}")
    p = bench.load(1)[0]
    fence = hx.LANGUAGES[lang].fence
    text = bench.prompt(p, "chat", chat_tokenizer)
    user = hx.CHAT_INSTRUCTION.format(
        display=hx.LANGUAGES[lang].display, fence=fence, prompt=p.prompt.strip()
    )
    assert text == f"<|user|>{user}<|end|><|assistant|>```{fence}\n{p.prompt}"
    assert bench.prompt(p, "completion", chat_tokenizer) == p.prompt
    # the reply continues the prompt, so chat and completion assemble the same program
    reply = p.canonical_solution + "\n```\nThis function ..."
    assert bench.completion(reply, "chat").strip() == p.canonical_solution.strip()
    assert "\n```" in bench.stops("chat")
    ids = chat_tokenizer(text)["input_ids"]
    assert chat_tokenizer.decode(ids) == text  # what the model sees is exactly this text


@pytest.mark.parametrize("lang", [pytest.param(x, marks=needs(x)) for x in COMPILED])
def test_report_names_the_toolchain_versions(lang):
    ident = get_benchmark(f"humaneval-x:{lang}").identity()
    tools = {k: v for k, v in ident["toolchain"].items() if k not in ("language", "package")}
    assert tools and all(v != "unknown" for v in tools.values()), tools
    assert "marker" in ident["verdict"]
    modes = ident["verdict_modes"]
    if lang in hx.SPLITTERS:  # every problem's signature has stubs: no silent fallback
        assert modes == {"split": 164, "in_process": 0, "in_process_tasks": []}
        assert "their own sandboxed process" in ident["verdict"]
    else:
        assert modes["in_process"] == 164 and "forgeable" in ident["verdict"]


def test_missing_toolchain_names_the_debian_package(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(PrunekitError, match="apt-get install openjdk-17-jdk-headless"):
        get_benchmark("humaneval-x:java").preflight()
    assert "apt-get install golang-go" in TOOLCHAINS["go"].missing()
