"""hooked_forward / statistics_pass on three bare Linears: one accumulator per input group, each
holding exactly the sums of what its Linears read (brute force on the recorded inputs)."""

import torch
from torch import nn

from prunekit.calibration.engine import hooked_forward, statistics_pass
from prunekit.calibration.stats import HESSIAN, SQ_NORM, LinearStats

TOL = {"rtol": 1e-5, "atol": 1e-6}  # float32 sums against float64 references


def _toy() -> tuple[dict[str, nn.Linear], torch.Tensor]:
    """Linears a and b read the same x; c reads a(x) + b(x)."""
    torch.manual_seed(0)
    linears = {"a": nn.Linear(5, 4), "b": nn.Linear(5, 4), "c": nn.Linear(4, 3)}
    return linears, torch.randn(2, 3, 5)


def _forward(linears: dict[str, nn.Linear], x: torch.Tensor) -> list[torch.Tensor]:
    """The toy block: c(a(x) + b(x))."""
    return [linears["c"](linears["a"](x) + linears["b"](x))]


def _reference(x: torch.Tensor, linears: dict[str, nn.Linear]) -> dict[str, torch.Tensor]:
    """Each Linear's input rows (tokens × d_in), in float64."""
    with torch.no_grad():
        mid = linears["a"](x) + linears["b"](x)
    return {
        "a": x.reshape(-1, 5).double(),
        "b": x.reshape(-1, 5).double(),
        "c": mid.reshape(-1, 4).double(),
    }


def test_without_input_groups_every_linear_has_its_own_exact_sums():
    """No groups given: three accumulators, each the Σx² and XᵀX of its own Linear's input."""
    linears, x = _toy()
    stats, outputs = hooked_forward(linears, {SQ_NORM, HESSIAN}, lambda: _forward(linears, x))
    assert len({id(s) for s in stats.values()}) == 3
    ref = _reference(x, linears)
    for n, rows in ref.items():
        assert stats[n].tokens == 6
        torch.testing.assert_close(stats[n].sq_sum.double(), (rows * rows).sum(0), **TOL)
        torch.testing.assert_close(stats[n].xtx.double(), rows.T @ rows, **TOL)
    torch.testing.assert_close(outputs[0], _forward(linears, x)[0], **TOL)


def test_an_input_group_shares_one_accumulator_fed_once():
    """a and b read the same tensor: one shared LinearStats holding that tensor's sums once."""
    linears, x = _toy()
    groups = (("a", "b"), ("c",))
    stats, _ = hooked_forward(linears, {SQ_NORM}, lambda: _forward(linears, x), groups)
    assert stats["a"] is stats["b"] and stats["c"] is not stats["a"]
    ref = _reference(x, linears)
    assert stats["a"].tokens == 6  # fed once, not once per member
    torch.testing.assert_close(stats["a"].sq_sum.double(), (ref["a"] ** 2).sum(0), **TOL)
    torch.testing.assert_close(stats["c"].sq_sum.double(), (ref["c"] ** 2).sum(0), **TOL)


def test_statistics_pass_shares_the_group_accumulator_too():
    """The truncated pass groups Linears the same way, with the same sums over every batch."""
    linears, x = _toy()
    groups = (("a", "b"), ("c",))
    stats = statistics_pass(linears, {SQ_NORM}, [lambda: _forward(linears, x)] * 2, groups)
    assert stats["a"] is stats["b"]
    ref = _reference(x, linears)
    assert stats["a"].tokens == 12 and stats["c"].tokens == 12
    torch.testing.assert_close(stats["a"].sq_sum.double(), 2 * (ref["a"] ** 2).sum(0), **TOL)
    torch.testing.assert_close(stats["c"].sq_sum.double(), 2 * (ref["c"] ** 2).sum(0), **TOL)


def test_linear_stats_sum_over_every_add_and_normalise_by_all_tokens():
    """Two adds of different sizes: Σx², XᵀX, a = √Σx² and H = 2XᵀX/n over all 7 rows."""
    torch.manual_seed(1)
    first, second = torch.randn(1, 3, 4), torch.randn(4, 4)
    s = LinearStats(frozenset({SQ_NORM, HESSIAN}))
    s.add(first)
    s.add(second)
    rows = torch.cat([first.reshape(-1, 4), second]).double()
    assert s.tokens == 7
    torch.testing.assert_close(s.act_norm.double(), rows.pow(2).sum(0).sqrt(), **TOL)
    torch.testing.assert_close(s.hessian.double(), 2 * rows.T @ rows / 7, **TOL)
