"""Per-Linear input statistics accumulated over calibration tokens (only what a method asks for)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

SQ_NORM = "sq_norm"  # Σ x_j² per input channel (Wanda, OWL, NeuroAL)
HESSIAN = "hessian"  # Xᵀ X (SparseGPT)
KINDS = (SQ_NORM, HESSIAN)
LARGE = frozenset({HESSIAN})  # d_in² per Linear: too big to hold for every layer of a model at once


def gram_bands(d: int) -> list[tuple[int, int]]:
    """Row bands [a, b) of XᵀX computed from the diagonal rightwards (the rest is their mirror):
    about 1.3-1.5x less time than the full product for wide inputs; one band below 512."""
    parts = 1 if d < 512 else 4
    return [(i * d // parts, (i + 1) * d // parts) for i in range(parts)]


@dataclass
class LinearStats:
    """Running sums over the rows x (tokens) fed to one Linear layer."""

    kinds: frozenset[str]
    tokens: int = 0
    sq_sum: torch.Tensor | None = None
    gram: torch.Tensor | None = None  # XᵀX, below the diagonal bands only once `xtx` is read

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        self.tokens += x.shape[0]
        if SQ_NORM in self.kinds:
            part = (x * x).sum(0)  # one pass less than pow(2); the same sums
            self.sq_sum = part if self.sq_sum is None else self.sq_sum.add_(part)
        if HESSIAN in self.kinds:
            # hooks run inside the forwards' autocast, which would make this matmul bfloat16
            with torch.autocast(x.device.type, enabled=False):
                self._add_gram(x)

    def _add_gram(self, x: torch.Tensor) -> None:
        bands = gram_bands(x.shape[1])
        if len(bands) == 1:
            part = x.T @ x
            self.gram = part if self.gram is None else self.gram.add_(part)
            return
        if self.gram is None:
            self.gram = x.new_zeros(x.shape[1], x.shape[1])
        for a, b in bands:
            self.gram[a:b, a:].addmm_(x[:, a:b].T, x[:, a:])

    @property
    def xtx(self) -> torch.Tensor | None:
        """XᵀX over all tokens so far (the lower bands mirrored from the upper ones in place)."""
        if self.gram is not None:
            for a, b in gram_bands(self.gram.shape[0])[:-1]:
                self.gram[b:, a:b] = self.gram[a:b, b:].T
        return self.gram

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
