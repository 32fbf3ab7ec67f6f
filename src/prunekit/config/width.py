"""`WidthConfig`: the same MLP width in every layer — the recipe's `width` step and
`prunekit.width`'s keywords."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from prunekit.config.calibration import CalibrationOptions
from prunekit.config.options import Choice, Msg
from prunekit.structural.refit import DAMP
from prunekit.structural.width import CRITERIA


def finite(field: str) -> Msg:
    """The message of a ridge/damp field: a finite number ≥ 0."""
    return Msg(f"<{field}> must be a finite number ≥ 0, got {{value!r}}")


class WidthConfig(CalibrationOptions):
    """Keep `ffn_keep` of every MLP's channels, scored by `criterion`, in whole `multiple`s;
    `refit` re-solves the down projections' kept columns (no training)."""

    ffn_keep: float = Field(gt=0, le=1, description="fraction of every MLP's channels kept")
    criterion: Annotated[str, Choice(CRITERIA)] = Field(
        "output", description="channel score: activation, output or taylor"
    )
    multiple: int = Field(64, ge=1, description="the kept width is a multiple of this")
    refit: bool = Field(
        False, description="re-solve each down projection's kept columns by least squares"
    )
    refit_damp: Annotated[float, finite("refit_damp")] = Field(
        DAMP,
        ge=0,
        allow_inf_nan=False,
        description="refit ridge, relative to the mean diagonal of XᵀX",
    )
