"""The recovery settings as one typed object: the CLI, the recipe step and the API all build it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from prunekit.errors import PrunekitError
from prunekit.recovery.trainable import TRAINABLE

METHODS = ("distill", "reconstruct")
LAYERS = ("all", "pruned")
SHARDS = ("ddp", "fsdp")
# Block reconstruction fits one block to an MSE target in a few dozen steps: 2e-5 barely moved it
# (smollm2-135m, layer 15 removed, held-out Python ppl 12.68 → 12.49; 1e-4 → 11.98, 5e-4 → 11.16,
# 2e-3 → 10.74, 5e-3 → 10.64; dense 10.25; 32 windows × 256, 2 epochs)
DEFAULT_LR = {
    ("distill", "norms"): 1e-3,
    ("distill", "lora"): 3e-4,
    ("distill", "full"): 2e-5,
    ("reconstruct", "norms"): 1e-3,
    ("reconstruct", "lora"): 1e-3,
    ("reconstruct", "full"): 2e-3,
}


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    """A finite real number (not a bool, not NaN or infinity)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class RecoveryConfig:
    """How to recover a pruned student (see DESIGN §3.6). Budgets: the first one reached stops."""

    method: str = "distill"
    train: str = "full"
    layers: str = "all"  # pruned: only the layers pruning touched train (SAAP's group-wise tuning)
    data: str = "instruct:python,python"
    seq_len: int = 512
    windows: int = 256  # corpus windows per corpus named in `data`
    instructions: int = 4000  # corpus-derived instructions per `instruct:` source
    batch_size: int = 8  # samples per optimiser step (global, over all processes)
    micro_batch: int = 2  # samples per forward pass
    lr: float | None = None  # default by method and trainable set: DEFAULT_LR
    warmup_steps: int = 10
    max_steps: int | None = None
    max_tokens: int | None = 400_000
    time_budget_s: float | None = 2700.0  # the default run ends within 45 minutes of training
    epochs: int = 2  # reconstruct: passes over the calibration windows per block
    lora_rank: int = 16
    lora_alpha: float = 32.0
    checkpoint_every: int = 50
    seed: int = 0
    # forwards in a bfloat16 copy where the device computes in bfloat16 natively (float32 elsewhere);
    # trained weights stay float32 (mixed precision)
    bf16: bool = True
    shard: str = "ddp"  # under torchrun: ddp (a whole copy per process) or fsdp (FSDP2, sharded)

    def __post_init__(self) -> None:
        if self.lr is None:
            self.lr = DEFAULT_LR.get((self.method, self.train), 2e-5)

    @classmethod
    def from_options(cls, options: dict) -> RecoveryConfig:
        """From a recipe step's mapping; an unknown key gets one line listing the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise PrunekitError(
                f"recover: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**options).validated()

    def validated(self) -> RecoveryConfig:
        """Check every value before any model is loaded."""
        if self.method not in METHODS:
            raise PrunekitError(
                f"unknown recovery method '{self.method}'; choose one of: {', '.join(METHODS)}"
            )
        if self.train not in TRAINABLE:
            raise PrunekitError(
                f"unknown trainable set '{self.train}'; choose one of: {', '.join(TRAINABLE)}"
            )
        if self.layers not in LAYERS:
            raise PrunekitError(
                f"unknown layers '{self.layers}'; choose one of: {', '.join(LAYERS)}"
            )
        if self.shard not in SHARDS:
            raise PrunekitError(
                f"unknown shard mode '{self.shard}'; choose one of: {', '.join(SHARDS)}"
            )
        if self.shard == "fsdp" and self.method != "distill":
            raise PrunekitError(
                "--shard fsdp applies to --method distill (reconstruct trains one block at a time)"
            )
        for name in (
            "seq_len",
            "windows",
            "instructions",
            "batch_size",
            "micro_batch",
            "epochs",
            "lora_rank",
            "checkpoint_every",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise PrunekitError(f"recover: {name} must be a positive integer, got {value!r}")
        if self.seq_len < 2:
            raise PrunekitError("recover: seq_len must be at least 2")
        if not (isinstance(self.lr, int | float) and 0 < self.lr < 1):
            raise PrunekitError(f"recover: lr must be in (0, 1), got {self.lr!r}")
        if not _whole(self.warmup_steps) or self.warmup_steps < 0:
            raise PrunekitError(
                f"recover: warmup_steps must be a whole number >= 0, got {self.warmup_steps!r}"
            )
        if not _number(self.lora_alpha) or self.lora_alpha <= 0:
            raise PrunekitError(
                f"recover: lora_alpha must be a positive number (the LoRA scale is alpha/rank), "
                f"got {self.lora_alpha!r}"
            )
        for name in ("max_steps", "max_tokens"):
            value = getattr(self, name)
            if value is not None and not _whole(value):
                raise PrunekitError(f"recover: {name} must be a whole number, got {value!r}")
        if self.time_budget_s is not None and not _number(self.time_budget_s):
            raise PrunekitError(
                f"recover: time_budget_s must be a finite number of seconds, got {self.time_budget_s!r}"
            )
        budgets = (self.max_steps, self.max_tokens, self.time_budget_s)
        if all(b is None for b in budgets):
            raise PrunekitError(
                "recover: give a budget (--max-steps, --max-tokens or --time-budget)"
            )
        if any(b is not None and b <= 0 for b in budgets):
            raise PrunekitError(
                "recover: a budget of zero trains nothing; give a positive --max-steps/--max-tokens/--time-budget"
            )
        return self

    def as_dict(self) -> dict:
        return asdict(self)
