"""Group importances from one backward pass of the calibration language-model loss (DESIGN §3.5).

`accumulate_gradients` runs forward+backward over the calibration batches once and keeps, for
every block Linear's weight and bias, g = Σ_batches ∂L_b/∂W (L_b = mean next-token loss of batch
b) and, when asked, F = Σ_batches (∂L_b/∂W)² — the empirical Fisher diagonal over batches.
`group_terms` gathers, per group, the products W·g (and W²·F) of every parameter it owns.

An `Importance` turns those into scores in two steps: `metrics` (per block: G groups × M
columns) and `combine` (over all groups of one kind in the model: N × M → N scores):
- `taylor_vector`: |Σ_{i∈g} W_i g_i| — first-order loss change of removing the group as a whole;
- `taylor_element`: Σ_{i∈g} |W_i g_i| — the same per weight, magnitudes summed;
- `param_mix` (LLM-Pruner's `param_mix`): Σ_{i∈g} |W_i g_i − ½ W_i² F_i|, the first- and
  second-order terms of the Taylor expansion of L(W − W_i e_i) per weight, the Hessian diagonal
  read as the Fisher diagonal F above (per-batch squared gradients, summed like g);
- `fused`: I = Σ_m I_m/(2σ_m²) + log σ_m over taylor_vector and taylor_element with the
  closed-form σ_m² = mean_g I_m(g) over the kind's groups (the σ that minimise the total), so
  each metric is divided by twice its mean; σ_m are recorded. log σ_m is the same for every
  group: it does not change any ranking, and `offset` reports it so spreads can be measured
  without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

from prunekit.config.registry import Registry
from prunekit.models.adapters import DecoderAdapter
from prunekit.structural.groups import GroupKind

if TYPE_CHECKING:
    from prunekit.calibration.context import RunContext


@dataclass
class GradStats:
    """Accumulated gradients (and Fisher diagonals) of every block Linear, keyed by parameter."""

    grad: dict[nn.Parameter, torch.Tensor]
    fisher: dict[nn.Parameter, torch.Tensor] | None
    batches: int


@dataclass(frozen=True)
class Terms:
    """One block's groups: W·g per owned parameter (G × E), and W²·F where the importance needs it."""

    wg: torch.Tensor
    w2f: torch.Tensor | None = None


def lm_loss(model: nn.Module, adapter: DecoderAdapter, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of a batch, through the family's logit post-processing."""
    hidden = adapter.decoder(model)(input_ids=batch, use_cache=False).last_hidden_state
    logits = adapter.finish_logits(model, adapter.lm_head(model)(hidden[:, :-1])).float()
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)
    )


def block_parameters(model: nn.Module, adapter: DecoderAdapter) -> list[nn.Parameter]:
    """Weights and biases of every prunable Linear of every block."""
    params = []
    for layer in adapter.layers(model):
        for linear in adapter.linears(layer).values():
            params += [p for p in (linear.weight, linear.bias) if p is not None]
    return params


