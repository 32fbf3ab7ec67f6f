"""LoRA whose update never touches a pruned weight, so merging keeps every zero (SQFT-style).

peft's LoRA adds B·A to the whole weight and cannot keep a sparsity mask through the merge;
masking only at merge time would make the merged model differ from the trained one. Here the
mask is part of the forward, so what was trained is exactly what is merged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from prunekit.errors import PrunekitError


class MaskedLoRALinear(nn.Module):
    """y = x·(W + s·(B·A) ⊙ M)ᵀ + b; without a mask the update runs factorised, x·Aᵀ·Bᵀ·s."""

    def __init__(
        self, base: nn.Linear, rank: int, alpha: float, keep: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        if not (isinstance(rank, int) and rank >= 1) or not (math.isfinite(alpha) and alpha > 0):
            raise PrunekitError(
                f"LoRA needs rank >= 1 and alpha > 0 (scale alpha/rank), got rank {rank!r}, "
                f"alpha {alpha!r}; fix --lora-rank / --lora-alpha"
            )
        self.base = base
        base.weight.requires_grad_(False)
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(rank, w.shape[1], dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(w.shape[0], rank, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = alpha / rank
        self.keep = keep

    def delta(self) -> torch.Tensor:
        d = (self.lora_B @ self.lora_A) * self.scale
        return d * self.keep.to(d.device, d.dtype) if self.keep is not None else d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.keep is None:
            return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scale
        return F.linear(x, self.base.weight + self.delta(), self.base.bias)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        self.base.weight += self.delta().to(self.base.weight.dtype)
        return self.base


def attach_lora(
    linears: dict[str, tuple[nn.Module, str, nn.Linear]],
    keeps: dict[str, torch.Tensor],
    rank: int,
    alpha: float,
) -> list[nn.Parameter]:
    """Wrap each Linear (given as key → (parent, attribute, module)); return the LoRA parameters."""
    params: list[nn.Parameter] = []
    for key, (parent, attr, lin) in linears.items():
        wrapped = MaskedLoRALinear(lin, rank, alpha, keeps.get(key))
        setattr(parent, attr, wrapped)
        params += [wrapped.lora_A, wrapped.lora_B]
    return params


def merge_lora(model: nn.Module) -> int:
    """Replace every MaskedLoRALinear by its merged Linear; return how many were merged."""
    count = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, MaskedLoRALinear):
                setattr(module, name, child.merged())
                count += 1
    return count
