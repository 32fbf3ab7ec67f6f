"""Width helpers on hand and brute-force values, written against mutmut run 2's survivors in
width.py (MUTATION.md §7): keep 1 with a multiple, and ties among many equal scores."""

from __future__ import annotations

import torch

from prunekit.structural.width import keep_count, select_channels


def test_keeping_everything_keeps_the_whole_width_whatever_the_multiple() -> None:
    """keep 1 (or 1.0) of 10 channels in multiples of 4: all 10, not a rounded 8."""
    assert keep_count(10, 1, 4) == 10
    assert keep_count(10, 1.0, 4) == 10


def test_select_channels_breaks_ties_by_index_among_many_equal_scores() -> None:
    """200 scores in three tied levels, keep 90: the brute-force (−score, index) order's first 90."""
    scores = torch.tensor([float((7 * i) % 3) for i in range(200)])
    k = 90
    want = sorted(sorted(range(200), key=lambda i: (-float(scores[i]), i))[:k])
    assert select_channels(scores, k).tolist() == want
