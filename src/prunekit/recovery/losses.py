"""Distillation losses as pure functions: token-level KL to the teacher, over the student's vocabulary."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def teacher_log_probs(
    teacher_logits: torch.Tensor, teacher_ids: torch.Tensor | None, temperature: float = 1.0
) -> torch.Tensor:
    """The teacher's next-token log-distribution over the student's tokens: gathered at the
    student's kept ids (teacher id of each student token) and renormalised when the vocabularies differ."""
    logits = teacher_logits.float()
    if teacher_ids is not None:
        logits = logits.index_select(-1, teacher_ids.to(logits.device))
    return F.log_softmax(logits / temperature, dim=-1)


def kl_sum(
    student_logits: torch.Tensor,
    teacher_logp: torch.Tensor,
    weights: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Σ_tokens w · KL(p_teacher ‖ p_student); the caller divides by the (global) weight sum."""
    vocab = teacher_logp.shape[-1]
    student_logp = F.log_softmax(student_logits[..., :vocab].float() / temperature, dim=-1)
    per_token = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)
    return (per_token * weights).sum() * temperature**2


def hidden_mse_sum(
    student: torch.Tensor, teacher: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Σ_tokens w · mean-over-features (h_s − h_t)²."""
    return (((student.float() - teacher.float()) ** 2).mean(-1) * weights).sum()
