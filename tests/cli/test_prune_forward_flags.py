"""`prunekit prune --forward-dtype/--stream/--neuroal-dense-reference`: the flags reach api.prune
and report.json; a NeuroAL flag without `--allocation neuroal` is one line before any model loads."""

from __future__ import annotations

import json

import pytest

from prunekit import api
from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.models.loading import auto_dtype

COMMON = ["--calib-samples", "4", "--seq-len", "32", "--batch-size", "2"]


def _captured_kwargs(monkeypatch, argv: list[str]) -> dict:
    """The options `prunekit prune argv` hands to api.prune, its PruneConfig's fields and any
    keywords (stopped there)."""
    seen: dict = {}

    def fake_prune(model, tokenizer, config=None, **kwargs):
        seen.update(config.model_dump() if config is not None else {}, **kwargs)
        raise PrunekitError("stopped by the test")

    monkeypatch.setattr(api, "prune", fake_prune)
    assert main(argv) == 2
    return seen


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], {"forward_dtype": None, "stream": "pruned"}),
        (
            ["--forward-dtype", "auto", "--stream", "dense"],
            {"forward_dtype": "auto", "stream": "dense"},
        ),
    ],
)
def test_forward_flags_reach_api_prune(tmp_path, tiny_model_dir, monkeypatch, extra, expected):
    argv = ["prune", str(tiny_model_dir), "--sparsity", "0.5", *COMMON, "-o", str(tmp_path / "o")]
    kwargs = _captured_kwargs(monkeypatch, [*argv, *extra])
    assert {k: kwargs[k] for k in expected} == expected
    assert kwargs["allocation_options"] == {}


def test_dense_stream_bf16_forwards_and_cached_reference_are_recorded(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    argv = ["prune", str(tiny_model_dir), "--sparsity", "0.5", *COMMON, "-o", str(out)]
    argv += ["--forward-dtype", "bfloat16", "--stream", "dense", "--allocation", "neuroal"]
    argv += ["--neuroal-samples", "2", "--neuroal-no-row-step", "--neuroal-grid", "coarse"]
    assert main([*argv, "--neuroal-dense-reference", "cached"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["calibration_forwards"] == {"dtype": "bfloat16", "stream": "dense"}
    assert report["allocation"]["options"]["dense_reference"] == "cached"
    assert report["allocation"]["search"]["dense_reference"] == "cached"
    assert abs(report["sparsity"]["achieved"] - 0.5) < 1e-3


def test_auto_forward_dtype_is_the_loaders_choice(tmp_path, tiny_model_dir):
    out = tmp_path / "auto"
    argv = ["prune", str(tiny_model_dir), "--sparsity", "0.5", *COMMON, "-o", str(out)]
    assert main([*argv, "--forward-dtype", "auto"]) == 0
    forwards = json.loads((out / "report.json").read_text())["calibration_forwards"]
    assert forwards == {"dtype": auto_dtype("cpu"), "stream": "pruned"}


@pytest.mark.parametrize("allocation", [[], ["--allocation", "owl"]])
def test_dense_reference_without_neuroal_is_one_line_before_loading(tmp_path, capsys, allocation):
    argv = ["prune", str(tmp_path / "no-model-needed"), "--sparsity", "0.5"]
    argv += ["-o", str(tmp_path / "o"), *allocation, "--neuroal-dense-reference", "cached"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["prunekit: error: --neuroal-* flags need --allocation neuroal"]


def test_float32_forwards_of_a_bfloat16_model_are_reported_as_what_runs(tmp_path, tiny_model_dir):
    out = tmp_path / "bf16"
    argv = ["prune", str(tiny_model_dir), "--sparsity", "0.5", *COMMON, "-o", str(out)]
    assert main([*argv, "--dtype", "bfloat16", "--forward-dtype", "float32"]) == 0
    forwards = json.loads((out / "report.json").read_text())["calibration_forwards"]
    assert forwards == {"dtype": "bfloat16", "stream": "pruned"}  # autocast cannot raise precision
