"""Coupled structures that are removed together (Torch-Pruning style), apart from how they are scored.

A group kind lists, for one decoder block, the weight slices of each of its groups (`parts`),
what one group costs in parameters (`cost`) and the surgery that keeps a subset (`keep`):
- `HeadGroups`: a whole grouped-query group = one kv head h and the query heads that read it —
  rows of q for those query heads, rows h of k and v (with their bias entries), the matching
  input columns of the attention output. A fused qkv Linear (rows q | k | v) is sliced in all
  three segments. q/k norms over the head dimension (Qwen3, Gemma3) stay as they are: head_dim
  does not change, and `num_key_value_groups` (query heads per kv head) stays valid because
  whole groups go.
- `ChannelGroups`: MLP channel j — row j of every MLP input projection (both halves of a fused
  gate_up) and column j of the output projection; surgery is `width.slice_mlp`.
`sync_configs` then makes the modules' head counts and widths agree with their new shapes (read
from the weights by `export.widths.layer_widths`, the same reading the export uses).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from prunekit.models.adapters import DecoderAdapter
from prunekit.structural.width import slice_linear, slice_mlp


@dataclass(frozen=True)
class Part:
    """Slices of one Linear in a block: along `dim` (0 rows + bias, 1 input columns), group g owns
    the indices in row g of `index` (G × m)."""

    name: str
    dim: int
    index: torch.Tensor

    def gather(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """A weight-shaped tensor's (and the bias's) entries in each group, flattened: G × elements."""
        g, m = self.index.shape
        idx = self.index.to(weight.device)
        if self.dim == 0:
            rows = weight[idx.flatten()].reshape(g, -1)
            if bias is None:
                return rows
            return torch.cat([rows, bias[idx.flatten()].reshape(g, m)], dim=1)
        return (
            weight[:, idx.flatten()].reshape(weight.shape[0], g, m).transpose(0, 1).reshape(g, -1)
        )

    def size(self, linear: nn.Linear) -> int:
        """Parameters one group owns in this Linear."""
        m = self.index.shape[1]
        if self.dim == 1:
            return m * linear.out_features
        return m * linear.in_features + (m if linear.bias is not None else 0)


class GroupKind:
    """One kind of coupled group: how many a block has, their slices, their cost and their removal."""

    name: str = ""

    def __init__(self, adapter: DecoderAdapter) -> None:
        self.adapter = adapter

    def count(self, layer: nn.Module) -> int:
        raise NotImplementedError

    def parts(self, layer: nn.Module) -> list[Part]:
        raise NotImplementedError

    def keep(self, layer: nn.Module, idx: torch.Tensor) -> None:
        """Keep groups `idx` (ascending indices) of this block in place."""
        raise NotImplementedError

    def cost(self, layer: nn.Module) -> int:
        """Parameters removed with one group of this block."""
        return sum(p.size(layer.get_submodule(p.name)) for p in self.parts(layer))


def _column(n: int) -> torch.Tensor:
    return torch.arange(n).unsqueeze(1)


def _blocks(n: int, size: int, offset: int = 0) -> torch.Tensor:
    """Group g owns [offset + g·size, offset + (g+1)·size): an n × size index."""
    return offset + torch.arange(n * size).reshape(n, size)


@dataclass(frozen=True)
class HeadShape:
    """A block's attention as it is now: head dimension, kv heads and query heads per kv head."""

    head_dim: int
    kv_heads: int
    per_kv: int

    @property
    def q_heads(self) -> int:
        return self.kv_heads * self.per_kv


