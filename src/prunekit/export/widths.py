"""Per-layer widths (query heads, key/value heads, MLP channels) read from the Linears' shapes.

Shapes are the truth after structural pruning: a pruned model's config may still hold the dense
sizes, so the export describes each layer by what its weights are, through the adapter's roles.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from prunekit.errors import PrunekitError
from prunekit.export.modeling_prunekit_widths import LAYER_KEYS  # config field → its list
from prunekit.models.adapters import DecoderAdapter, adapter_for

__all__ = ["LAYER_KEYS", "LayerWidths", "config_fields", "head_dim", "is_uniform", "layer_widths"]


@dataclass(frozen=True)
class LayerWidths:
    """One decoder layer's query heads, key/value heads and MLP channels."""

    heads: int
    kv_heads: int
    mlp: int


def head_dim(model: nn.Module, adapter: DecoderAdapter | None = None) -> int:
    """The attention head size (never changed by pruning: whole heads are removed)."""
    adapter = adapter or adapter_for(model)
    layer = adapter.layers(model)[0]
    attn = layer.get_submodule(adapter.attention.output.rpartition(".")[0])
    return getattr(attn, "head_dim", None) or adapter.head_dim(model.config)


def attention_widths(layer: nn.Module, adapter: DecoderAdapter, hd: int) -> tuple[int, int]:
    """(query heads, kv heads) of one layer: q rows / head_dim, k rows / head_dim (fused qkv: q
    rows = the output projection's input columns, the rest split evenly into k and v)."""
    roles = adapter.attention
    q = layer.get_submodule(roles.output).in_features
    rows = [layer.get_submodule(name).out_features for name in roles.inputs]
    if roles.fused:
        k = v = (rows[0] - q) // 2
        ok = rows[0] == q + 2 * k
    else:
        ok = rows[0] == q
        k, v = rows[1], rows[2]
    if not (ok and k == v and k > 0 and q % hd == 0 and k % hd == 0 and (q // hd) % (k // hd) == 0):
        raise PrunekitError(
            f"attention shapes {rows} -> {q} are not whole grouped-query heads of size {hd}; "
            "remove whole kv groups (a kv head with its query heads) only"
        )
    return q // hd, k // hd


def layer_widths(model: nn.Module, adapter: DecoderAdapter | None = None) -> list[LayerWidths]:
    """Every decoder layer's widths, from its weights."""
    adapter = adapter or adapter_for(model)
    hd = head_dim(model, adapter)
    widths = []
    for layer in adapter.layers(model):
        heads, kv = attention_widths(layer, adapter, hd)
        widths.append(LayerWidths(heads, kv, adapter.mlp_width(layer)))
    return widths


def is_uniform(widths: list[LayerWidths]) -> bool:
    """Whether every layer has the same widths (a stock config can describe the model)."""
    return len(set(widths)) <= 1


def config_fields(model: nn.Module, widths: list[LayerWidths], hd: int) -> dict:
    """config.json fields for these widths: the stock fields (from the widest layer, so heads and
    kv heads stay a consistent pair), explicit head_dim when needed, and the per-layer lists when
    the layers differ."""
    widest = max(widths, key=lambda w: (w.heads, w.kv_heads))
    fields = {
        "num_attention_heads": widest.heads,
        "num_key_value_heads": widest.kv_heads,
        "intermediate_size": max(w.mlp for w in widths),
    }
    config = model.config
    if getattr(config, "head_dim", None) is not None or config.hidden_size // widest.heads != hd:
        fields["head_dim"] = hd
    if not is_uniform(widths):
        fields["head_dim"] = hd
        fields["layer_num_attention_heads"] = [w.heads for w in widths]
        fields["layer_num_key_value_heads"] = [w.kv_heads for w in widths]
        fields["layer_intermediate_sizes"] = [w.mlp for w in widths]
    return fields
