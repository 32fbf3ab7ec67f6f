"""`DepthConfig`: remove whole decoder layers — the recipe's `depth` step and `prunekit.depth`'s
keywords (whose calibration defaults to the model's own answers, longer windows)."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field, field_validator, model_validator

from prunekit.config.calibration import _SOURCE, CALIB_HELP, CalibrationOptions
from prunekit.config.options import Choice, Msg, Names, OptionError
from prunekit.config.width import finite
from prunekit.structural.depth import CRITERIA
from prunekit.structural.depth_repair import PRIOR, PRIORS, RIDGE
from prunekit.structural.depth_runs import REPAIRS, SELECTIONS

_LAYERS = "<layers> must be a list of distinct layer indices ≥ 0, e.g. [10], got {value!r}"


class DepthConfig(CalibrationOptions):
    """`remove` N layers scored by `criterion` (greedy single removals or the best run of N
    consecutive ones), or the given `layers`; `repair: linear` folds a least-squares map of each
    removed run into the block before it (no training)."""

    calib: Annotated[str | torch.Tensor, Names(cli="--calib", recipe="source"), _SOURCE] = Field(
        "answered:python", description=CALIB_HELP
    )
    calib_samples: Annotated[int, Names(recipe="samples")] = Field(32, ge=1)
    seq_len: int = Field(1024, ge=2)
    remove: int | None = Field(None, ge=1, description="remove the N least needed layers")
    layers: Annotated[list[int] | None, Msg(_LAYERS)] = Field(
        None, description="remove these layer indices (no scoring)"
    )
    criterion: Annotated[str, Choice(CRITERIA)] = Field(
        "kl", description="layer score: kl, cosine or angular"
    )
    last_token: bool = Field(False, description="score the last position of each window only")
    selection: Annotated[str, Choice(SELECTIONS)] = Field(
        "greedy", description="greedy single removals, or the best run of consecutive layers"
    )
    repair: Annotated[str, Choice(REPAIRS)] = Field(
        "none", description="linear: fold a least-squares map of each removed run before it"
    )
    ridge: Annotated[float, finite("ridge")] = Field(
        RIDGE, ge=0, allow_inf_nan=False, description="repair ridge (relative)"
    )
    prior: Annotated[str, Choice(PRIORS)] = Field(
        PRIOR, description="what the repair ridge shrinks towards: zero or identity"
    )

    @field_validator("layers")
    @classmethod
    def _distinct(cls, layers):
        if layers is not None and (
            not layers or min(layers) < 0 or len(set(layers)) != len(layers)
        ):
            raise OptionError(_LAYERS.format(value=layers))
        return layers

    @model_validator(mode="after")
    def _one_way(self):
        """Either `remove` (scored) or `layers` (given); selection only chooses scored layers."""
        if (self.remove is None) == (self.layers is None):
            raise OptionError(
                "give either <remove>: N (the N least needed, scored) or <layers>: [i, ...]"
            )
        if self.layers is not None and self.selection != "greedy":
            raise OptionError(
                "<selection> chooses which layers go; with <layers>: [...] leave it out"
            )
        return self
