"""Every adapter through the same checks on a tiny random model of its family."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_families import FAMILIES, tiny_family_model
from transformers import AutoModelForCausalLM

from prunekit.allocation.neuroal import consumer_rows
from prunekit.calibration.context import RunContext
from prunekit.calibration.engine import LayerwiseEngine
from prunekit.config.width import WidthConfig
from prunekit.evaluation.perplexity import perplexity
from prunekit.models.adapters import ADAPTERS, adapter_for
from prunekit.structural.depth import remove_layers
from prunekit.structural.width import prune_width, slice_mlp

FAMILY_NAMES = [a.family for a in ADAPTERS]


def _ids(seed: int = 1, rows: int = 2, length: int = 12) -> torch.Tensor:
    return torch.randint(0, 128, (rows, length), generator=torch.Generator().manual_seed(seed))


def test_every_adapter_has_a_tiny_config():
    assert sorted(FAMILIES) == sorted(FAMILY_NAMES)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_adapter_matches_its_model_type(family):
    model = tiny_family_model(family)
    adapter = adapter_for(model)
    assert adapter.family == family
    linears = adapter.linears(adapter.layers(model)[0])
    all_linears = {
        n for n, m in adapter.layers(model)[0].named_modules() if isinstance(m, torch.nn.Linear)
    }
    assert set(linears) == all_linears  # every Linear of a block has a role


@torch.no_grad()
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_engine_output_equals_full_forward(family):
    model = tiny_family_model(family)
    batches = [_ids(1), _ids(2, rows=3)]
    engine = LayerwiseEngine(model, adapter_for(model), batches, progress=False)
    for got, batch in zip(engine.logits(engine.run()), batches):
        torch.testing.assert_close(got, model(batch).logits, rtol=1e-5, atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("criterion", ["activation", "output", "taylor"])
def test_width_keep_one_keeps_the_forward_exact(family, criterion):
    model = tiny_family_model(family)
    ids = _ids(3)
    before = model(ids).logits
    ctx = RunContext.of(model, [_ids(4)], progress=False)
    prune_width(ctx, WidthConfig(ffn_keep=1.0, criterion=criterion, multiple=1))
    torch.testing.assert_close(model(ids).logits, before)


@torch.no_grad()
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_width_slice_equals_zeroing_the_dropped_channels(family, tmp_path):
    """Slicing channels (fused halves, biases and all) == zeroing their MLP-output columns."""
    model = tiny_family_model(family)
    adapter = adapter_for(model)
    ref = copy.deepcopy(model)
    keep = torch.tensor([1, 5, 6, 20, 33, 40, 41, 63])
    dropped = torch.ones(64, dtype=torch.bool)
    dropped[keep] = False
    for layer, ref_layer in zip(adapter.layers(model), adapter.layers(ref)):
        slice_mlp(layer, adapter, keep)
        ref_layer.get_submodule(adapter.mlp.output).weight[:, dropped] = 0
    model.config.intermediate_size = len(keep)
    ids = _ids(5)
    torch.testing.assert_close(model(ids).logits, ref(ids).logits, rtol=1e-5, atol=1e-5)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(ids).logits, ref(ids).logits, rtol=1e-5, atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_depth_removal_saves_and_reloads(family, tmp_path):
    model = tiny_family_model(family)
    remove_layers(model, adapter_for(model), [1])
    ids = _ids(6)
    want = model(ids).logits
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == len(adapter_for(model).layers(reloaded))
    torch.testing.assert_close(reloaded(ids).logits, want)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_neuroal_row_step_covers_every_linear(family):
    """Every Linear but the MLP output gets rows from its consumer's input δ, of its own size."""
    model = tiny_family_model(family)
    adapter = adapter_for(model)
    linears = adapter.linears(adapter.layers(model)[0])
    rows_for = consumer_rows(model, adapter)
    covered = set()
    for name, lin in linears.items():
        consumer, to_rows = rows_for(name)
        if consumer is None:
            continue
        delta = torch.rand(linears[consumer].in_features, dtype=torch.float64)
        rows = to_rows(delta)
        assert rows is not None and rows.shape == (lin.out_features,), name
        covered.add(name)
    assert covered == set(linears) - {adapter.mlp.output}


@torch.no_grad()
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_perplexity_equals_transformers_own_loss(family):
    """The adapter's logit post-processing (soft-capping, Granite's divisor) is the family's own."""
    model = tiny_family_model(family)
    model.lm_head.weight.data *= 50  # large logits, so a missed cap or divisor shows
    windows = _ids(7, rows=3)
    got = perplexity(model, adapter_for(model), windows, batch_size=2, progress=False)
    want = [float(model(w[None], labels=w[None]).loss) for w in windows]
    assert got["window_nll"] == pytest.approx(want, rel=1e-5)
