"""The calibration data and size every calibrated operation takes (flags `--calib …`, a recipe's
`calibration:` section and a step's `source`/`samples`/`seq_len`, the API's `calib=…`)."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field, field_validator

from prunekit.config.options import Msg, Names, Options

CALIB_HELP = (
    "built-in corpus (python), instruct:CORPUS (its functions as chat-format code instructions), "
    "answered:CORPUS (the model's own sandbox-checked answers to them, generated once and cached), "
    "a file/folder/.jsonl, or a comma mixture (python,answered:python: the samples split evenly "
    "over the parts)"
)
_SOURCE = Msg(
    "<calib> must be a corpus name, instruct:CORPUS, answered:CORPUS, a path or a comma mixture "
    "of these, got {value!r}"
)


class CalibrationOptions(Options):
    """Calibration data (a spec of `prunekit.calibration.sets`, or token ids) and its size."""

    calib: Annotated[str | torch.Tensor, Names(cli="--calib", recipe="source"), _SOURCE] = Field(
        "python", description=CALIB_HELP
    )
    calib_samples: Annotated[int, Names(recipe="samples")] = Field(
        64,
        ge=1,
        description="windows (answered: instructions asked); a mixture gives each part an even "
        "share",
    )
    seq_len: int = Field(512, ge=2)
    batch_size: int = Field(8, ge=1)
    seed: int = Field(0, ge=0)

    @field_validator("calib")
    @classmethod
    def _parts(cls, calib):
        """A spec's parts parse (no empty spec, no part twice); whether they exist is checked
        later (`check_spec`), only where calibration runs."""
        from prunekit.calibration.sets import parse_spec

        if isinstance(calib, str):
            parse_spec(calib)
        return calib

    def size(self) -> dict:
        """samples, seq_len, seed, batch_size as `calibration_set` takes them."""
        return {
            "samples": self.calib_samples,
            "seq_len": self.seq_len,
            "seed": self.seed,
            "batch_size": self.batch_size,
        }
