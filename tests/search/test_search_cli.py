"""`prunekit search` on the command line: a tiny end-to-end run writes the model, plan, candidate
plans, reports and plot; `--plan` rebuilds the same model; bad input is one line before work."""

from __future__ import annotations

import json

import pytest
import torch

from prunekit.cli import main

FAST = [
    "--calib-samples", "8", "--seq-len", "128", "--multiple", "8", "--offspring", "4",
    "--ffn-levels", "1,0.75,0.5,0.25", "--no-progress",
]  # fmt: skip


def test_search_end_to_end_and_plan_rebuild(tiny_model_dir, answering, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "out"
    argv = ["search", str(tiny_model_dir), "--budget", "params=0.7", "--max-generations", "3"]
    judge = ["--humaneval", "--humaneval-limit", "1", "--max-new-tokens", "8"]
    assert main([*argv, *FAST, *judge, "-o", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"plan.json", "report.json", "report.md", "pareto.png", "model.safetensors"} <= names
    assert (out / "candidates" / "plan_00.json").is_file()
    assert not (tmp_path / "out.search-work").exists()  # removed after a finished search
    report = json.loads((out / "report.json").read_text())
    s = report["search"]
    assert s["generations"] == 3 and s["budget"]["chosen"] <= s["budget"]["limit"]
    assert "pass@1" in report["evaluation"]["humaneval"]  # judged after the search, on the export
    stages = list(report["timings_s"])
    assert stages.index("humaneval_after_search") > stages.index("search")
    assert (out / "humaneval.jsonl").is_file()
    assert "best fitness (KL)" in capsys.readouterr().out
    plan = json.loads((out / "plan.json").read_text())
    assert plan["levels"] == s["best"]["levels"]

    again = tmp_path / "again"
    assert (
        main(["search", str(tiny_model_dir), "--plan", str(out / "plan.json"), "-o", str(again)])
        == 0
    )
    per_layer = "auto_map" in json.loads((out / "config.json").read_text())
    a = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=per_layer)
    b = AutoModelForCausalLM.from_pretrained(again, trust_remote_code=per_layer)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    by_recipe = tmp_path / "by_recipe"  # the recipe.yaml the search wrote rebuilds it too
    assert main(["run", str(out / "recipe.yaml"), "-o", str(by_recipe)]) == 0
    sc = AutoModelForCausalLM.from_pretrained(by_recipe, trust_remote_code=per_layer).state_dict()
    assert sa.keys() == sc.keys() and all(torch.equal(sa[k], sc[k]) for k in sa)
    ids = torch.tensor([[1, 5, 9, 20, 7]])
    assert torch.isfinite(a(ids).logits).all()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "params=lots"], "cannot read --budget 'params=lots'"),
        (["--budget", "params=0.01"], "is impossible with these levels"),
        (["--budget", "params=0.7", "--calib", "python"], "is not answered:CORPUS"),
        (["--budget", "params=0.7", "--calib", "answered:humaneval"], "names HumanEval"),
        (["--budget", "params=0.7", "--stages", "0.5,0.25,1"], "must ascend and end at 1"),
        (["--budget", "params=0.7", "--resume"], None),  # default work dir has no state
        (["--budget", "params=0.7", "--vocabulary", "nonesuch"], "--vocabulary: data 'nonesuch'"),
    ],
)
def test_bad_input_is_one_line_before_work(
    tiny_model_dir, tmp_path, capsys, monkeypatch, extra, message
):
    def no_calibration(*a, **k):
        raise AssertionError("calibration started")

    monkeypatch.setattr("prunekit.search.run._calibration", no_calibration)
    out = tmp_path / "out"
    assert main(["search", str(tiny_model_dir), *extra, *FAST, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the model's loading bar, if any
    assert err.startswith("prunekit: error:")
    assert message is None or message in err
    assert not out.exists()


def test_humaneval_text_in_the_fitness_corpus_is_refused(tiny_model_dir, tmp_path, capsys):
    from prunekit.evaluation.humaneval import load_problems

    p = load_problems(limit=1)[0]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "leak.py").write_text(p.prompt + p.canonical_solution)
    argv = [
        "search",
        str(tiny_model_dir),
        "--budget",
        "params=0.7",
        "--calib",
        f"answered:{corpus}",
    ]
    assert main([*argv, *FAST, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "shares a 13-gram with HumanEval" in err and "leak.py" in err


def test_vocabulary_move_is_exported_with_its_tokenizer(tiny_model_dir, answering, tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "out"
    corpus = tmp_path / "corpus.py"
    corpus.write_text("def add(a, b):\n    return a + b\n")
    argv = ["search", str(tiny_model_dir), "--budget", "size=160KB", "--max-generations", "1"]
    assert main([*argv, "--vocabulary", str(corpus), *FAST, "-o", str(out)]) == 0
    plan = json.loads((out / "plan.json").read_text())
    config = json.loads((out / "config.json").read_text())
    kept = plan["vocabulary"]["tokens_kept"]
    assert len(AutoTokenizer.from_pretrained(out)) == kept == config["vocab_size"]
    report = json.loads((out / "report.json").read_text())
    assert report["search"]["budget"]["chosen"] <= report["search"]["budget"]["limit"]
    assert "vocabulary (first move)" in (out / "report.md").read_text()
