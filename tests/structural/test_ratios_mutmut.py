"""Block ratios and the budget split on hand values, written against mutmut run 2's survivors in
ratios.py (MUTATION.md §7): defaults, messages, caps, skipped blocks, the tolerance, the rounding
order and its near-tie rule."""

from __future__ import annotations

import pytest
import torch

from prunekit.errors import PrunekitError
from prunekit.structural.ratios import Blocks, allocate, layer_weights


def test_skip_defaults_leave_the_first_three_and_the_last_block_whole() -> None:
    """layer_weights("skip") without skip_first / skip_last: blocks 0-2 and the last get 0."""
    scores = [torch.ones(2)] * 6
    assert layer_weights("skip", scores) == [0.0, 0.0, 0.0, 1.0, 1.0, 0.0]


def test_adaptive_weights_take_the_offset_off_before_the_cv() -> None:
    """Scores [3, 5], [3, 4] less offset 2: CVs 1/2 and 1/3, mean 5/12, so weights 6/5 and 4/5."""
    scores = [torch.tensor([3.0, 5.0]), torch.tensor([3.0, 4.0])]
    assert layer_weights("adaptive", scores, offset=2.0) == pytest.approx([1.2, 0.8], rel=1e-12)
    assert layer_weights("stable", scores, offset=2.0) == pytest.approx([5 / 6, 5 / 4], rel=1e-12)


def test_a_flat_block_keeps_one_millionth_of_the_mean_weight() -> None:
    """CVs 1/2 and 0 (mean 1/4): adaptive weights 2 and 1e-6, whatever the mean CV is."""
    scores = [torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0])]
    weights = layer_weights("adaptive", scores)
    assert weights[0] == pytest.approx(2.0, rel=1e-12)
    assert weights[1] == pytest.approx(1e-6, rel=1e-9)


def test_unknown_ratios_is_one_exact_line() -> None:
    """The message names the method and lists every choice, comma-separated."""
    with pytest.raises(PrunekitError) as err:
        layer_weights("even", [torch.ones(2)])
    assert str(err.value) == (
        "unknown ratios 'even'; choose one of: adaptive, stable, uniform, skip"
    )


def test_caps_are_zero_when_no_group_may_go() -> None:
    """max_ratio 0, or min_keep ≥ the groups: the cap is 0, not 1."""
    assert Blocks.build([4, 4], [10, 10], 0.0, 1).caps == [0, 0]
    assert Blocks.build([4, 2], [10, 10], 0.9, 4).caps == [0, 0]
    assert Blocks.build([4], [10], 0.9, 1).caps == [3]


def test_the_default_budget_name_is_in_the_message() -> None:
    """An impossible target without `what`: the line starts with "the budget"."""
    blocks = Blocks.build([4], [10], 0.5, 1)
    with pytest.raises(PrunekitError) as err:
        allocate(blocks, [1.0], 30.0)
    assert str(err.value).startswith("the budget asks for 30 parameters but at most 20 can go ")


def test_the_reachable_check_allows_one_millionth_over_and_no_more() -> None:
    """Reachable 20: a target 1e-6 over still gets every cap, half a parameter over is refused."""
    blocks = Blocks.build([4], [10], 0.5, 1)
    assert allocate(blocks, [1.0], 20 + 1e-6) == [2]
    with pytest.raises(PrunekitError, match="asks for 20 parameters but at most 20 can go"):
        allocate(blocks, [1.0], 20.5)


def test_skipped_blocks_lose_nothing_and_are_never_rounded_up() -> None:
    """Weights 0, 1: only block 1 loses groups (x = 1.4 → 1), though 4 parameters are left over."""
    blocks = Blocks.build([4, 4], [10, 1], 0.5, 1)  # caps 2, 2
    assert allocate(blocks, [1.0, 0.0], 14.0) == [1, 0]
    assert allocate(blocks, [0.0, 1.0], 2.0) == [0, 2]


def test_rounding_up_may_reach_the_cap_exactly() -> None:
    """One block, cap 2 groups of 10: target 16 is x = 1.6, rounded up to the cap."""
    blocks = Blocks.build([4], [10], 0.5, 1)
    assert allocate(blocks, [1.0], 16.0) == [2]


def test_an_exact_half_step_left_over_is_not_rounded_up() -> None:
    """x = 1.5 groups of 10: 5 parameters left is not more than half a group, so 1 stays."""
    blocks = Blocks.build([4], [10], 1.0, 0)
    assert allocate(blocks, [1.0], 15.0) == [1]


def test_the_largest_remainder_rounds_up_first() -> None:
    """x = 2.3 and 0.6 (remainders .3, .6; .9 left over): the second block gets the group."""
    blocks = Blocks.build([10, 10], [1, 1], 1.0, 0)
    assert allocate(blocks, [0.23, 0.06], 2.9) == [2, 1]


def test_remainders_are_compared_as_numbers_not_rounded_to_whole_ones() -> None:
    """Remainders .6 and .9 (1.5 left over): the .9 block gets it, not the lower index."""
    blocks = Blocks.build([10, 10], [1, 1], 1.0, 0)
    assert allocate(blocks, [0.06, 0.09], 1.5) == [0, 1]


def test_remainders_equal_to_nine_digits_tie_to_the_least_important_next_group() -> None:
    """Step 2: remainders 1 and 1 + 4e-10 tie; block 0's next group scores 1, block 1's 5."""
    blocks = Blocks.build([10, 10], [1, 1], 1.0, 0, step=2)
    scores = [torch.tensor([1.0, 7.0, 8.0]), torch.tensor([5.0, 6.0, 9.0])]
    got = allocate(blocks, [0.1, 0.1 + 4e-11], 2 + 4e-10, scores=scores)
    assert got == [2, 0]
