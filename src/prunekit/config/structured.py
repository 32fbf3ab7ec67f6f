"""`SaapConfig` (the SAAP options) and `StructuredConfig` (with its calibration): the `prunekit
structured` flags, the recipe's `structured` step and `prunekit.structured`'s keywords."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from prunekit.config.calibration import CalibrationOptions
from prunekit.config.options import Choice, Msg, OptionError, Options
from prunekit.config.width import finite
from prunekit.structural.ratios import RATIOS
from prunekit.structural.refit import DAMP


def _importances():
    from prunekit.structural.importance import REGISTRY

    return REGISTRY


def _fraction(field: str) -> Msg:
    return Msg(f"<{field}> must be a fraction in [0, 1), got {{value!r}}")


class SaapConfig(Options):
    """How much of each kind goes (`heads`, `ffn`, or a `target` share of all non-embedding
    parameters), how groups are scored and how the removals spread over blocks."""

    heads: Annotated[float | None, _fraction("heads")] = Field(
        None,
        ge=0,
        lt=1,
        description="fraction of the attention head-group parameters removed (whole GQA "
        "groups), 0 ≤ f < 1",
    )
    ffn: Annotated[float | None, _fraction("ffn")] = Field(
        None, ge=0, lt=1, description="fraction of the MLP channel parameters removed, 0 ≤ f < 1"
    )
    target: Annotated[float | None, _fraction("target")] = Field(
        None,
        ge=0,
        lt=1,
        description="instead of --heads/--ffn: fraction of all non-embedding parameters removed",
    )
    importance: Annotated[str, Choice(_importances)] = Field(
        "fused",
        description="group score: fused (vector + element Taylor, uncertainty-weighted) or one "
        "of them",
    )
    ratios: Annotated[str, Choice(RATIOS)] = Field(
        "adaptive",
        description="per-block ratios: adaptive (spread of scores), uniform, or skip (first/last "
        "blocks kept)",
    )
    skip_first: int = Field(3, ge=0, description="ratios skip: blocks left whole at the start")
    skip_last: int = Field(1, ge=0, description="ratios skip: blocks left whole at the end")
    max_ratio: Annotated[float, Msg("<max_ratio> must be in (0, 1], got {value!r}")] = Field(
        0.8, gt=0, le=1, description="most of any block's groups that may go"
    )
    multiple: int = Field(
        1,
        ge=1,
        description="channels go in whole multiples of this (e.g. 64 for kernel-friendly widths)",
    )
    min_channels: int = Field(1, ge=1, description="MLP channels that stay in every block")
    refit: bool = Field(
        False,
        description="re-solve the kept columns of o_proj / down_proj by least squares so each "
        "pruned block's output tracks the dense one on the calibration data (no training)",
    )
    refit_damp: Annotated[float, finite("refit_damp")] = Field(
        DAMP,
        ge=0,
        allow_inf_nan=False,
        description="refit ridge, relative to the mean diagonal of the kept inputs' XᵀX",
    )

    @field_validator("heads", mode="before")
    @classmethod
    def _not_every_head(cls, heads):
        if heads == 1 and not isinstance(heads, bool):
            raise OptionError(
                "<heads> must be a fraction in [0, 1), got 1 (1 would remove every head)"
            )
        return heads

    @model_validator(mode="after")
    def _something(self):
        """A budget is given one way, and it removes something."""
        if self.target is not None and (self.heads is not None or self.ffn is not None):
            raise OptionError("give either <target> or <heads>/<ffn>, not both")
        if not (self.heads or self.ffn or self.target):
            raise OptionError(
                "nothing to remove; give <heads> and/or <ffn> (fractions of each kind) or "
                "<target> (fraction of non-embedding parameters), e.g. heads 0.25 ffn 0.25"
            )
        return self


class StructuredConfig(SaapConfig, CalibrationOptions):
    """SAAP with its calibration data and size (the gradients' windows)."""
