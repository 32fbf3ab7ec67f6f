"""A recipe's `export:` key: files written from the finished model beside it, e.g.
`export: {gguf: [q8_0, f16]}` → OUT/<name>-q8_0.gguf and OUT/<name>-f16.gguf."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from prunekit.config.options import Choice, Msg, OptionError, Options
from prunekit.export.gguf import QUANTS

Quant = Annotated[str, Choice(QUANTS, "unknown quant '{value}' in <gguf>; choose from: {choices}")]


class ExportOptions(Options):
    """Formats to write the result in, each with its variants (GGUF: its quants)."""

    gguf: Annotated[
        list[Quant],
        Msg("<gguf> must be a list of quants, e.g. [q8_0, f16] (from: " + ", ".join(QUANTS) + ")"),
    ] = Field(
        default_factory=list,
        description="GGUF quants to write for llama.cpp, as `prunekit export --format gguf`",
    )

    @field_validator("gguf")
    @classmethod
    def _once(cls, quants: list[str]) -> list[str]:
        twice = next((q for i, q in enumerate(quants) if q in quants[:i]), None)
        if twice is not None:
            raise OptionError(f"<gguf> lists '{twice}' twice; give each quant once")
        return quants
