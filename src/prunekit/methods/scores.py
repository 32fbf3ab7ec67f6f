"""Importance scores for unstructured pruning: low score = pruned first."""

from __future__ import annotations

import torch


def magnitude_scores(weight: torch.Tensor) -> torch.Tensor:
    """|W_ij|."""
    return weight.abs().float()


def wanda_scores(weight: torch.Tensor, act_norm: torch.Tensor) -> torch.Tensor:
    """S_ij = |W_ij| · ‖X_j‖₂ (Sun et al., 2023)."""
    return weight.abs().float() * act_norm.float().to(weight.device)[None, :]
