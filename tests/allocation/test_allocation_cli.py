"""`prunekit prune --allocation …`: flags reach the API, the plot lands in the output folder."""

from __future__ import annotations

import json

import pytest

from prunekit.cli import main

COMMON = ["--calib-samples", "4", "--seq-len", "32", "--batch-size", "2"]


def test_prune_with_neuroal_writes_report_section_and_plot(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "run"
    argv = ["prune", str(tiny_model_dir), "--sparsity", "0.6", *COMMON, "-o", str(out)]
    argv += ["--allocation", "neuroal", "--neuroal-samples", "2", "--neuroal-no-row-step"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["method"]["allocation"] == "neuroal"
    alloc = report["allocation"]
    assert alloc["options"]["samples"] == 2 and alloc["options"]["row_step"] is False
    assert alloc["search"]["search_windows"] == 2 and "row_step" not in alloc["search"]
    assert abs(report["sparsity"]["achieved"] - 0.6) < 1e-3
    assert "allocation" in report["timings_s"]
    assert (out / "allocation.png").stat().st_size > 0
    assert "NeuroAL block step" in capsys.readouterr().out


def test_owl_flags_reach_the_allocation(tmp_path, tiny_model_dir):
    out = tmp_path / "owl"
    argv = ["prune", str(tiny_model_dir), "--sparsity", "0.5", *COMMON, "-o", str(out)]
    assert main([*argv, "--allocation", "owl", "--owl-m", "3", "--owl-lambda", "0.1"]) == 0
    alloc = json.loads((out / "report.json").read_text())["allocation"]
    assert alloc["options"] == {"m": 3.0, "lambda": 0.1}
    assert len(alloc["outlier_ratio"]) == len(alloc["block_sparsity"])


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--owl-m", "3"], "need --allocation owl"),
        (["--allocation", "owl", "--neuroal-samples", "4"], "need --allocation neuroal"),
        (["--allocation", "owl", "--pattern", "2:4", "--sparsity", "0.5"], "N:M pattern"),
        (["--allocation", "owl", "--owl-lambda", "0.7"], "0 ≤ λ < 0.5"),
        (["--allocation", "owl", "--neuroal-grid", "coarse"], "need --allocation neuroal"),
    ],
)
def test_bad_allocation_flags_fail_before_loading(tmp_path, capsys, extra, needle):
    argv = ["prune", str(tmp_path / "no-model-needed"), "-o", str(tmp_path / "o"), *extra]
    if "--sparsity" not in extra:
        argv += ["--sparsity", "0.5"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
