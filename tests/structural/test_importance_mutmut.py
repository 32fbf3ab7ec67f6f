"""Gradient pass and group terms on a hand-made one-block LM (no transformers model), written
against mutmut run 2's survivors in importance.py (MUTATION.md §7): batch count, Fisher only when
asked, float32 sums, the progress bar, no KV cache, only block Linears trainable, the bias's
W²·F entries, the base offset and the fused record."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunekit.calibration.context import RunContext
from prunekit.structural.groups import Part
from prunekit.structural.importance import (
    Fused,
    GradStats,
    ParamMix,
    TaylorElement,
    TaylorVector,
    accumulate_gradients,
    group_terms,
)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 3)


class _Decoder(nn.Module):
    """Embedding → one block's Linear; records (use_cache, embedding trainable) per call."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(5, 3)
        self.layers = nn.ModuleList([_Block()])
        self.seen: list[tuple[object, bool]] = []

    def forward(self, input_ids: torch.Tensor, **kwargs: object) -> SimpleNamespace:
        self.seen.append((kwargs.get("use_cache", "absent"), self.emb.weight.requires_grad))
        return SimpleNamespace(last_hidden_state=self.layers[0].proj(self.emb(input_ids)))


class _LM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.decoder = _Decoder()
        self.head = nn.Linear(3, 5, bias=False)


class _Adapter:
    """The five DecoderAdapter calls the gradient pass makes."""

    def layers(self, model: _LM) -> nn.ModuleList:
        return model.decoder.layers

    def linears(self, layer: _Block) -> dict[str, nn.Linear]:
        return {"proj": layer.proj}

    def decoder(self, model: _LM) -> _Decoder:
        return model.decoder

    def lm_head(self, model: _LM) -> nn.Linear:
        return model.head

    def finish_logits(self, model: _LM, logits: torch.Tensor) -> torch.Tensor:
        return logits


BATCHES = [torch.tensor([[0, 1, 2, 3]]), torch.tensor([[4, 3, 2, 1]]), torch.tensor([[1, 1, 0, 2]])]


def _plain_grads(model: _LM) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Brute force: each batch's mean next-token loss differentiated on its own (float64)."""
    m = _LM().double()
    m.load_state_dict(model.state_dict())
    out = []
    for ids in BATCHES:
        logits = m.head(m.decoder.layers[0].proj(m.decoder.emb(ids)))[:, :-1]
        loss = F.cross_entropy(logits.reshape(-1, 5), ids[:, 1:].reshape(-1))
        w, b = m.decoder.layers[0].proj.weight, m.decoder.layers[0].proj.bias
        out.append(torch.autograd.grad(loss, [w, b]))
    return out


def test_gradient_sums_count_every_batch_once_without_fisher_by_default() -> None:
    """Three batches: g = Σ per-batch gradients, batches = 3, fisher None, no KV cache asked for,
    only block Linears trainable during the pass and every flag restored after it."""
    model, adapter = _LM(), _Adapter()
    model.decoder.layers[0].proj.bias.requires_grad_(False)
    stats = accumulate_gradients(RunContext(model, adapter, BATCHES, progress=False))
    assert stats.batches == 3 and stats.fisher is None
    per_batch = _plain_grads(model)
    proj = model.decoder.layers[0].proj
    for p, j in ((proj.weight, 0), (proj.bias, 1)):
        want = sum(g[j] for g in per_batch)
        assert stats.grad[p].dtype == torch.float32
        torch.testing.assert_close(stats.grad[p].double(), want, rtol=1e-5, atol=1e-7)
    assert model.decoder.seen == [(False, False)] * 3
    assert model.decoder.emb.weight.requires_grad and not proj.bias.requires_grad
    assert proj.weight.requires_grad and all(p.grad is None for p in model.parameters())


def test_fisher_is_the_sum_of_squared_per_batch_gradients() -> None:
    """fisher=True: F = Σ_b g_b² per entry."""
    model = _LM()
    stats = accumulate_gradients(
        RunContext(model, _Adapter(), BATCHES, progress=False), fisher=True
    )
    proj = model.decoder.layers[0].proj
    per_batch = _plain_grads(model)
    for p, j in ((proj.weight, 0), (proj.bias, 1)):
        want = sum(g[j] ** 2 for g in per_batch)
        torch.testing.assert_close(stats.fisher[p].double(), want, rtol=1e-5, atol=1e-9)


def test_a_bfloat16_model_sums_its_gradients_in_float32() -> None:
    """Gradient and Fisher sums are float32 tensors even for bfloat16 weights."""
    model = _LM().to(torch.bfloat16)
    stats = accumulate_gradients(
        RunContext(model, _Adapter(), BATCHES, progress=False), fisher=True
    )
    assert {t.dtype for t in stats.grad.values()} == {torch.float32}
    assert {t.dtype for t in stats.fisher.values()} == {torch.float32}


def test_the_progress_bar_shows_by_default_and_not_when_turned_off(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Default: a "structured (gradients)" bar counting batches; progress=False: no output."""
    accumulate_gradients(RunContext(_LM(), _Adapter(), BATCHES))
    err = capsys.readouterr().err
    assert err.startswith("\rstructured (gradients): ") and "3/3" in err and "batch/s" in err
    accumulate_gradients(RunContext(_LM(), _Adapter(), BATCHES, progress=False))
    assert capsys.readouterr().err == ""


def test_group_terms_include_the_bias_in_both_products() -> None:
    """Two row groups of a 2 → 2 Linear: W·g and W²·F per row, the bias entry last."""
    layer = _Block()
    layer.proj = nn.Linear(2, 2)
    w, b = layer.proj.weight, layer.proj.bias
    with torch.no_grad():
        w.copy_(torch.tensor([[1.0, 2.0], [3.0, -1.0]]))
        b.copy_(torch.tensor([2.0, -3.0]))
    stats = GradStats(
        grad={w: torch.tensor([[1.0, 1.0], [2.0, 0.5]]), b: torch.tensor([1.0, 2.0])},
        fisher={w: torch.tensor([[1.0, 2.0], [3.0, 4.0]]), b: torch.tensor([0.5, 2.0])},
        batches=1,
    )
    kind = SimpleNamespace(parts=lambda _: [Part("proj", 0, torch.tensor([[0], [1]]))])
    terms = group_terms(layer, kind, stats, need_fisher=True)
    assert terms.wg.tolist() == [[1.0, 2.0, 2.0], [6.0, -0.5, -6.0]]
    assert terms.w2f.tolist() == [[1.0, 8.0, 2.0], [27.0, 4.0, 18.0]]


def test_single_metrics_add_no_constant() -> None:
    """Only the fused score has a log σ constant; the others' offset is 0."""
    metrics = torch.tensor([[1.0], [3.0]])
    for imp in (TaylorVector(), TaylorElement(), ParamMix()):
        assert imp.offset(metrics) == 0.0


def test_fused_needs_fisher_only_with_a_part_that_does() -> None:
    """Default parts: no Fisher pass; with param_mix among them: a Fisher pass."""
    assert Fused().needs_fisher is False
    assert Fused((TaylorVector(), ParamMix())).needs_fisher is True


def test_fused_info_records_each_sigma_and_their_log_sum() -> None:
    """Means 2 and 4: σ = √2 and 2, log σ sum = 1.5·ln 2, under these exact keys."""
    info = Fused().info(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
    assert info == {
        "sigma": {
            "taylor_vector": pytest.approx(math.sqrt(2)),
            "taylor_element": pytest.approx(2.0),
        },
        "log_sigma_sum": pytest.approx(1.5 * math.log(2)),
    }
