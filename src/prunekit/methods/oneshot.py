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


def _groups(linears: dict[str, nn.Linear], stats) -> list[list[str]]:
    """Linears sharing one statistics object (they read the same input) form a group."""
    if not stats:
        return [[n] for n in linears]
    by_stats: dict[int, list[str]] = {}
    for name in linears:
        by_stats.setdefault(id(stats.get(name)), []).append(name)
    return list(by_stats.values())


def _prune_block(
    ctx_index: int,
    linears: dict[str, nn.Linear],
    stats,
    pruner: Pruner,
    target: TargetFn,
    pattern: Pattern,
    records: dict[str, LayerRecord],
    masks: dict[str, torch.Tensor] | None,
) -> None:
    for names in _groups(linears, stats):
        weights = [linears[n].weight.data for n in names]
        targets = [target(ctx_index, n, w) for n, w in zip(names, weights)]
        chosen = pruner.prune_group(
            weights, stats.get(names[0]) if stats else None, targets, pattern
        )
        for name, weight, t, mask in zip(names, weights, targets, chosen):
            if masks is not None:
                masks[f"layers.{ctx_index}.{name}"] = mask.cpu()
            zeros = weight.numel() - int(torch.count_nonzero(weight))
            mean_t = float(t.float().mean()) if isinstance(t, torch.Tensor) else float(t)
            records[f"layers.{ctx_index}.{name}"] = LayerRecord(
                ctx_index, name, weight.numel(), zeros, mean_t
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
    masks: dict[str, torch.Tensor] | None = None,
) -> dict[str, LayerRecord]:
    """Prune all decoder Linears in place; data-free pruners skip the calibration engine.

    `stream="pruned"` (the published methods): block i's statistics are taken on the output of
    the already pruned blocks, two forwards per block (the statistics one stops at the last
    Linear's input). `stream="dense"`: on the dense model's stream, one forward per block.
    A `masks` dict receives every Linear's mask (on the CPU), keyed like the records.
    """
    if stream not in STREAMS:
        raise PrunekitError(f"unknown stream '{stream}'; choose one of: {', '.join(STREAMS)}")
    records: dict[str, LayerRecord] = {}
    if not pruner.needs:
        layers = adapter.layers(model)
        for i in tqdm(
            range(len(layers)), desc=f"pruning ({pruner.name})", unit="block", disable=not progress
        ):
            _prune_block(
                i, adapter.linears(layers[i]), None, pruner, target, pattern, records, masks
            )
        return records

    def block_fn(ctx: BlockContext) -> None:
        stats = ctx.collect(pruner.needs, pass_on=stream == "dense")
        _prune_block(ctx.index, ctx.linears, stats, pruner, target, pattern, records, masks)

    desc = f"pruning ({pruner.name})"
    engine = LayerwiseEngine(model, adapter, batches, device, progress, desc, forward_dtype)
    engine.run(block_fn)
    return records
