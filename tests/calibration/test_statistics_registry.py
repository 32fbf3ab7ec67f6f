"""A method brings its own statistic: a `Statistic` subclass and a `Pruner` that names it, both
registered, prune a real (tiny) model with no edit to a closed set; the built-ins are unchanged."""

from __future__ import annotations

import torch

import prunekit
from conftest import tiny_model
from prunekit.calibration import stats as st
from prunekit.methods import pruners


class AbsSum(st.Statistic):
    """Σ |x_j| per input channel (a statistic prunekit does not ship)."""

    name = "abs_sum"

    def add(self, x: torch.Tensor) -> None:
        part = x.abs().sum(0)
        self.value = part if self.value is None else self.value + part


class L1Activation(pruners.Pruner):
    """|W_ij| · Σ_t |x_tj|: Wanda with an L1 activation norm."""

    name = "l1act"
    needs = frozenset({"abs_sum"})

    def scores(self, weight: torch.Tensor, stats) -> torch.Tensor:
        return weight.abs() * stats.get("abs_sum")


def _ids() -> torch.Tensor:
    return torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(0))


def test_a_new_statistic_and_method_prune_a_model_by_their_own_scores(monkeypatch):
    monkeypatch.setitem(st.STATISTICS, "abs_sum", AbsSum)
    monkeypatch.setitem(pruners.PRUNERS, "l1act", L1Activation)
    model = tiny_model()
    dense = {n: m.weight.detach().clone() for n, m in model.named_modules() if "mlp.up" in n}
    inputs: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module, args, output) -> None:  # returns None: the output stays as it is
            inputs[name] = args[0].detach()

        return hook

    mods = dict(model.named_modules())
    hooks = [
        mods[n].register_forward_hook(keep(n)) for n in dense if n.startswith("model.layers.0.")
    ]
    ids = _ids()
    with torch.no_grad():
        model(ids)  # layer 0's input is the same before and after pruning anything
    for h in hooks:
        h.remove()
    prunekit.prune(model, calib=ids, method="l1act", sparsity=0.5, seq_len=16, calib_samples=4)
    (name,) = inputs
    x = inputs[name].reshape(-1, inputs[name].shape[-1]).float()
    by_hand = dense[name].abs() * x.abs().sum(0)
    k = by_hand.shape[1] // 2
    expected = torch.zeros_like(by_hand, dtype=torch.bool)
    expected.scatter_(1, by_hand.argsort(dim=1)[:, :k], True)
    weight = dict(model.named_modules())[name].weight
    assert torch.equal(weight == 0, expected)


def test_builtin_statistics_are_registry_entries_with_their_sizes():
    assert list(st.STATISTICS) == [st.SQ_NORM, st.HESSIAN]
    assert st.large_kinds([st.SQ_NORM, st.HESSIAN]) == {st.HESSIAN} == st.LARGE
    s = st.LinearStats(frozenset({st.SQ_NORM, st.HESSIAN}))
    x = torch.randn(9, 600, generator=torch.Generator().manual_seed(1))
    s.add(x)
    s.add(x)
    torch.testing.assert_close(s.xtx, 2 * x.T @ x, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(s.sq_sum, 2 * (x * x).sum(0))
    assert s.get("missing") is None