class HeadGroups(GroupKind):
    """Grouped-query attention groups: one kv head and its query heads."""

    name = "heads"

    def attention(self, layer: nn.Module) -> nn.Module:
        return layer.get_submodule(self.adapter.attention.output.rpartition(".")[0])

    def shape(self, layer: nn.Module) -> HeadShape:
        """Head counts read from the projections' shapes (the config may be the dense one)."""
        a = self.adapter.attention
        attn = self.attention(layer)
        head_dim = attn.head_dim
        q_rows = layer.get_submodule(a.output).in_features
        first = layer.get_submodule(a.inputs[0]).out_features
        kv_rows = (
            (first - q_rows) // 2 if a.fused else layer.get_submodule(a.inputs[1]).out_features
        )
        return HeadShape(head_dim, kv_rows // head_dim, q_rows // kv_rows)

    def count(self, layer: nn.Module) -> int:
        return self.shape(layer).kv_heads

    def _indices(self, s: HeadShape) -> tuple[torch.Tensor, torch.Tensor]:
        """Per group: its query rows (kv × per_kv·head_dim) and its k (or v) rows (kv × head_dim)."""
        return _blocks(s.kv_heads, s.per_kv * s.head_dim), _blocks(s.kv_heads, s.head_dim)

    def parts(self, layer: nn.Module) -> list[Part]:
        a, s = self.adapter.attention, self.shape(layer)
        q, kv = self._indices(s)
        out = Part(a.output, 1, q)
        if a.fused:
            q_rows, kv_rows = s.q_heads * s.head_dim, s.kv_heads * s.head_dim
            rows = torch.cat([q, kv + q_rows, kv + q_rows + kv_rows], dim=1)
            return [Part(a.inputs[0], 0, rows), out]
        return [Part(a.inputs[0], 0, q), Part(a.inputs[1], 0, kv), Part(a.inputs[2], 0, kv), out]

    def keep(self, layer: nn.Module, idx: torch.Tensor) -> None:
        idx = idx.cpu()
        for part in self.parts(layer):
            # ascending: a fused qkv keeps its q | k | v segments in order
            rows = torch.sort(part.index[idx].flatten()).values
            linear = layer.get_submodule(part.name)
            slice_linear(linear, rows.to(linear.weight.device), part.dim)


class ChannelGroups(GroupKind):
    """MLP channels: input-projection rows (both halves of a fused gate_up) and output columns."""

    name = "ffn"

    def count(self, layer: nn.Module) -> int:
        return self.adapter.mlp_width(layer)

    def parts(self, layer: nn.Module) -> list[Part]:
        m, width = self.adapter.mlp, self.count(layer)
        rows = torch.cat([_column(width), _column(width) + width], 1) if m.fused else _column(width)
        return [*(Part(name, 0, rows) for name in m.inputs), Part(m.output, 1, _column(width))]

    def keep(self, layer: nn.Module, idx: torch.Tensor) -> None:
        device = layer.get_submodule(self.adapter.mlp.output).weight.device
        slice_mlp(layer, self.adapter, idx.to(device))


KINDS: dict[str, type[GroupKind]] = {"heads": HeadGroups, "ffn": ChannelGroups}


_MODULE_ATTRS = {
    "num_heads": "num_attention_heads",
    "num_attention_heads": "num_attention_heads",
    "num_key_value_heads": "num_key_value_heads",
    "intermediate_size": "intermediate_size",
}


def sync_configs(model: nn.Module, adapter: DecoderAdapter) -> bool:
    """Make head counts and widths agree with the weights; True when every block is alike.

    Uniform blocks: `model.config` takes the new values (with an explicit `head_dim`, since the
    dense default hidden/heads no longer holds) and every module shares it again — a plain stock
    model. Otherwise each block's attention and MLP modules get their own shallow copy of the
    config with that block's values (stock forwards such as Phi-3's fused-qkv split read them),
    and `model.config` is left as it was. Module attributes (`num_heads`, `num_key_value_heads`,
    `intermediate_size`) are set wherever the module has them.
    """
    from prunekit.export.widths import head_dim, is_uniform, layer_widths

    hd = head_dim(model, adapter)
    widths = layer_widths(model, adapter)
    uniform = is_uniform(widths)
    shapes = [
        {
            "num_attention_heads": w.heads,
            "num_key_value_heads": w.kv_heads,
            "intermediate_size": w.mlp,
            "head_dim": hd,
        }
        for w in widths
    ]
    if uniform:
        for key, value in shapes[0].items():
            setattr(model.config, key, value)
    heads = HeadGroups(adapter)
    mlp_path = adapter.mlp.output.rpartition(".")[0]
    for layer, values in zip(adapter.layers(model), shapes):
        for module in (heads.attention(layer), layer.get_submodule(mlp_path)):
            for attr, key in _MODULE_ATTRS.items():
                if isinstance(getattr(module, attr, None), int):
                    setattr(module, attr, values[key])
            if not hasattr(module, "config"):
                continue
            if uniform:
                module.config = model.config
            else:
                module.config = copy.copy(model.config)
                for key, value in values.items():
                    setattr(module.config, key, value)
    return uniform
