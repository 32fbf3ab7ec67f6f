"""The run context and options the inner structural functions take, built the way the stages
build them (quiet, on the CPU)."""

from __future__ import annotations

from prunekit.calibration.context import RunContext
from prunekit.config.depth import DepthConfig
from prunekit.models.adapters import adapter_for


def ctx(model, batches=(), weights=None) -> RunContext:
    """`model` on `batches` (and per-position answer weights), no progress bars."""
    return RunContext(model, adapter_for(model), list(batches), progress=False, weights=weights)


def depth(remove: int, criterion: str = "kl", **options) -> DepthConfig:
    """Depth options: remove `remove` layers scored by `criterion`."""
    return DepthConfig(remove=remove, criterion=criterion, **options)
