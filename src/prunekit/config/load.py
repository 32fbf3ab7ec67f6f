"""What to load and how: the model flags of every command and a recipe's top-level keys."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from prunekit.config.options import Choice, Msg, Names, Options
from prunekit.models.loading import DTYPE_CHOICES


class LoadOptions(Options):
    """The model (built-in name, folder, .gguf file or hub id), its dtype and device."""

    model: Annotated[
        str,
        Names(cli="model"),
        Msg("'<model>' is required: a built-in name, HF folder, .gguf file or hub id"),
    ] = Field(
        min_length=1,
        description="built-in name (see `prunekit models`), HF folder, .gguf file or hub id",
    )
    dtype: Annotated[
        str, Choice(DTYPE_CHOICES, "unknown dtype '{value}'; choose one of: {choices}")
    ] = Field(
        "float32",
        description="weights and forwards; auto = bfloat16 where the CPU/GPU has it, else float32",
    )
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto (default: cpu)")
    trust_remote_code: Annotated[bool, Names(switch=True)] = Field(
        False, description="allow model code from the hub (off by default)"
    )
