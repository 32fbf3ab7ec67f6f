"""Which teacher layers each student layer stands for, so depth-pruned students can be recovered
block by block: a kept layer plus the removed layers after it (up to the next kept one) form its
group, and the student block learns to reproduce the whole group's output."""

from __future__ import annotations

import torch
from torch import nn

from prunekit.errors import PrunekitError
from prunekit.models.adapters import DecoderAdapter


def _is_pruned_copy(s_layer: nn.Module, t_layer: nn.Module) -> bool:
    """Every parameter of the student layer that has the teacher's shape equals it wherever the
    student is non-zero (sparse pruning zeros entries, width pruning changes shapes)."""
    t_params = dict(t_layer.named_parameters())
    compared = 0
    for name, p in s_layer.named_parameters():
        t = t_params.get(name)
        if t is None or t.shape != p.shape:
            continue
        keep = p != 0
        dtype = p.dtype if p.dtype.itemsize <= t.dtype.itemsize else t.dtype  # the coarser one
        if not torch.equal(p[keep].to(dtype), t[keep].to(dtype)):
            return False
        compared += 1
    return compared > 0


def layer_sources(student: nn.Module, teacher: nn.Module, adapter: DecoderAdapter) -> list[int]:
    """The teacher index each student layer was cut from (increasing), found by its weights."""
    s_layers, t_layers = adapter.layers(student), adapter.layers(teacher)
    sources: list[int] = []
    nxt = 0
    with torch.no_grad():
        for j, s_layer in enumerate(s_layers):
            left = len(s_layers) - j - 1  # teacher layers the later student layers still need
            match = next(
                (
                    k
                    for k in range(nxt, len(t_layers) - left)
                    if _is_pruned_copy(s_layer, t_layers[k])
                ),
                None,
            )
            if match is None:
                raise PrunekitError(
                    f"student layer {j} matches no teacher layer (was it trained after pruning?); "
                    "block-wise reconstruction needs each student layer to be a pruned copy of a "
                    "teacher layer — use --method distill"
                )
            sources.append(match)
            nxt = match + 1
    return sources


def teacher_groups(sources: list[int], teacher_layers: int) -> list[range]:
    """Per student layer, the consecutive teacher layers its output stands for: its own source up
    to the next kept one; removed layers before the first kept one join the first group."""
    ends = [*sources[1:], teacher_layers]
    return [range(0 if j == 0 else s, e) for j, (s, e) in enumerate(zip(sources, ends))]
