"""Gemma's final logit soft-capping (tanh(z/c)·c) is part of the perplexity."""

import pytest
import torch

from conftest import tiny_model
from prunekit.evaluation.perplexity import perplexity
from prunekit.models.adapters import adapter_for


def test_soft_capped_perplexity_equals_transformers_own_loss():
    model = tiny_model("gemma3")
    model.lm_head.weight.data *= 100  # random logits are ≪ 1: scale them up so the cap of 30 bites
    windows = torch.randint(0, 128, (3, 17), generator=torch.Generator().manual_seed(5))
    res = perplexity(model, adapter_for(model), windows, batch_size=2, progress=False)
    with torch.no_grad():
        want = [float(model(w[None], labels=w[None]).loss) for w in windows]
        model.config.final_logit_softcapping = None
        uncapped = [float(model(w[None], labels=w[None]).loss) for w in windows]
    assert res["window_nll"] == pytest.approx(want, rel=1e-5)
    assert all(abs(a - b) > 1.0 for a, b in zip(want, uncapped))  # the cap changes the loss
