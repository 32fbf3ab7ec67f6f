"""The run context: what every calibration pass needs, passed as one object instead of five."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from prunekit.calibration.engine import LayerwiseEngine
from prunekit.models.adapters import DecoderAdapter, adapter_for


@dataclass(frozen=True)
class RunContext:
    """The model, its adapter, the calibration batches, the compute device and whether to show
    progress. The engine it makes moves back whatever it moved to the device."""

    model: nn.Module
    adapter: DecoderAdapter
    batches: list[torch.Tensor]
    device: torch.device | str = "cpu"
    progress: bool = True
    forward_dtype: torch.dtype | None = None  # e.g. bfloat16 forwards of a float32 model

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

    def with_batches(self, batches: list[torch.Tensor]) -> RunContext:
        return replace(self, batches=batches)

    def quiet(self) -> RunContext:
        """The same context without progress bars (inner passes of a search)."""
        return replace(self, progress=False)
