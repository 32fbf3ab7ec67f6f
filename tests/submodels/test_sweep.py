import json

import pytest
import torch

from prunekit.errors import PrunekitError
from prunekit.methods.patterns import parse_pattern
from prunekit.methods.pruners import get_pruner
from prunekit.models.adapters import adapter_for
from prunekit.submodels.languages import Language, parse_languages
from prunekit.submodels.masks import apply_masks, load_masks, named_linears
from prunekit.submodels.sweep import (
    SweepConfig,
    collect_stats,
    prune_sequential,
    prune_with_stats,
    run_sweep,
)


def _corpus(root, name: str, line: str, docs: int = 12):
    folder = root / name
    folder.mkdir()
    for i in range(docs):
        (folder / f"d{i:02d}.txt").write_text(f"{line} {i}\n" * 30)
    return folder


@pytest.fixture
def lm(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def langs(tmp_path):
    a = _corpus(tmp_path, "code", "def f(x): return [y * 2 for y in range(x)]")
    b = _corpus(tmp_path, "prose", "The quiet river ran past the old mill at dawn.")
    return parse_languages(f"code={a},prose={b}")


def _cfg(langs, **kw) -> SweepConfig:
    base = dict(
        languages=langs,
        eval_languages=langs,
        sparsities=[0.5, 0.6],
        calib_samples=4,
        seq_len=32,
        batch_size=2,
        eval_tokens=256,
        eval_seq_len=32,
    )
    return SweepConfig(**{**base, **kw})


def test_matrix_shape_ratios_masks_and_overlap(lm, langs, tmp_path):
    model, tok = lm
    before = {k: v.weight.clone() for k, v in named_linears(model, adapter_for(model)).items()}
    out = tmp_path / "out"
    out.mkdir()
    result = run_sweep(model, tok, _cfg(langs), out, progress=False)
    sub = result["submodels"]
    assert [m["sparsity"] for m in sub["matrices"]] == [0.5, 0.6]
    for m in sub["matrices"]:
        assert m["calibration"] == m["evaluation"] == ["code", "prose"]
        for r in m["calibration"]:
            for c in m["evaluation"]:
                assert m["ratio"][r][c] == pytest.approx(m["ppl"][r][c] / sub["dense_ppl"][c])
    assert set(sub["submodels"]) == {"code@0.5", "prose@0.5", "code@0.6", "prose@0.6"}
    assert all(abs(e["achieved"] - e["sparsity"]) < 0.02 for e in sub["submodels"].values())
    overlap = json.loads((out / "overlap.json").read_text())
    assert set(overlap) == {"0.5", "0.6"} and set(overlap["0.5"]) == {"code|prose"}
    pair = overlap["0.5"]["code|prose"]
    assert len(pair["by_block"]) == 3 and pair["random_expectation"] == pytest.approx(1 / 3)
    assert 0 < pair["overall"] < 1
    for name in (
        "matrix_s0.50.md",
        "matrix_s0.60.png",
        "overlap/code__prose_s0.60.png",
        "masks/prose_s0.60.safetensors",
    ):
        assert (out / name).is_file(), name
    # the caller's model is dense again afterwards
    after = named_linears(model, adapter_for(model))
    assert all(torch.equal(before[k], after[k].weight) for k in before)
    # the saved masks rebuild the sub-model: zeros exactly where the mask says
    masks, meta = load_masks(out / "masks" / "code_s0.50.safetensors")
    assert meta["language"] == "code" and meta["sparsity"] == 0.5
    apply_masks(model, adapter_for(model), masks)
    for k, lin in after.items():
        assert torch.equal(lin.weight == 0, masks[k] | (before[k] == 0))


def test_reused_statistics_give_the_masks_of_a_fresh_run(lm, langs, tmp_path):
    """A sweep over 0.5 then 0.6 yields at 0.6 exactly the masks of a run at 0.6 alone."""
    model, tok = lm
    swept, fresh = tmp_path / "swept", tmp_path / "fresh"
    swept.mkdir()
    fresh.mkdir()
    one = dict(languages=langs[:1], eval_languages=langs[:1], eval_tokens=64)
    run_sweep(model, tok, _cfg(langs, **one), swept, progress=False)
    run_sweep(model, tok, _cfg(langs, sparsities=[0.6], **one), fresh, progress=False)
    for lang in ("code",):
        a, _ = load_masks(swept / "masks" / f"{lang}_s0.60.safetensors")
        b, _ = load_masks(fresh / "masks" / f"{lang}_s0.60.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_stream_variants_agree_at_block_zero_and_sequential_matches_prune_model(lm, langs):
    from prunekit import api

    model, tok = lm
    adapter = adapter_for(model)
    pruner, pattern = get_pruner("wanda"), parse_pattern("unstructured")
    windows, _ = api.calibration_data(tok, str(langs[0].spec), 4, 32, 0)
    batches = list(windows.split(2))
    dense = {k: v.weight.clone() for k, v in named_linears(model, adapter).items()}
    stats = collect_stats(model, adapter, pruner.needs, batches, progress=False)
    m_dense = prune_with_stats(model, adapter, pruner, stats, 0.5, pattern)
    for k, lin in named_linears(model, adapter).items():
        lin.weight.data.copy_(dense[k])
    m_seq = prune_sequential(model, adapter, pruner, 0.5, pattern, batches, progress=False)
    seq_weights = {k: v.weight.clone() for k, v in named_linears(model, adapter).items()}
    for k in m_dense:
        if k.startswith("layers.0."):
            assert torch.equal(m_dense[k], m_seq[k])
    # the recorded masks are exactly what prune_model (via api.prune) zeroes
    for k, lin in named_linears(model, adapter).items():
        lin.weight.data.copy_(dense[k])
    api.prune(
        model,
        tok,
        method="wanda",
        sparsity=0.5,
        calib=windows,
        seq_len=32,
        batch_size=2,
        progress=False,
    )
    for k, lin in named_linears(model, adapter).items():
        assert torch.equal(lin.weight, seq_weights[k])
        nonzero = dense[k] != 0
        assert torch.equal(m_seq[k] & nonzero, (lin.weight == 0) & nonzero)


def test_user_corpus_too_small_fails_before_pruning(lm, tmp_path):
    model, tok = lm
    small = tmp_path / "small.txt"
    small.write_text("x = 1\n" * 20)
    cfg = _cfg(
        [Language("small", str(small))],
        eval_languages=[Language("small", str(small))],
        calib_samples=64,
    )
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(PrunekitError, match="fewer than 64 windows"):
        run_sweep(model, tok, cfg, out, progress=False)
    assert not any(out.iterdir())


def test_config_rejects_bad_combinations(langs):
    with pytest.raises(PrunekitError, match="masks alone cannot rebuild"):
        _cfg(langs, method="sparsegpt", stream="pruned").validate()
    with pytest.raises(PrunekitError, match="stats-stream pruned"):
        _cfg(langs, method="sparsegpt", save="none").validate()
    with pytest.raises(PrunekitError, match="repeats"):
        _cfg(langs, sparsities=[0.5, 0.5]).validate()
