"""Compact pruning masks: one bit per weight in a safetensors file, and applying them to a model.

A mask file holds, per decoder Linear ("layers.{i}.{projection}"), its pruned set packed 8 per
byte; the metadata records shapes and provenance. A 0.5B model's masks take ~45 MB, its fp32
checkpoint ~2 GB, so a sweep of sub-models stores masks and `materialize` builds checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunekit.errors import PrunekitError
from prunekit.methods.masks import zero_masked_
from prunekit.models.adapters import DecoderAdapter

FORMAT = "prunekit-masks-v1"


def pack(mask: torch.Tensor) -> torch.Tensor:
    """Bool tensor -> uint8 tensor of its flattened bits (little bit order)."""
    bits = np.packbits(mask.detach().cpu().numpy().reshape(-1), bitorder="little")
    return torch.from_numpy(bits)


def unpack(packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    n = int(np.prod(shape))
    bits = np.unpackbits(packed.numpy(), count=n, bitorder="little")
    return torch.from_numpy(bits.astype(bool)).reshape(shape)


def save_masks(masks: dict[str, torch.Tensor], path: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    shapes = {k: list(v.shape) for k, v in masks.items()}
    metadata = {"format": FORMAT, "shapes": json.dumps(shapes), "meta": json.dumps(meta)}
    save_file({k: pack(v) for k, v in masks.items()}, str(path), metadata=metadata)


def load_masks(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise PrunekitError(
            f"mask file '{path}' does not exist; check the run folder and --language/--sparsity"
        )
    with safe_open(str(path), framework="pt") as fh:
        metadata = fh.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise PrunekitError(f"'{path}' is not a prunekit mask file")
        shapes = json.loads(metadata["shapes"])
        masks = {k: unpack(fh.get_tensor(k), tuple(shapes[k])) for k in shapes}
    return masks, json.loads(metadata.get("meta", "{}"))


def named_linears(model: nn.Module, adapter: DecoderAdapter) -> dict[str, nn.Linear]:
    """'layers.{i}.{projection}' -> Linear, the keys used by records and masks."""
    return {
        f"layers.{i}.{name}": lin
        for i, layer in enumerate(adapter.layers(model))
        for name, lin in adapter.linears(layer).items()
    }


@torch.no_grad()
def apply_masks(model: nn.Module, adapter: DecoderAdapter, masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked weights of the model's decoder Linears in place."""
    linears = named_linears(model, adapter)
    missing = set(masks) - set(linears)
    if missing:
        raise PrunekitError(
            f"the masks name layers this model lacks (e.g. {sorted(missing)[0]}); use the run's base model"
        )
    for key, mask in masks.items():
        weight = linears[key].weight
        if tuple(weight.shape) != tuple(mask.shape):
            raise PrunekitError(
                f"mask of {key} has shape {tuple(mask.shape)}, the model {tuple(weight.shape)}"
            )
        zero_masked_(weight, mask.to(weight.device))
