"""`VocabularyConfig`: the recipe's `vocabulary` step (keep the tokens a corpus uses)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from prunekit.config.options import Msg, Options


class VocabularyConfig(Options):
    """Which corpus decides the kept tokens (default: the recipe's calibration source) and how
    often a token must occur in it."""

    corpus: Annotated[
        str | None, Msg("<corpus> must be a built-in corpus name or a path, got {value!r}")
    ] = Field(None, description="built-in corpus or path (default: the calibration source)")
    min_count: int = Field(1, ge=1, description="occurrences a token needs to stay")
