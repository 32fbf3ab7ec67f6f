"""Each allocation's options as its own schema, and the `ALLOCATIONS` registry of them.

The prune CLI offers them as `--NAME-FIELD` flags, a recipe and the API as `allocation_options`.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from prunekit.allocation.neuroal import DEFAULT_SAMPLES, DENSE_REFERENCES, GRIDS
from prunekit.allocation.owl import DEFAULT_LAMBDA, DEFAULT_M
from prunekit.config import Choice, Msg, Names, Options, Registry, Surface


class AllocationOptions(Options):
    """How many weights each block and row loses; the fields are the allocation's options."""

    name: ClassVar[str]


class Uniform(AllocationOptions):
    name = "uniform"


_OWL = Msg(f"OWL needs M > 0 and 0 ≤ λ < 0.5 (defaults: M={DEFAULT_M:g}, λ={DEFAULT_LAMBDA:g})")


class Owl(AllocationOptions):
    name = "owl"
    prefix = "owl"

    m: Annotated[float, _OWL] = Field(
        DEFAULT_M, gt=0, description=f"OWL outlier threshold M (default {DEFAULT_M:g})"
    )
    lambda_: Annotated[float, _OWL] = Field(
        DEFAULT_LAMBDA, ge=0, lt=0.5, description=f"OWL spread λ (default {DEFAULT_LAMBDA:g})"
    )


def _search_methods() -> list[str]:
    from prunekit.methods.pruners import PRUNERS

    return ["auto", *PRUNERS]


_LAMBDAS = list[float] | tuple[float, ...] | None
_NO_FLAG = Names(hidden=(Surface.CLI,))  # recipe and API only


class NeuroAL(AllocationOptions):
    name = "neuroal"
    prefix = "neuroal"

    samples: Annotated[int, Msg("NeuroAL needs at least 1 search window; e.g. <samples> 8")] = (
        Field(
            DEFAULT_SAMPLES, ge=1, description=f"NeuroAL search windows (default {DEFAULT_SAMPLES})"
        )
    )
    search_method: Annotated[
        str, Choice(_search_methods, "unknown method '{value}'; choose one of: {choices}")
    ] = Field(
        "auto",
        description="scorer used inside the search (default: the method, or its declared cheaper "
        "stand-in: wanda for sparsegpt)",
    )
    grid: Annotated[
        str, Choice(tuple(GRIDS), "unknown NeuroAL grid '{value}'; choose one of: {choices}")
    ] = Field(
        "full",
        description="λ candidates: full = the published grids (28 searched), coarse = 8 of them "
        "(about 1/3.5 of the search time)",
    )
    row_step: Annotated[bool, Names(cli="--neuroal-no-row-step", switch=False)] = Field(
        True, description="block step only"
    )
    fast_masks: Annotated[bool, Names(cli="--neuroal-exact-masks", switch=False)] = Field(
        True,
        description="re-score every search candidate on its own stream (slower; default: score "
        "once)",
    )
    dense_reference: Annotated[
        str,
        Choice(
            DENSE_REFERENCES, "unknown NeuroAL dense reference '{value}'; choose one of: {choices}"
        ),
    ] = Field(
        "stream",
        description="dense outputs the search aligns to: stream = the dense block on each "
        "candidate's own stream (default, two passes per block per candidate), cached = the dense "
        "model's stream, taken once (one pass; measured: picks steeper ramps, much worse ppl)",
    )
    bound: Annotated[bool, Names(cli="--neuroal-exhaustive", switch=False)] = Field(
        True, description="finish every candidate (default: stop one once it cannot beat the best)"
    )
    block_lambda: Annotated[float | None, _NO_FLAG] = Field(
        None, description="one block λ chosen before (skips the block search)"
    )
    block_lambdas: Annotated[_LAMBDAS, _NO_FLAG] = Field(
        None, description="the block λ candidates (default: the grid's)"
    )
    row_lambdas: Annotated[_LAMBDAS, _NO_FLAG] = Field(
        None, description="the row λ candidates (default: the grid's)"
    )


ALLOCATIONS: Registry[type[AllocationOptions]] = Registry("allocation", (Uniform, Owl, NeuroAL))
