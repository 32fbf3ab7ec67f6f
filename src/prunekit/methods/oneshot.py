"""One-shot pruning of every decoder Linear: the shared engine supplies statistics block by block,
an allocation says how many weights each layer/row loses, the pruner says which."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from prunekit.calibration.engine import BlockContext, LayerwiseEngine
from prunekit.errors import PrunekitError
from prunekit.methods.patterns import Pattern
from prunekit.methods.pruners import Pruner
from prunekit.models.adapters import DecoderAdapter

# (block index, linear name, weight) -> sparsity for the layer (float) or per output row (tensor)
STREAMS = ("pruned", "dense")
TargetFn = Callable[[int, str, torch.Tensor], "float | torch.Tensor"]


@dataclass
class LayerRecord:
    """What happened to one Linear: its size and how many of its weights are zero now."""

    block: int
    name: str
    numel: int
    zeros: int
    target: float

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel


def _prune_block(
    ctx_index: int,
    linears: dict[str, nn.Linear],
    stats,
    pruner: Pruner,
    target: TargetFn,
    pattern: Pattern,
    records: dict[str, LayerRecord],
) -> None:
    for name, linear in linears.items():
        t = target(ctx_index, name, linear.weight)
        pruner.prune(linear.weight.data, stats.get(name) if stats else None, t, pattern)
        zeros = linear.weight.numel() - int(torch.count_nonzero(linear.weight.data))
        mean_t = float(t.float().mean()) if isinstance(t, torch.Tensor) else float(t)
        records[f"layers.{ctx_index}.{name}"] = LayerRecord(
            ctx_index, name, linear.weight.numel(), zeros, mean_t
        )


def prune_model(
    model: nn.Module,
    adapter: DecoderAdapter,
    pruner: Pruner,
    target: TargetFn,
    pattern: Pattern,
    batches: list[torch.Tensor] | None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    stream: str = "pruned",
    forward_dtype: torch.dtype | None = None,
) -> dict[str, LayerRecord]:
    """Prune all decoder Linears in place; data-free pruners skip the calibration engine.

    `stream="pruned"` (the published methods): block i's statistics are taken on the output of
    the already pruned blocks, two forwards per block (the statistics one stops at the last
    Linear's input). `stream="dense"`: on the dense model's stream, one forward per block.
    """
    if stream not in STREAMS:
        raise PrunekitError(f"unknown stream '{stream}'; choose one of: {', '.join(STREAMS)}")
    records: dict[str, LayerRecord] = {}
    if not pruner.needs:
        layers = adapter.layers(model)
        for i in tqdm(
            range(len(layers)), desc=f"pruning ({pruner.name})", unit="block", disable=not progress
        ):
            _prune_block(i, adapter.linears(layers[i]), None, pruner, target, pattern, records)
        return records

    def block_fn(ctx: BlockContext) -> None:
        stats = ctx.collect(pruner.needs, pass_on=stream == "dense")
        _prune_block(ctx.index, ctx.linears, stats, pruner, target, pattern, records)

    desc = f"pruning ({pruner.name})"
    engine = LayerwiseEngine(model, adapter, batches, device, progress, desc, forward_dtype)
    engine.run(block_fn)
    return records
