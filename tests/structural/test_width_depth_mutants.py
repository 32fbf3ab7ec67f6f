"""Small width/depth helpers on hand values: slicing a Linear, tie-breaks, Taylor's sign, the
depth agreement record and the remove-count checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.errors import PrunekitError
from prunekit.structural.depth import DepthResult, check_remove, ranking_agreement
from prunekit.structural.width import select_channels, slice_linear, taylor_importance


@torch.no_grad()
def test_slice_linear_rows_take_their_bias_columns_do_not_and_frozen_stays_frozen():
    """Rows 0, 2 of a frozen 3 → 4 Linear with their bias entries; then column 1 alone."""
    lin = nn.Linear(3, 4)
    lin.requires_grad_(False)
    weight, bias = lin.weight.clone(), lin.bias.clone()
    slice_linear(lin, torch.tensor([0, 2]), 0)
    assert torch.equal(lin.weight, weight[[0, 2]]) and torch.equal(lin.bias, bias[[0, 2]])
    assert (lin.out_features, lin.in_features) == (2, 3)
    slice_linear(lin, torch.tensor([1]), 1)
    assert torch.equal(lin.weight, weight[[0, 2]][:, [1]]) and torch.equal(lin.bias, bias[[0, 2]])
    assert (lin.out_features, lin.in_features) == (2, 1)
    assert not lin.weight.requires_grad and not lin.bias.requires_grad


def test_select_channels_ties_go_to_the_lower_index():
    """Five equal scores, keep 2 (and a tie straddling the cut): the lowest indices, ascending."""
    assert select_channels(torch.full((5,), 2.0), 2).tolist() == [0, 1]
    assert select_channels(torch.tensor([1.0, 3.0, 1.0, 0.0, 1.0, 3.0]), 3).tolist() == [0, 1, 5]


def test_taylor_importance_is_the_size_of_the_signed_sum():
    """|Σ a·∂L/∂a|: a negative sum matters as much as a positive one."""
    assert taylor_importance(torch.tensor([-2.0, 1.0, 0.0])).tolist() == [2.0, 1.0, 0.0]


def test_ranking_agreement_compares_the_first_common_removals():
    """Orders are cut to the shorter one before comparing; no removals agree fully."""

    def result(removed: list[int]) -> DepthResult:
        return DepthResult("kl", False, removed)

    assert ranking_agreement(result([3, 1, 2]), result([1, 3])) == {
        "removed_exact": [3, 1],
        "removed_approx": [1, 3],
        "same_set": True,
        "same_order": False,
        "set_overlap": 1.0,
    }
    got = ranking_agreement(result([3, 1]), result([3, 0, 1]))
    assert (got["same_set"], got["same_order"], got["set_overlap"]) == (False, False, 0.5)
    got = ranking_agreement(result([2, 0]), result([2, 0]))
    assert (got["same_set"], got["same_order"], got["set_overlap"]) == (True, True, 1.0)
    assert ranking_agreement(result([]), result([1]))["set_overlap"] == 1.0


def test_check_remove_allows_one_to_all_but_one_layer():
    """1 … L−1 pass; 0, booleans, floats and L are one line each."""
    check_remove(1, 4)
    check_remove(3, 4)
    for bad in (0, True, 2.0, -1):
        with pytest.raises(
            PrunekitError, match=f"depth remove must be a whole number ≥ 1, got {bad!r}"
        ):
            check_remove(bad, 4)
    with pytest.raises(
        PrunekitError, match="cannot remove 4 of 4 layers .* choose depth remove ≤ 3$"
    ):
        check_remove(4, 4)