def accumulate_gradients(ctx: RunContext, fisher: bool = False) -> GradStats:
    """One forward+backward per batch of the context; float32 sums of the block Linears'
    gradients (the model already on the context's device)."""
    model, adapter, device = ctx.model, ctx.adapter, ctx.device
    params = block_parameters(model, adapter)
    was = {id(p): p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    grad = {p: torch.zeros_like(p, dtype=torch.float32) for p in params}
    fish = {p: torch.zeros_like(p, dtype=torch.float32) for p in params} if fisher else None
    count = 0
    try:
        for p in params:
            p.requires_grad_(True)
        for batch in tqdm(
            ctx.batches, desc="structured (gradients)", unit="batch", disable=not ctx.progress
        ):
            with torch.enable_grad():
                lm_loss(model, adapter, batch.to(device)).backward()
            for p in params:
                g = p.grad.float()
                grad[p].add_(g)
                if fish is not None:
                    fish[p].add_(g * g)
                p.grad = None
            count += 1
    finally:
        for p in model.parameters():
            p.grad = None
            p.requires_grad_(was[id(p)])
    return GradStats(grad, fish, count)


def group_terms(layer: nn.Module, kind: GroupKind, stats: GradStats, need_fisher: bool) -> Terms:
    """Per group of one block: W·g (and W²·F) over every weight and bias entry it owns."""
    wg, w2f = [], []
    for part in kind.parts(layer):
        linear = layer.get_submodule(part.name)
        w, b = linear.weight, linear.bias
        bw = None if b is None else b.detach().float() * stats.grad[b]
        wg.append(part.gather(w.detach().float() * stats.grad[w], bw))
        if need_fisher:
            bf = None if b is None else b.detach().float().square() * stats.fisher[b]
            w2f.append(part.gather(w.detach().float().square() * stats.fisher[w], bf))
    return Terms(torch.cat(wg, 1), torch.cat(w2f, 1) if need_fisher else None)


class Importance:
    """Scores groups: `metrics` per block (G × M), then `combine` over a kind's groups (N × M → N)."""

    name: str = ""
    needs_fisher: bool = False

    def metrics(self, terms: Terms) -> torch.Tensor:
        raise NotImplementedError

    def combine(self, metrics: torch.Tensor) -> torch.Tensor:
        return metrics[:, 0]

    def info(self, metrics: torch.Tensor) -> dict:
        """What to record about the combination (σs for `fused`)."""
        return {}

    def offset(self, metrics: torch.Tensor) -> float:
        """A constant added to every score (it changes no ranking; spreads are measured without it)."""
        return 0.0


class TaylorVector(Importance):
    """|Σ_{i∈g} W_i·g_i|."""

    name = "taylor_vector"

    def metrics(self, terms: Terms) -> torch.Tensor:
        return terms.wg.double().sum(1).abs().unsqueeze(1)


class TaylorElement(Importance):
    """Σ_{i∈g} |W_i·g_i|."""

    name = "taylor_element"

    def metrics(self, terms: Terms) -> torch.Tensor:
        return terms.wg.double().abs().sum(1).unsqueeze(1)


class ParamMix(Importance):
    """Σ_{i∈g} |W_i·g_i − ½ W_i²·F_i| (F: Fisher diagonal over calibration batches)."""

    name = "param_mix"
    needs_fisher = True

    def metrics(self, terms: Terms) -> torch.Tensor:
        return (terms.wg.double() - 0.5 * terms.w2f.double()).abs().sum(1).unsqueeze(1)


def uncertainty_sigmas(metrics: torch.Tensor) -> torch.Tensor:
    """Closed-form σ_m = √(mean over groups of metric m) (a tiny floor keeps all-zero metrics finite)."""
    return metrics.double().mean(0).clamp_min(1e-300).sqrt()


class Fused(Importance):
    """I = Σ_m I_m/(2σ_m²) + log σ_m over component importances, σ_m² = mean_g I_m(g)."""

    name = "fused"

    def __init__(self, parts: tuple[Importance, ...] | None = None) -> None:
        self.parts = parts or (TaylorVector(), TaylorElement())
        self.needs_fisher = any(p.needs_fisher for p in self.parts)

    def metrics(self, terms: Terms) -> torch.Tensor:
        return torch.cat([p.metrics(terms) for p in self.parts], 1)

    def combine(self, metrics: torch.Tensor) -> torch.Tensor:
        sigma = uncertainty_sigmas(metrics)
        return (metrics.double() / (2 * sigma**2)).sum(1) + self.offset(metrics)

    def offset(self, metrics: torch.Tensor) -> float:
        return float(torch.log(uncertainty_sigmas(metrics)).sum())

    def info(self, metrics: torch.Tensor) -> dict:
        sigma = uncertainty_sigmas(metrics)
        return {
            "sigma": {p.name: float(s) for p, s in zip(self.parts, sigma)},
            "log_sigma_sum": self.offset(metrics),
        }


REGISTRY: Registry[type[Importance]] = Registry(
    "importance", (Fused, TaylorVector, TaylorElement, ParamMix)
)


def kind_scores(
    layers, kind: GroupKind, importance: Importance, stats: GradStats
) -> tuple[list[torch.Tensor], dict, float]:
    """Every block's group scores for one kind, the combination's record and its constant offset."""
    per_layer = [
        importance.metrics(group_terms(layer, kind, stats, importance.needs_fisher))
        for layer in layers
    ]
    sizes = [m.shape[0] for m in per_layer]
    metrics = torch.cat(per_layer)
    scores = importance.combine(metrics).cpu().split(sizes)
    return list(scores), importance.info(metrics), importance.offset(metrics)
