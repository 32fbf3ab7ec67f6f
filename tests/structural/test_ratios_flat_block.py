"""A block whose group importances are all equal (CV 0) under adaptive ratios."""

import torch

from prunekit.structural.ratios import Blocks, allocate, layer_weights


def test_a_flat_block_keeps_a_positive_adaptive_weight():
    flat, varied = torch.full((8,), 3.0), torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    weights = layer_weights("adaptive", [flat, varied])
    assert weights[0] > 0 and weights[0] < 1e-5 * weights[1]


def test_a_budget_that_fits_uniform_caps_also_fits_adaptive_ones():
    """check_budget tests the caps with uniform weights: adaptive must reach the same total."""
    flat, varied = torch.full((8,), 3.0), torch.arange(1.0, 9.0)
    blocks = Blocks.build([8, 8], [10, 10], max_ratio=0.5, min_keep=1)
    target = 10 * (blocks.caps[0] + blocks.caps[1])  # every removable group of both blocks
    uniform = allocate(blocks, layer_weights("uniform", [flat, varied]), target)
    adaptive = allocate(blocks, layer_weights("adaptive", [flat, varied]), target, [flat, varied])
    assert uniform == adaptive == blocks.caps
