import math

import pytest
import torch

from conftest import tiny_model
from prunekit.evaluation.perplexity import paired_nll_difference, perplexity
from prunekit.models.adapters import adapter_for


def test_per_window_nll_matches_transformers_loss_and_the_total():
    model = tiny_model("qwen2")
    windows = torch.randint(0, 128, (5, 17), generator=torch.Generator().manual_seed(3))
    res = perplexity(model, adapter_for(model), windows, batch_size=2, progress=False)
    with torch.no_grad():
        want = [float(model(w[None], labels=w[None]).loss) for w in windows]
    assert res["window_nll"] == pytest.approx(want, rel=1e-5)
    assert res["ppl"] == pytest.approx(math.exp(sum(want) / 5), rel=1e-5)
    assert res["tokens"] == 5 * 16


def test_paired_difference_by_hand():
    d = paired_nll_difference([1.0, 2.0, 3.0], [0.0, 2.0, 2.0])  # differences 1, 0, 1
    assert d["mean"] == pytest.approx(2 / 3)
    assert d["se"] == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3))
    with pytest.raises(ValueError, match="same"):
        paired_nll_difference([1.0, 2.0], [1.0])
