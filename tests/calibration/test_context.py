"""RunContext: the one object every calibration pass is built from must hand on every field."""

import torch

from prunekit.calibration.context import RunContext
from prunekit.calibration.engine import LayerwiseEngine
from prunekit.models.adapters import adapter_for


def test_of_and_engine_pass_on_every_field(tiny_llama):
    """`of` stores what it was given and `engine` builds its engine from exactly those fields."""
    batches = [torch.zeros(1, 4, dtype=torch.long)]
    run = RunContext.of(tiny_llama, batches, "meta", False, torch.bfloat16)
    assert run.model is tiny_llama
    assert run.adapter is adapter_for(tiny_llama)
    assert run.batches is batches
    assert (run.device, run.progress, run.forward_dtype) == ("meta", False, torch.bfloat16)
    engine = run.engine("the description")
    assert isinstance(engine, LayerwiseEngine)
    assert engine.model is tiny_llama and engine.adapter is run.adapter
    assert engine.batches is batches
    assert engine.device == torch.device("meta")
    assert engine.progress is False
    assert engine.desc == "the description"
    assert engine.forward_dtype == torch.bfloat16
    assert engine.truncate is True


def test_of_defaults_are_cpu_with_progress_and_the_weights_dtype(tiny_llama):
    """Without the optional arguments: CPU, progress bars on, forwards in the weights' dtype."""
    run = RunContext.of(tiny_llama, [])
    assert (run.device, run.progress, run.forward_dtype) == ("cpu", True, None)


def test_quiet_and_with_batches_change_only_their_field(tiny_llama):
    """`quiet` turns progress off, `with_batches` swaps the batches; nothing else changes."""
    first, second = [torch.zeros(1, 4, dtype=torch.long)], [torch.ones(2, 4, dtype=torch.long)]
    run = RunContext.of(tiny_llama, first, "meta", True, torch.float16)
    quiet = run.quiet()
    assert quiet.progress is False
    assert quiet.batches is first
    assert (quiet.model, quiet.adapter, quiet.device, quiet.forward_dtype) == (
        run.model,
        run.adapter,
        "meta",
        torch.float16,
    )
    swapped = run.with_batches(second)
    assert swapped.batches is second
    assert swapped.progress is True
    assert (swapped.model, swapped.adapter, swapped.device, swapped.forward_dtype) == (
        run.model,
        run.adapter,
        "meta",
        torch.float16,
    )
    assert run.batches is first and run.progress is True  # the original is untouched


def test_engine_defaults(tiny_llama):
    """A bare engine: CPU, progress on, 'calibrating', weights' dtype, truncated statistics passes."""
    adapter = adapter_for(tiny_llama)
    engine = LayerwiseEngine(tiny_llama, adapter, [])
    assert (engine.model, engine.adapter, engine.batches) == (tiny_llama, adapter, [])
    assert engine.device == torch.device("cpu")
    assert (engine.progress, engine.desc, engine.forward_dtype, engine.truncate) == (
        True,
        "calibrating",
        None,
        True,
    )
