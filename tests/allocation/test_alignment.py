"""The alignment objective on a hand-computable toy block, and through the engine on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import tiny_model
from prunekit.allocation.alignment import (
    align_block,
    alignment_objective,
    alignment_term,
    forward_with_norms,
    ranked_prune,
    row_ranks,
    scorer_prune,
)
from prunekit.calibration.context import RunContext
from prunekit.methods.masks import row_mask
from prunekit.methods.patterns import UNSTRUCTURED
from prunekit.methods.pruners import Magnitude, Wanda
from prunekit.models.adapters import adapter_for


def test_alignment_term_by_hand():
    # [1,3]/4 − [1,1]/2 = [−0.25, 0.25]; ‖·‖ = 0.25·√2; / d_in = 2
    assert alignment_term(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0])) == pytest.approx(
        0.25 * math.sqrt(2) / 2
    )
    assert alignment_term(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0])) == 0.0


class Toy(nn.Module):
    """y = fc2(fc1(x)): fc2's input is the channel profile that masking fc1 changes."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 2, bias=False)
        self.fc2 = nn.Linear(2, 1, bias=False)
        self.fc1.weight.data = torch.tensor([[1.0, 0.5], [0.25, 2.0]])
        self.fc2.weight.data = torch.tensor([[0.3, -1.0]])

    def forward(self, x):
        return self.fc2(self.fc1(x))


def test_align_block_on_a_toy_block_matches_hand_computation():
    toy = Toy()
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])  # two tokens
    linears = {"fc1": toy.fc1, "fc2": toy.fc2}
    before = {n: lin.weight.clone() for n, lin in linears.items()}

    def forward():
        return [toy(x)]

    def collect(kinds):
        return forward_with_norms(linears, forward)[0]

    def prune(name, weight, stats):  # magnitude, half of every row
        Magnitude().prune(weight, stats, 0.5, UNSTRUCTURED)

    out = align_block(linears, collect, forward, prune)
    # fc1 masked to [[1, 0], [0, 2]]; fc2 to [[0, −1]]
    # dense fc2 inputs: [2, 4.25], [2.5, −1.25]; masked: [1, 4], [3, −2]
    a_d = torch.tensor([math.sqrt(2**2 + 2.5**2), math.sqrt(4.25**2 + 1.25**2)])
    a_s = torch.tensor([math.sqrt(1 + 9), math.sqrt(16 + 4)])
    by_hand = math.hypot(*(a_d / a_d.sum() - a_s / a_s.sum()).tolist()) / 2
    assert out.terms["fc2"] == pytest.approx(by_hand, rel=1e-5)  # float32 sums
    assert out.terms["fc1"] == 0.0  # the mask cannot change a block's own input
    assert torch.allclose(out.deltas["fc2"].float(), a_d - a_s)
    assert torch.allclose(out.outputs[0], torch.tensor([[-4.0], [2.0]]))  # the masked output
    for n, lin in linears.items():  # dense weights restored
        assert torch.equal(lin.weight, before[n])


def test_alignment_objective_through_engine_leaves_model_dense_and_bounds_exactly():
    model = tiny_model("qwen2")
    adapter = adapter_for(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batches = list(
        torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(0)).split(2)
    )

    def run(bound=math.inf):
        prune = scorer_prune(Wanda(), UNSTRUCTURED, lambda *_: 0.6)
        run = RunContext(model, adapter, batches, progress=False)
        return alignment_objective(run, prune, Wanda.needs, bound=bound)

    full = run()
    assert full.complete and full.blocks_done == 3
    assert full.objective == pytest.approx(sum(full.terms.values()))
    assert full.objective > 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    cut = run(bound=full.objective / 2)
    assert not cut.complete and full.objective / 2 <= cut.objective <= full.objective
    # a block's own terms do not depend on later blocks: the prefix is identical
    for k, v in cut.terms.items():
        assert v == pytest.approx(full.terms[k])


def test_masks_from_cached_ranks_equal_row_mask():
    g = torch.Generator().manual_seed(3)
    scores = torch.rand(9, 12, generator=g)  # no ties: any tie-break gives the same mask
    per_row = torch.rand(9, generator=g, dtype=torch.float64)
    for sparsity in (0.5, per_row):
        weight = torch.ones(9, 12)
        ranked_prune({"layers.0.x": row_ranks(scores)}, lambda *_, s=sparsity: s)(
            0, "x", weight, None
        )
        assert torch.equal(weight == 0, row_mask(scores, sparsity))
