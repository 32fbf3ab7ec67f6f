"""Per-Linear input statistics accumulated over calibration tokens (only what a method asks for)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

SQ_NORM = "sq_norm"  # Σ x_j² per input channel (Wanda, OWL, NeuroAL)
HESSIAN = "hessian"  # Xᵀ X (SparseGPT)
KINDS = (SQ_NORM, HESSIAN)
LARGE = frozenset({HESSIAN})  # d_in² per Linear: too big to hold for every layer of a model at once


@dataclass
class LinearStats:
    """Running sums over the rows x (tokens) fed to one Linear layer."""

    kinds: frozenset[str]
    tokens: int = 0
    sq_sum: torch.Tensor | None = None
    xtx: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        self.tokens += x.shape[0]
        if SQ_NORM in self.kinds:
            part = (x * x).sum(0)  # one pass less than pow(2); the same sums
            self.sq_sum = part if self.sq_sum is None else self.sq_sum.add_(part)
        if HESSIAN in self.kinds:
            # hooks run inside the forwards' autocast, which would make this matmul bfloat16
            with torch.autocast(x.device.type, enabled=False):
                part = x.T @ x
            self.xtx = part if self.xtx is None else self.xtx.add_(part)

    @property
    def act_norm(self) -> torch.Tensor:
        """a_j = ‖X_:,j‖₂, the L2 norm of input channel j over all tokens."""
        if self.sq_sum is None:
            raise ValueError("sq_norm statistics were not collected")
        return self.sq_sum.sqrt()

    @property
    def hessian(self) -> torch.Tensor:
        """H = 2 XᵀX / n, the layer-wise reconstruction Hessian."""
        if self.xtx is None:
            raise ValueError("hessian statistics were not collected")
        return self.xtx * (2.0 / max(self.tokens, 1))
