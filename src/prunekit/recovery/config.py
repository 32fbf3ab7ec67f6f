"""`RecoveryConfig`: how a pruned student is trained back — the `recover` command's flags, the
recipe's `recover` step (`RecoverStepConfig`, with its teacher) and `prunekit.recover`'s keywords."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from prunekit.config.options import Choice, Msg, Names, OptionError, Options
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
_BUDGETS = "<max_steps>, <max_tokens> or <time_budget_s>"


def _one_of(noun: str) -> str:
    return f"unknown {noun} '{{value}}'; choose one of: {{choices}}"


class RecoveryConfig(Options):
    """How to recover a pruned student (see DESIGN §3.6). Budgets: the first one reached stops."""

    method: Annotated[str, Choice(METHODS, _one_of("recovery method"))] = Field(
        "distill",
        description="distill (end-to-end KL to the teacher) or reconstruct (block by block, MSE)",
    )
    train: Annotated[str, Choice(TRAINABLE, _one_of("trainable set"))] = Field(
        "full",
        description="norms (norms + biases), lora (masked LoRA, merged) or full (surviving "
        "weights)",
    )
    layers: Annotated[str, Choice(LAYERS, _one_of("layers"))] = Field(
        "all",
        description="all, or pruned: train only the layers pruning touched (zeros or narrower "
        "than the teacher's; SAAP's group-wise fine-tuning)",
    )
    data: str = Field(
        "instruct:python,python",
        description="comma-separated: a corpus (python), instruct:CORPUS (corpus-answered), "
        "answered:CORPUS (teacher-answered, sandbox-checked, cached), or a .jsonl / folder of "
        "text",
    )
    seq_len: int = Field(512, ge=2, description="tokens per training sample")
    windows: int = Field(256, ge=1, description="corpus windows per corpus in --data")
    instructions: int = Field(
        4000, ge=1, description="corpus-derived instructions per instruct:/answered: source"
    )
    batch_size: int = Field(
        8, ge=1, description="samples per optimiser step (global, over all processes)"
    )
    micro_batch: int = Field(2, ge=1, description="samples per forward pass")
    lr: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="learning rate (default: distill 1e-3 norms, 3e-4 lora, 2e-5 full; "
        "reconstruct 1e-3, 2e-3 full)",
    )
    warmup_steps: int = Field(10, ge=0, description="optimiser steps of linear warm-up")
    max_steps: int | None = Field(None, description="stop after N optimiser steps")
    max_tokens: int | None = Field(
        400_000, description="stop after N training tokens (default 400000)"
    )
    time_budget_s: Annotated[
        float | None,
        Names(cli="--time-budget"),
        Msg("<time_budget_s> must be a finite number of seconds, got {value!r}"),
    ] = Field(
        2700.0,
        allow_inf_nan=False,
        description="stop after S seconds of training (default 2700)",
    )
    epochs: int = Field(2, ge=1, description="reconstruct: passes over the windows per block")
    lora_rank: int = Field(16, ge=1, description="rank of the LoRA adapters (--train lora)")
    lora_alpha: Annotated[
        float,
        Msg("<lora_alpha> must be a positive number (the LoRA scale is alpha/rank), got {value!r}"),
    ] = Field(32.0, gt=0, allow_inf_nan=False, description="LoRA scale numerator (alpha/rank)")
    checkpoint_every: int = Field(
        50, ge=1, description="save resumable training state every N steps"
    )
    seed: int = Field(0, ge=0, description="sampling and initialisation seed")
    bf16: bool = Field(
        True,
        description="forward/backward in a bfloat16 copy where the device computes in bfloat16 "
        "natively, float32 master weights (--no-bf16: all float32)",
    )
    shard: Annotated[str, Choice(SHARDS, _one_of("shard mode"))] = Field(
        "ddp",
        description="under torchrun: ddp (a whole model per process, default) or fsdp (FSDP2: "
        "student and teacher sharded block by block over the processes, for students larger "
        "than one GPU)",
    )

    @model_validator(mode="after")
    def _consistent(self):
        """FSDP only for distillation; at least one positive budget; lr by method and set."""
        if self.shard == "fsdp" and self.method != "distill":
            raise OptionError(
                "<shard> fsdp applies to <method> distill (reconstruct trains one block at a time)"
            )
        budgets = (self.max_steps, self.max_tokens, self.time_budget_s)
        if all(b is None for b in budgets):
            raise OptionError(f"give a budget ({_BUDGETS})")
        if any(b is not None and b <= 0 for b in budgets):
            raise OptionError(
                "a budget of zero trains nothing; give a positive "
                "<max_steps>/<max_tokens>/<time_budget_s>"
            )
        if self.lr is None:
            self.lr = DEFAULT_LR[(self.method, self.train)]
        return self

    def as_dict(self) -> dict[str, Any]:
        """The settings by field name (what a report records)."""
        return {f: getattr(self, f) for f in RecoveryConfig.model_fields}


class RecoverStepConfig(RecoveryConfig):
    """The recipe's `recover` step: the settings and the teacher (default: the recipe's model).
    A recipe runs in one process, so FSDP (torchrun's processes) is not offered."""

    teacher: Annotated[
        str | None,
        Msg("<teacher> must be a model name or path, got {value!r}"),
    ] = Field(None, description="the dense model (default: the recipe's model)")

    @model_validator(mode="after")
    def _one_process(self):
        if self.shard == "fsdp":
            raise OptionError(
                "<shard>: fsdp needs torchrun's processes and a recipe runs in one; run the "
                "recipe without it, then `torchrun ... prunekit recover OUT --shard fsdp`"
            )
        return self

    def settings(self) -> RecoveryConfig:
        """The recovery settings without the teacher."""
        return RecoveryConfig(**self.as_dict())
