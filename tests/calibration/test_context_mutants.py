"""RunContext built directly (as api.py does) and its copies: defaults, `quiet` idempotent, and
frozen. Mutants this kills: tests/MUTATION.md §6."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from prunekit.calibration.context import RunContext
from prunekit.models.adapters import adapter_for


def test_direct_construction_defaults_are_cpu_with_progress_and_the_weights_dtype(tiny_llama):
    """api.py builds RunContext(...) itself: its field defaults must be the same as `of`'s."""
    run = RunContext(tiny_llama, adapter_for(tiny_llama), [])
    assert (run.device, run.progress, run.forward_dtype) == ("cpu", True, None)


def test_quiet_is_quiet_whatever_it_started_from(tiny_llama):
    """`quiet` sets progress off; it does not toggle it (a quiet context's quiet copy is quiet)."""
    run = RunContext.of(tiny_llama, [], progress=False)
    assert run.quiet().progress is False
    assert run.quiet().quiet().progress is False
    loud = RunContext.of(tiny_llama, [], progress=True)
    assert loud.quiet().quiet().progress is False


def test_a_context_cannot_be_changed_in_place(tiny_llama):
    """Inner passes share the caller's context: it is frozen, copies are made with replace()."""
    run = RunContext.of(tiny_llama, [torch.zeros(1, 2, dtype=torch.long)])
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.progress = False  # type: ignore[misc]
