"""Make per-layer-width models by hand (independent of prunekit's structural pruning code).

`drop_kv_groups` removes whole grouped-query groups (a kv head with its query heads) from one
layer; `drop_mlp_channels` removes MLP channels. Each updates the module's own config copy, as
structural pruning does. `masked_dense` is the reference: the dense model with the removed
heads' output columns and the removed channels' output columns zeroed computes the same logits.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
from torch import nn

from prunekit.models.adapters import adapter_for

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from tiny_families import FAMILIES, tiny_family_model  # noqa: E402

__all__ = ["FAMILIES", "tiny_family_model"]


def _keep(linear: nn.Linear, idx: torch.Tensor, dim: int) -> None:
    linear.weight = nn.Parameter(linear.weight.data.index_select(dim, idx).clone())
    if dim == 0:
        if linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias.data.index_select(0, idx).clone())
        linear.out_features = len(idx)
    else:
        linear.in_features = len(idx)


def _own_config(module: nn.Module, **values) -> None:
    if getattr(module, "config", None) is not None:
        module.config = copy.copy(module.config)
        for key, value in values.items():
            setattr(module.config, key, value)


def _head_rows(heads: list[int], hd: int, offset: int = 0) -> torch.Tensor:
    return torch.cat([torch.arange(h * hd, (h + 1) * hd) for h in heads]) + offset


def kv_group_heads(attn: nn.Module, n_heads: int, n_kv: int, drop: list[int]):
    """(query heads kept, kv heads kept) when the kv groups in `drop` go."""
    group = n_heads // n_kv
    kv = [g for g in range(n_kv) if g not in drop]
    return [g * group + j for g in kv for j in range(group)], kv


def drop_kv_groups(model: nn.Module, index: int, drop: list[int]) -> None:
    """Remove kv groups `drop` (with their query heads) from layer `index`."""
    adapter = adapter_for(model)
    layer = adapter.layers(model)[index]
    roles = adapter.attention
    attn = layer.get_submodule(roles.output.rpartition(".")[0])
    hd = attn.head_dim
    o = layer.get_submodule(roles.output)
    n_heads = o.in_features // hd
    if roles.fused:
        n_kv = (layer.get_submodule(roles.inputs[0]).out_features // hd - n_heads) // 2
    else:
        n_kv = layer.get_submodule(roles.inputs[1]).out_features // hd
    q, kv = kv_group_heads(attn, n_heads, n_kv, drop)
    q_rows, kv_rows = _head_rows(q, hd), _head_rows(kv, hd)
    if roles.fused:
        rows = torch.cat(
            [q_rows, _head_rows(kv, hd, n_heads * hd), _head_rows(kv, hd, (n_heads + n_kv) * hd)]
        )
        _keep(layer.get_submodule(roles.inputs[0]), rows, 0)
    else:
        for name, idx in zip(roles.inputs, (q_rows, kv_rows, kv_rows)):
            _keep(layer.get_submodule(name), idx, 0)
    _keep(o, q_rows, 1)
    _own_config(attn, num_attention_heads=len(q), num_key_value_heads=len(kv))
    if hasattr(attn, "num_key_value_heads"):  # Phi-3 splits its fused qkv by this attribute
        attn.num_key_value_heads = len(kv)


def drop_mlp_channels(model: nn.Module, index: int, drop: list[int]) -> None:
    """Remove MLP channels `drop` from layer `index` (both halves of a fused gate_up)."""
    adapter = adapter_for(model)
    layer = adapter.layers(model)[index]
    width = adapter.mlp_width(layer)
    idx = torch.tensor([c for c in range(width) if c not in drop])
    rows = torch.cat([idx, idx + width]) if adapter.mlp.fused else idx
    for name in adapter.mlp.inputs:
        _keep(layer.get_submodule(name), rows, 0)
    _keep(layer.get_submodule(adapter.mlp.output), idx, 1)
    mlp = layer.get_submodule(adapter.mlp.output.rpartition(".")[0])
    _own_config(mlp, intermediate_size=len(idx))
    if hasattr(mlp, "intermediate_size"):
        mlp.intermediate_size = len(idx)


def masked_dense(model: nn.Module, plan: dict) -> nn.Module:
    """A copy of dense `model` whose removed heads / channels (per `plan`) contribute nothing."""
    adapter = adapter_for(model)
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for index, (groups, channels) in plan.items():
            layer = adapter.layers(masked)[index]
            o = layer.get_submodule(adapter.attention.output)
            attn = layer.get_submodule(adapter.attention.output.rpartition(".")[0])
            hd = attn.head_dim
            n_heads = o.in_features // hd
            n_kv = model.config.num_key_value_heads
            kept, _ = kv_group_heads(attn, n_heads, n_kv, groups)
            gone = [h for h in range(n_heads) if h not in kept]
            if gone:
                o.weight[:, _head_rows(gone, hd)] = 0
            if channels:
                layer.get_submodule(adapter.mlp.output).weight[:, channels] = 0
    return masked


# layer → (kv groups removed, MLP channels removed): some layers lose heads, others channels
PLAN = {0: ([1], []), 1: ([], list(range(0, 64, 3))), 2: ([0], list(range(40, 64)))}


def make_hetero(model: nn.Module, plan: dict | None = None) -> dict:
    """Prune `model` in place by `plan` (default PLAN); returns the plan used."""
    plan = PLAN if plan is None else plan
    for index, (groups, channels) in plan.items():
        if groups:
            drop_kv_groups(model, index, groups)
        if channels:
            drop_mlp_channels(model, index, channels)
    return plan


def uniform_plan(model: nn.Module) -> dict:
    """The same kv group and the same MLP channels removed from every layer."""
    n = len(adapter_for(model).layers(model))
    return {i: ([1], list(range(0, 64, 4))) for i in range(n)}


def hetero_model(family: str) -> tuple[nn.Module, dict]:
    """A tiny random model of `family` with per-layer widths, and its plan."""
    model = tiny_family_model(family)
    return model, make_hetero(model)
