"""Which parameters recovery trains: norms and biases (PERP), masked LoRA, or the surviving weights."""

from __future__ import annotations

from torch import nn

from prunekit.models.adapters import DecoderAdapter
from prunekit.recovery.lora import attach_lora
from prunekit.recovery.masks import Layers, SparsityMasks, decoder_linears, in_scope

TRAINABLE = ("norms", "lora", "full")


def _is_norm(module: nn.Module) -> bool:
    return "norm" in type(module).__name__.lower()


def norms_and_biases(
    model: nn.Module, adapter: DecoderAdapter, only: Layers = None
) -> list[nn.Parameter]:
    """Every norm weight/bias and Linear bias of the decoder (final norm included), or of the
    layers `only`."""
    layers = adapter.layers(model)
    scopes = [layer for i, layer in enumerate(layers) if in_scope(i, only)]
    scopes += [adapter.final_norm(model)] if only is None else []
    params: list[nn.Parameter] = []
    for scope in scopes:
        for module in scope.modules():
            if _is_norm(module):
                params += list(module.parameters(recurse=False))
    linears = decoder_linears(model, adapter, only).values()
    return params + [lin.bias for lin in linears if lin.bias is not None]


def select_trainable(
    model: nn.Module,
    adapter: DecoderAdapter,
    which: str,
    masks: SparsityMasks,
    lora_rank: int = 16,
    lora_alpha: float = 32.0,
    only: Layers = None,
) -> list[nn.Parameter]:
    """Freeze everything, then unfreeze (or attach) the chosen set of the decoder (or of the
    layers `only`); embeddings and the output head stay frozen."""
    model.requires_grad_(False)
    if which == "norms":
        params = norms_and_biases(model, adapter, only)
    elif which == "full":
        params = [lin.weight for lin in decoder_linears(model, adapter, only).values()]
        params += norms_and_biases(model, adapter, only)
    elif which == "lora":
        targets = {}
        for i, layer in enumerate(adapter.layers(model)):
            if not in_scope(i, only):
                continue
            for name, lin in adapter.linears(layer).items():
                parent, _, attr = name.rpartition(".")
                targets[f"layers.{i}.{name}"] = (layer.get_submodule(parent), attr, lin)
        params = attach_lora(targets, masks.keeps, lora_rank, lora_alpha)
    else:
        raise ValueError(f"unknown trainable set {which!r}")
    unique = list({id(p): p for p in params}.values())
    for p in unique:
        p.requires_grad_(True)
    return unique
