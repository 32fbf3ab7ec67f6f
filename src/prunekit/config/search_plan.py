"""`SearchPlanConfig`: the recipe's `search_plan` step — rebuild a plan of `prunekit search`
(what `prunekit search MODEL --plan plan.json` does), as the first structural step."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from prunekit.config.options import Msg, Options


class SearchPlanConfig(Options):
    """The plan file; its own calibration and levels are the search's that wrote it."""

    file: Annotated[
        str, Msg("'<file>' is required: the path of a plan.json written by prunekit search")
    ] = Field(min_length=1, description="a plan.json written by `prunekit search`")
