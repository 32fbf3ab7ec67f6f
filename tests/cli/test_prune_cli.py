import json

from prunekit.cli import main


def test_prune_then_eval_writes_a_complete_report(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "prune",
            str(tiny_model_dir),
            "--method",
            "sparsegpt",
            "--pattern",
            "2:4",
            "--calib-samples",
            "4",
            "--seq-len",
            "32",
            "--eval-ppl",
            "python",
            "--ppl-tokens",
            "256",
            "--ppl-seq-len",
            "32",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == {
        "name": "sparsegpt",
        "pattern": "2:4",
        "allocation": "uniform",
        "sparsity": 0.5,
    }
    assert report["sparsity"]["target"] == 0.5
    assert abs(report["sparsity"]["achieved"] - 0.5) < 1e-9
    assert all(abs(v - 0.5) < 1e-9 for v in report["sparsity"]["per_layer"].values())
    assert report["params"]["nonzero"] < report["params"]["total"]
    assert report["calibration"]["samples"] == 4 and report["calibration"]["seq_len"] == 32
    assert {"load", "prune", "eval_before", "eval_after"} <= set(report["timings_s"])
    assert report["peak_rss_mb"] > 0
    assert report["model"]["weights_sha256"]
    assert {"torch", "transformers", "prunekit"} <= set(report["versions"])
    before = report["evaluation_before"]["perplexity"]["python"]
    after = report["evaluation"]["perplexity"]["python"]
    assert before["tokens"] == after["tokens"] == 8 * 31
    capsys.readouterr()

    assert (
        main(["eval", str(out), "--ppl", "python", "--ppl-tokens", "128", "--ppl-seq-len", "32"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "python" in printed
    updated = json.loads((out / "report.json").read_text())
    assert updated["evaluation"]["perplexity"]["python"]["tokens"] == 4 * 31
    assert updated["evaluation"]["perplexity"]["python"]["dtype"] == "float32"
    assert updated["method"]["name"] == "sparsegpt"


def test_models_lists_builtins(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("qwen2.5-coder-0.5b", "smollm2-135m", "gemma3-270m"):
        assert name in out
