"""The level database and stitching: a candidate run from stored variants gives exactly the logits
of the model cut directly to the same per-layer choices (full forward of the real modules), and
the stored channel ranking is the `output` importance of the dense model (brute force)."""

from __future__ import annotations

import copy

import pytest
import torch
from tests.conftest import linear_input_norms, tiny_model

from prunekit.models.adapters import adapter_for
from prunekit.search.fitness import Evaluator
from prunekit.search.levels import VariantCache, build_db, build_space
from prunekit.search.plan import apply_plan


def _data(vocab: int, n: int = 4, t: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(0, vocab, (1, t), generator=g) for _ in range(n)]
    weights = [(torch.arange(t) >= t // 2).float()[None] for _ in range(n)]
    return seqs, weights


def _setup(arch: str, refit: bool, tmp_path, heads=(1.0, 0.5)):
    model = tiny_model(arch)
    adapter = adapter_for(model)
    space = build_space(model, adapter, (1.0, 0.75, 0.5, 0.25), heads, 8, True)
    seqs, weights = _data(model.config.vocab_size)
    db = build_db(model, adapter, seqs, space, tmp_path, refit, 0.3, {"t": 1}, progress=False)
    return model, adapter, space, db, seqs, weights


def _direct_logits(model, adapter, db, space, genome, seqs, rows):
    cut = copy.deepcopy(model)
    apply_plan(cut, adapter, db, space.variants(genome))
    out = []
    with torch.no_grad():
        for s, ids in enumerate(seqs):
            logits = cut(input_ids=ids, use_cache=False).logits
            out.append(logits.reshape(-1, logits.shape[-1])[rows[s]])
    return cut, out


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "gemma3"])
@pytest.mark.parametrize("refit", [False, True])
def test_stitched_candidate_equals_direct_cut(arch, refit, tmp_path):
    model, adapter, space, db, seqs, weights = _setup(arch, refit, tmp_path)
    cache = VariantCache(model, adapter, db, space, 1 << 30)
    ev = Evaluator(model, adapter, seqs, weights, cache, topk=0)
    n = len(space.layers)
    genomes = [
        tuple((i * 3 + k) % (space.layers[i].top) for i in range(n)) for k in range(3)
    ]  # mixed widths and head counts, no drop
    genomes.append(tuple([space.layers[0].top] + [1] * (n - 1)))  # layer 0 dropped
    genomes.append(tuple([2] * (n - 1) + [space.layers[-1].top]))  # last layer dropped
    for genome in genomes:
        cut, direct = _direct_logits(model, adapter, db, space, genome, seqs, ev.rows)
        assert len(adapter.layers(cut)) == n - space.dropped(genome)
        for s in range(len(seqs)):
            h = ev.hidden(genome, s)
            rows = h.reshape(-1, h.shape[-1])[ev.rows[s]][None]
            stitched = adapter.logits(model, rows)[0]
            # same math; a matmul over fewer rows may round differently on some CPUs (AVX2)
            torch.testing.assert_close(stitched, direct[s], rtol=1e-5, atol=1e-6)
        # and the cut model still holds shapes its config describes (sync_configs)
        widths = {adapter.mlp_width(layer) for layer in adapter.layers(cut)}
        assert widths <= {v.ffn for s in space.layers for v in s.variants}


def test_dense_genome_is_the_dense_model_and_scores_zero(tmp_path):
    model, adapter, space, db, seqs, weights = _setup("llama", False, tmp_path)
    ev = Evaluator(model, adapter, seqs, weights, VariantCache(model, adapter, db, space, 1 << 30))
    dense = [0] * len(space.layers)
    assert ev.fitness(dense, range(len(seqs))) == 0.0
    with torch.no_grad():
        full = model(input_ids=seqs[1]).logits[0, ev.rows[1]]
    h = ev.hidden(dense, 1)
    stitched = adapter.logits(model, h.reshape(-1, h.shape[-1])[ev.rows[1]][None])[0]
    torch.testing.assert_close(stitched, full, rtol=1e-5, atol=1e-6)
    assert ev.fitness([1] * len(space.layers), range(len(seqs))) > 0


def test_channel_ranking_is_dense_output_importance(tmp_path):
    """Ground truth: ‖down_:,j‖·a_j with a_j from whole-model forwards of the dense model."""
    model, adapter, space, db, seqs, _ = _setup("llama", False, tmp_path)
    norms = linear_input_norms(model, torch.cat(seqs), batch=1)
    for i, layer in enumerate(adapter.layers(model)):
        down = layer.mlp.down_proj.weight.double()
        scores = down.norm(dim=0) * norms[f"layers.{i}.mlp.down_proj"]
        for k in (48, 32, 16):
            expected = torch.sort(
                torch.sort(scores, descending=True, stable=True).indices[:k]
            ).values
            assert torch.equal(db.kept_channels(i, k), expected)


def test_refit_weights_change_the_kept_columns_only_where_levels_cut(tmp_path):
    model, adapter, space, db, *_ = _setup("llama", True, tmp_path)
    w = db.refit(db.ffn_key(0, 32))
    dense = adapter.layers(model)[0].mlp.down_proj.weight
    assert w.shape == (dense.shape[0], 32)
    assert not torch.equal(w, dense[:, db.kept_channels(0, 32)])
    assert db.disk_bytes() > 0 and db.memory_bytes() > 0
