"""The engine's small helpers where the existing tests could not see a difference: the autocast
device type, the home of a container module, and `truncate=False` reaching the blocks.
Mutants this kills: tests/MUTATION.md §6."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from prunekit.calibration.engine import LayerwiseEngine, _home, autocast
from prunekit.models.adapters import adapter_for

META = torch.device("meta")


def test_autocast_is_for_the_compute_devices_type():
    """A CUDA block's forwards are cast on CUDA, not by a CPU autocast (a no-op for CUDA ops)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available": the context is not entered
        cast = autocast(torch.device("cuda", 0), torch.float16)
    assert (cast.device, cast.fast_dtype) == ("cuda", torch.float16)


def test_home_of_a_container_is_where_its_childrens_parameters_or_buffers_are():
    """capture() moves the decoder's other children (norm, embeddings, rotary table holders) and
    back: a child-only module has the home of its children's tensors, not None."""
    params_in_child = nn.Sequential(nn.Linear(2, 2, device=META))
    assert _home(params_in_child) == META
    holder = nn.Module()
    holder.table = nn.Module()
    holder.table.register_buffer("inv_freq", torch.zeros(2, device=META))
    assert _home(holder) == META


def test_truncate_false_reaches_every_block(tiny_llama):
    """`truncate=False` (full forwards for statistics) is kept and handed to every BlockContext."""
    adapter = adapter_for(tiny_llama)
    seen = []
    engine = LayerwiseEngine(
        tiny_llama, adapter, [torch.zeros(1, 4, dtype=torch.long)], progress=False, truncate=False
    )
    assert engine.truncate is False
    engine.run(lambda ctx: seen.append(ctx.truncate))
    assert seen == [False] * len(adapter.layers(tiny_llama))
