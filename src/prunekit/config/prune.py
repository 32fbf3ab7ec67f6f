"""`PruneConfig`: one-shot pruning of every decoder Linear — the `prune` command's flags, the
recipe's `unstructured` step and `prunekit.prune`'s keywords are all this class."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from prunekit.config.calibration import CalibrationOptions
from prunekit.config.options import Choice, Msg, Names, Surface
from prunekit.methods.patterns import Pattern, parse_pattern, target_sparsity

_NO_FLAG = Names(hidden=(Surface.CLI,))  # the CLI offers these as --NAME-FIELD flags


def _methods():
    from prunekit.methods.pruners import PRUNERS

    return PRUNERS


def _allocations():
    from prunekit.allocation.options import ALLOCATIONS

    return ALLOCATIONS


def _dtypes():
    from prunekit.models.loading import DTYPE_CHOICES

    return DTYPE_CHOICES


def _streams():
    from prunekit.methods.oneshot import STREAMS

    return STREAMS


class PruneConfig(CalibrationOptions):
    """One method at one sparsity (or N:M pattern), an allocation of it over layers and rows, and
    how the calibration forwards run."""

    method: Annotated[str, Choice(_methods)] = Field("wanda", description=None)
    sparsity: Annotated[
        float | None, Msg("<sparsity> must be a number in [0, 1), got {value!r}")
    ] = Field(None, description="fraction of weights to zero, 0 ≤ S < 1")
    pattern: Annotated[
        str, Msg("<pattern> must be unstructured or N:M such as 2:4, got {value!r}")
    ] = Field(
        "unstructured",
        description="unstructured or N:M (N of every M consecutive inputs zero, 0 < N < M), e.g. "
        "2:4 or 4:8",
    )
    method_options: Annotated[dict | None, _NO_FLAG] = Field(
        None, description="the method's own options, e.g. {blocksize: 64} for sparsegpt"
    )
    allocation: Annotated[str, Choice(_allocations)] = Field(
        "uniform",
        description="how many weights each layer and row loses: uniform, owl or neuroal",
    )
    allocation_options: Annotated[dict | None, _NO_FLAG] = Field(
        None, description="the allocation's options (`prunekit.allocation.options`)"
    )
    forward_dtype: Annotated[str | None, Choice(_dtypes)] = Field(
        None,
        description="autocast the calibration forwards to this dtype (weights and statistics keep "
        "theirs); default: the model's dtype; auto = bfloat16 where the device has it, else "
        "float32",
    )
    stream: Annotated[str, Choice(_streams)] = Field(
        "pruned",
        description="statistics on the stream of the blocks already pruned (default, the "
        "published sequential method) or of the dense model (dense: one forward per block; not "
        "the published sequential method)",
    )

    @model_validator(mode="after")
    def _consistent(self):
        """Pattern and sparsity agree; the method's and allocation's options are theirs (filled
        with their defaults)."""
        from prunekit.allocation.build import check_allocation
        from prunekit.methods.pruners import PRUNERS

        pattern = self.parsed_pattern
        target_sparsity(self.sparsity, pattern)
        pruner = PRUNERS.lookup(self.method)
        self.method_options = pruner.from_keys(
            self.method_options, f"method '{self.method}'"
        ).dump()
        self.allocation_options = check_allocation(
            self.allocation, self.allocation_options, pattern
        )
        return self

    @property
    def parsed_pattern(self) -> Pattern:
        return parse_pattern(self.pattern)

    @property
    def target(self) -> float:
        """The target sparsity: N/M for an N:M pattern, else `sparsity`."""
        return target_sparsity(self.sparsity, self.parsed_pattern)

    def pruner(self):
        """The configured method with its options."""
        from prunekit.methods.pruners import get_pruner

        return get_pruner(self.method, self.method_options)
