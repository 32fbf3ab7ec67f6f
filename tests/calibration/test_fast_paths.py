"""The faster calibration paths give the same statistics and the same masks as the plain ones."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model
from prunekit.calibration.engine import BlockContext, LayerwiseEngine, hooked_forward
from prunekit.calibration.stats import HESSIAN, SQ_NORM
from prunekit.methods.oneshot import prune_model
from prunekit.methods.patterns import UNSTRUCTURED, Pattern
from prunekit.methods.pruners import get_pruner
from prunekit.models.adapters import adapter_for


def _full_pass_collect(self, kinds, names=None, pass_on=False):
    """The engine's collect before truncation: a whole forward with post-hooks, outputs dropped."""
    names = list(self.linears) if names is None else list(names)
    linears = {n: self.linears[n] for n in names}
    stats, outputs = hooked_forward(linears, kinds, self.forward, self.input_groups)
    if pass_on:
        self.outputs = outputs
    return stats


def _batches(seed: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 128, (2, 24), generator=g),
        torch.randint(0, 128, (3, 24), generator=g),
    ]


def test_statistics_pass_stops_before_the_last_matmul_and_matches_a_full_pass(any_tiny_model):
    model = any_tiny_model
    adapter = adapter_for(model)
    seen: dict[str, list] = {"full": [], "truncated": []}
    last = adapter.layers(model)[0]
    out_name = adapter.linears(last)
    down_calls: list[int] = []

    def block_fn_for(key: str):
        def block_fn(ctx: BlockContext) -> None:
            down = ctx.linears[list(ctx.linears)[-1]]
            h = down.register_forward_hook(lambda *_a: down_calls.append(ctx.index))
            try:
                if key == "full":
                    stats = _full_pass_collect(ctx, {SQ_NORM, HESSIAN})
                else:
                    stats = ctx.collect({SQ_NORM, HESSIAN})
            finally:
                h.remove()
            seen[key].append({n: (s.tokens, s.sq_sum, s.xtx) for n, s in stats.items()})

        return block_fn

    LayerwiseEngine(model, adapter, _batches(), progress=False).run(block_fn_for("full"))
    full_calls = len(down_calls)
    down_calls.clear()
    LayerwiseEngine(model, adapter, _batches(), progress=False).run(block_fn_for("truncated"))
    assert full_calls == len(adapter.layers(model)) * 2 and down_calls == []  # matmul skipped
    assert out_name  # every block has Linears
    for full, trunc in zip(seen["full"], seen["truncated"], strict=True):
        assert full.keys() == trunc.keys()
        for n in full:
            assert full[n][0] == trunc[n][0]
            assert torch.equal(full[n][1], trunc[n][1]) and torch.equal(full[n][2], trunc[n][2])


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
@pytest.mark.parametrize(
    ("method", "pattern"),
    [
        ("wanda", UNSTRUCTURED),
        ("wanda", Pattern(2, 4)),
        ("sparsegpt", UNSTRUCTURED),
        ("sparsegpt", Pattern(2, 4)),
    ],
)
def test_masks_and_weights_identical_to_the_full_pass_engine(monkeypatch, arch, method, pattern):
    """Masks (and SparseGPT's updated weights) of a tiny model are bit-identical before/after."""

    def pruned(collect) -> dict[str, torch.Tensor]:
        model = tiny_model(arch, seed=1)
        with monkeypatch.context() as m:
            if collect is not None:
                m.setattr(BlockContext, "collect", collect)
            prune_model(
                model,
                adapter_for(model),
                get_pruner(method),
                lambda *_: 0.5,
                pattern,
                _batches(),
                progress=False,
            )
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    before, after = pruned(_full_pass_collect), pruned(None)
    for n in before:
        assert torch.equal(before[n] == 0, after[n] == 0), n
        assert torch.equal(before[n], after[n]), n


def test_dense_stream_takes_one_forward_per_block_and_equals_statistics_on_the_dense_model():
    """`stream="dense"`: block i is scored on the dense model's stream, one forward per block."""
    model, ref = tiny_model("llama", seed=2), tiny_model("llama", seed=2)
    adapter = adapter_for(model)
    starts: list[int] = []  # a block's first Linear runs once per forward (not in the capture)
    for layer in adapter.layers(model):
        first = next(iter(adapter.linears(layer).values()))
        first.register_forward_hook(lambda *_a: starts.append(1))
    batches = _batches()
    prune_model(
        model,
        adapter,
        get_pruner("wanda"),
        lambda *_: 0.5,
        UNSTRUCTURED,
        batches,
        progress=False,
        stream="dense",
    )
    assert len(starts) == len(adapter.layers(model)) * len(batches)
    # reference: statistics of the unedited model, then masks from them
    stats_all = {}

    def grab(ctx: BlockContext) -> None:
        for n, s in ctx.collect({SQ_NORM}, pass_on=True).items():
            stats_all[(ctx.index, n)] = s

    LayerwiseEngine(ref, adapter_for(ref), batches, progress=False).run(grab)
    wanda = get_pruner("wanda")
    for i, layer in enumerate(adapter_for(ref).layers(ref)):
        for n, lin in adapter_for(ref).linears(layer).items():
            wanda.prune(lin.weight.data, stats_all[(i, n)], 0.5, UNSTRUCTURED)
    for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        assert torch.equal(p, q), n


def test_bfloat16_forwards_keep_float32_weights_and_statistics_and_nearly_the_same_masks():
    """Autocast forwards of a float32 model: statistics stay float32, masks agree closely."""
    batches = _batches()

    def masks(dtype) -> dict[str, torch.Tensor]:
        model = tiny_model("qwen2", seed=4)
        prune_model(
            model,
            adapter_for(model),
            get_pruner("wanda"),
            lambda *_: 0.5,
            UNSTRUCTURED,
            batches,
            progress=False,
            forward_dtype=dtype,
        )
        assert all(p.dtype == torch.float32 for p in model.parameters())
        return {n: p == 0 for n, p in model.named_parameters() if p.dim() == 2}

    model = tiny_model("qwen2", seed=4)
    seen = []

    def block_fn(ctx: BlockContext) -> None:
        seen.extend(s.sq_sum.dtype for s in ctx.collect({SQ_NORM}).values())

    LayerwiseEngine(
        model, adapter_for(model), batches, progress=False, forward_dtype=torch.bfloat16
    ).run(block_fn)
    assert seen and set(seen) == {torch.float32}
    fp32, bf16 = masks(None), masks(torch.bfloat16)
    agree = sum(int((fp32[n] == bf16[n]).sum()) for n in fp32) / sum(
        m.numel() for m in fp32.values()
    )
    assert agree > 0.97  # a few near-tied weights may swap; most masks are the same
    assert any(not torch.equal(fp32[n], bf16[n]) for n in fp32) or agree == 1.0
