"""The engine's small helpers, checked directly: the forward dtype, layer-output unpacking, moving
nested arguments, where a module lives and a block's device (the meta device stands in for a GPU)."""

import torch
from torch import nn

from prunekit.calibration.engine import BlockContext, _first, _home, _to, autocast

META = torch.device("meta")


def _matmul_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """The dtype a float32 matmul comes out in under the engine's autocast for `dtype`."""
    a = torch.ones(2, 2)
    with autocast(torch.device("cpu"), dtype):
        return (a @ a).dtype


def test_autocast_computes_in_the_asked_dtype_and_not_at_all_for_float32():
    """float16 and bfloat16 forwards really run in that dtype; None / float32 leave float32."""
    assert _matmul_dtype(torch.float16) == torch.float16  # not CPU autocast's bfloat16 default
    assert _matmul_dtype(torch.bfloat16) == torch.bfloat16
    assert _matmul_dtype(None) == torch.float32
    assert _matmul_dtype(torch.float32) == torch.float32


def test_first_unpacks_tuples_and_lists_and_passes_tensors_through():
    """A layer's output is its first element when it returns a tuple or list."""
    h, other = torch.zeros(1), torch.ones(1)
    assert _first((h, other)) is h
    assert _first([h, other]) is h
    assert _first(h) is h


def test_to_moves_every_tensor_of_nested_arguments_and_keeps_the_rest():
    """Tensors anywhere in tuples, lists and dicts move; containers keep their type; others stay."""
    t = torch.zeros(2)
    moved = _to((t, [t, 3], {"mask": t, "name": "x"}), META)
    assert type(moved) is tuple and type(moved[1]) is list and type(moved[2]) is dict
    assert moved[0].device == META
    assert moved[1][0].device == META and moved[1][1] == 3
    assert moved[2]["mask"].device == META and moved[2]["name"] == "x"
    assert _to(t, META).device == META


def test_home_is_the_device_of_parameters_else_buffers_else_none():
    """Parameters first, then buffers; a module with neither has no home."""
    with_params = nn.Linear(2, 2, device=META)
    assert _home(with_params) == META
    only_buffers = nn.Module()
    only_buffers.register_buffer("table", torch.zeros(2, device=META))
    assert _home(only_buffers) == META
    both = nn.Linear(2, 2)
    both.register_buffer("table", torch.zeros(2, device=META))
    assert _home(both) == torch.device("cpu")
    assert _home(nn.Module()) is None


def test_a_block_runs_where_its_inputs_are_and_on_the_cpu_without_any():
    """BlockContext's device is its stream's (meta here), the CPU for an empty stream."""

    def ctx(inputs: list[torch.Tensor]) -> BlockContext:
        """A block context around an empty layer."""
        return BlockContext(0, nn.Identity(), {}, inputs, [], 1)

    assert ctx([torch.zeros(1, device=META)])._device() == META
    assert ctx([])._device() == torch.device("cpu")
