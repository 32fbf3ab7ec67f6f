"""The run context: what every calibration pass needs, passed as one object instead of five:
the model, its adapter (and tokenizer where a stage needs it), the calibration batches and their
answer weights, the device, the forward dtype and whether to show progress."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch import nn

from prunekit.calibration.engine import LayerwiseEngine
from prunekit.models.adapters import DecoderAdapter, adapter_for


@dataclass(frozen=True)
class RunContext:
    """The model, its adapter, the calibration batches, the compute device and whether to show
    progress; `weights`: per-batch answer-position weights (answered: parts; None: every position
    counts). The engine it makes moves back whatever it moved to the device."""

    model: nn.Module
    adapter: DecoderAdapter
    batches: list[torch.Tensor]
    device: torch.device | str = "cpu"
    progress: bool = True
    forward_dtype: torch.dtype | None = None  # e.g. bfloat16 forwards of a float32 model
    weights: list[torch.Tensor] | None = None
    tokenizer: object = None

    @classmethod
    def of(
        cls,
        model: nn.Module,
        batches,
        device="cpu",
        progress: bool = True,
        forward_dtype: torch.dtype | None = None,
    ) -> RunContext:
        return cls(model, adapter_for(model), batches, device, progress, forward_dtype)

    @classmethod
    def calibrated(
        cls, model: nn.Module, tokenizer, cal, device="cpu", progress: bool = True
    ) -> RunContext:
        """The context of a stage calibrated on `cal` (a `CalibrationSet`, or None: no data)."""
        batches, weights = (cal.batches, cal.weights) if cal is not None else ([], None)
        return cls(
            model,
            adapter_for(model),
            batches,
            device,
            progress,
            weights=weights,
            tokenizer=tokenizer,
        )

    def engine(self, desc: str) -> LayerwiseEngine:
        """A block-by-block pass over this context's batches."""
        return LayerwiseEngine(
            self.model,
            self.adapter,
            self.batches,
            self.device,
            self.progress,
            desc,
            forward_dtype=self.forward_dtype,
        )

    @contextmanager
    def placed(self) -> Iterator[torch.device]:
        """The model on the context's device meanwhile (moved back where it was after)."""
        device = torch.device(self.device)
        home = next(self.model.parameters()).device
        if device != home:
            self.model.to(device)
        try:
            yield device
        finally:
            if device != home:
                self.model.to(home)

    def with_batches(self, batches: list[torch.Tensor]) -> RunContext:
        return replace(self, batches=batches)

    def quiet(self) -> RunContext:
        """The same context without progress bars (inner passes of a search)."""
        return replace(self, progress=False)
