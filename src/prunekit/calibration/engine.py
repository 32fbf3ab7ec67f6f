"""Block-by-block calibration: capture block inputs once, then for each block collect statistics,
let a method edit the block, and feed the (edited) block's output to the next block.

Only the current block is moved to the compute device, so a model larger than the GPU fits.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from prunekit.calibration.stats import LinearStats
from prunekit.models.adapters import DecoderAdapter


class _StopCapture(Exception):
    """Raised by the last layer's stand-in to end the capture pass before the output head."""


class _StatsDone(Exception):
    """Raised by the last hooked Linear's pre-hook: a statistics-only pass needs nothing after it."""


def autocast(device: torch.device, dtype: torch.dtype | None):
    """bfloat16/float16 compute for a block's forwards (weights and stream keep their dtype), or no-op."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@dataclass
class LayerCall:
    """The extra positional and keyword arguments the model passed to one layer for one batch."""

    args: tuple
    kwargs: dict


def _first(output):
    return output[0] if isinstance(output, tuple | list) else output


def _to(obj, device: torch.device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple | list):
        return type(obj)(_to(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def _accumulators(
    linears: dict[str, nn.Linear], kinds: frozenset[str], input_groups: tuple[tuple[str, ...], ...]
) -> tuple[dict[str, LinearStats], dict[str, LinearStats]]:
    """One LinearStats per Linear (shared within an input group) and the ones that need a hook."""
    stats: dict[str, LinearStats] = {}
    for n in linears:
        group = next((g for g in input_groups if n in g), (n,))
        shared = next((stats[o] for o in group if o in stats), None)
        stats[n] = shared if shared is not None else LinearStats(kinds)
    hooked = {id(s): n for n, s in stats.items()}
    return stats, {n: stats[n] for n in hooked.values()}


def hooked_forward(
    linears: dict[str, nn.Linear],
    kinds: Iterable[str],
    forward: Callable[[], list[torch.Tensor]],
    input_groups: tuple[tuple[str, ...], ...] = (),
) -> tuple[dict[str, LinearStats], list[torch.Tensor]]:
    """Run `forward` once with hooks: each Linear's input statistics, and the forward's outputs.

    Linears of one input group read the same tensor, so they share one accumulator.
    """
    stats, hooked = _accumulators(linears, frozenset(kinds), input_groups)
    handles = [
        linears[n].register_forward_pre_hook(lambda _m, inp, s=s: s.add(inp[0]))
        for n, s in hooked.items()
    ]
    try:
        outputs = forward()
    finally:
        for h in handles:
            h.remove()
    return stats, outputs


def statistics_pass(
    linears: dict[str, nn.Linear],
    kinds: Iterable[str],
    batch_forwards: Iterable[Callable[[], object]],
    input_groups: tuple[tuple[str, ...], ...] = (),
) -> dict[str, LinearStats]:
    """Input statistics only: each batch's forward stops as soon as every hooked Linear has seen
    its input (in a decoder block: before the last Linear's matmul, e.g. `down_proj`).

    The statistics are the same tensors a full forward would give (same ops up to that point),
    given each Linear runs once per forward, as in every supported family (`truncate=False` on
    the engine turns this off).
    """
    stats, hooked = _accumulators(linears, frozenset(kinds), input_groups)
    pending: set[str] = set()

    def hook(name: str, s: LinearStats, inp: tuple) -> None:
        s.add(inp[0])
        pending.discard(name)
        if not pending:
            raise _StatsDone

    handles = [
        linears[n].register_forward_pre_hook(lambda _m, inp, n=n, s=s: hook(n, s, inp))
        for n, s in hooked.items()
    ]
    try:
        for run in batch_forwards:
            pending.update(hooked)
            with contextlib.suppress(_StatsDone):
                run()
    finally:
        for h in handles:
            h.remove()
    return stats


def _home(module: nn.Module) -> torch.device | None:
    """Where a module's parameters (or buffers) live; None for a module with neither."""
    tensor = next(itertools.chain(module.parameters(), module.buffers()), None)
    return None if tensor is None else tensor.device


@dataclass
class BlockContext:
    """What a method sees of the block being processed: the layer, its Linears, and its input stream."""

    index: int
    layer: nn.Module
    linears: dict[str, nn.Linear]
    inputs: list[torch.Tensor]
    calls: list[LayerCall]
    num_blocks: int
    input_groups: tuple[tuple[str, ...], ...] = ()
    outputs: list[torch.Tensor] | None = None  # a method may set the stream to pass on
    forward_dtype: torch.dtype | None = None  # autocast dtype of the forwards (None: the weights')
    truncate: bool = True  # statistics-only passes stop after the last hooked Linear's input

    def _device(self) -> torch.device:
        return self.inputs[0].device if self.inputs else torch.device("cpu")

    @torch.no_grad()
    def forward(self, inputs: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Run the block (as it is now) over every batch of the stream."""
        inputs = self.inputs if inputs is None else inputs
        with autocast(self._device(), self.forward_dtype):
            return [_first(self.layer(h, *c.args, **c.kwargs)) for h, c in zip(inputs, self.calls)]

    @torch.no_grad()
    def collect(
        self, kinds: Iterable[str], names: Iterable[str] | None = None, pass_on: bool = False
    ) -> dict[str, LinearStats]:
        """Run the block once with hooks on its Linears and return their input statistics.

        `pass_on`: the method will not edit the block, so this pass's outputs become the stream
        passed on (no second forward); otherwise no output is made: each batch's forward stops
        once the last hooked Linear has its input (statistics in float32 whatever the forward dtype).
        """
        names = list(self.linears) if names is None else list(names)
        linears = {n: self.linears[n] for n in names}
        if pass_on or not self.truncate:
            stats, outputs = hooked_forward(linears, kinds, self.forward, self.input_groups)
            if pass_on:
                self.outputs = outputs
            return stats
        layer = self.layer

        def one(h: torch.Tensor, c: LayerCall) -> Callable[[], object]:
            return lambda: layer(h, *c.args, **c.kwargs)

        with autocast(self._device(), self.forward_dtype):
            return statistics_pass(
                linears,
                kinds,
                [one(h, c) for h, c in zip(self.inputs, self.calls)],
                self.input_groups,
            )


BlockFn = Callable[[BlockContext], None]


class LayerwiseEngine:
    """Runs calibration batches through a decoder one block at a time."""

    def __init__(
        self,
        model: nn.Module,
        adapter: DecoderAdapter,
        batches: list[torch.Tensor],
        device: torch.device | str = "cpu",
        progress: bool = True,
        desc: str = "calibrating",
        forward_dtype: torch.dtype | None = None,
        truncate: bool = True,
    ) -> None:
        self.model = model
        self.adapter = adapter
        self.batches = batches
        self.device = torch.device(device)
        self.progress = progress
        self.desc = desc
        self.forward_dtype = forward_dtype
        self.truncate = truncate

    @torch.no_grad()
    def capture(self) -> tuple[list[torch.Tensor], list[list[LayerCall]]]:
        """Block 0's hidden inputs per batch, and each layer's own extra arguments per batch.

        Every layer is replaced by a stand-in that records its arguments, so whatever the
        installed transformers passes (masks, rotary tables, per-layer-type masks) is kept.
        """
        decoder = self.adapter.decoder(self.model)
        layers = self.adapter.layers(self.model)
        others = [m for name, m in decoder.named_children() if m is not layers]
        hidden: list[torch.Tensor] = []
        calls: list[list[LayerCall]] = [[] for _ in layers]
        last = len(layers) - 1

        def stand_in(i: int):
            def forward(h, *args, **kwargs):
                if i == 0:
                    hidden.append(h.detach())
                calls[i].append(LayerCall(args, {k: v for k, v in kwargs.items()}))
                if i == last:
                    raise _StopCapture
                return h

            return forward

        homes = [(m, _home(m)) for m in others]
        for m in others:
            m.to(self.device)
        for i, layer in enumerate(layers):
            layer.forward = stand_in(i)
        try:
            for batch in self.batches:
                with contextlib.suppress(_StopCapture):
                    decoder(input_ids=batch.to(self.device), use_cache=False)
        finally:
            for layer in layers:
                del layer.forward
            for m, home in homes:  # only the current block stays on the device, and not for long
                if home is not None:
                    m.to(home)
        return hidden, calls

    @torch.no_grad()
    def run(self, block_fn: BlockFn | None = None) -> list[torch.Tensor]:
        """Process every block with `block_fn`, propagating edited outputs; return the last hidden states.

        After `block_fn`, the block's output is computed from the block as edited, unless
        `block_fn` set `ctx.outputs` itself (e.g. to pass on a masked stream and then restore).
        """
        layers = self.adapter.layers(self.model)
        stream, calls = self.capture()
        home = next(layers[0].parameters()).device
        bar = tqdm(range(len(layers)), desc=self.desc, unit="block", disable=not self.progress)
        for i in bar:
            layer = layers[i].to(self.device)
            ctx = BlockContext(
                index=i,
                layer=layer,
                linears=self.adapter.linears(layer),
                inputs=stream,
                calls=[
                    LayerCall(_to(c.args, self.device), _to(c.kwargs, self.device))
                    for c in calls[i]
                ],
                num_blocks=len(layers),
                input_groups=self.adapter.input_groups(),
                forward_dtype=self.forward_dtype,
                truncate=self.truncate,
            )
            if block_fn is not None:
                block_fn(ctx)
            stream = ctx.outputs if ctx.outputs is not None else ctx.forward()
            layer.to(home)
            calls[i] = []
        return stream

    @torch.no_grad()
    def logits(self, hidden: list[torch.Tensor]) -> list[torch.Tensor]:
        """Apply the final norm and head to final hidden states (used to check the engine)."""
        head = self.adapter.lm_head(self.model).weight.device
        return [self.adapter.logits(self.model, h.to(head)) for h in hidden]
