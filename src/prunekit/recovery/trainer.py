"""End-to-end distillation: KL(teacher ‖ student) on next-token distributions, pruned weights fixed at zero.

Runs as one process or data-parallel under torch's own distributed stack (`torchrun`): each
process takes its share of every global batch and DDP averages the gradients, or, with
`shard="fsdp"`, FSDP2 shards the student and teacher block by block over the processes.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from prunekit.models.adapters import DecoderAdapter
from prunekit.models.loading import auto_dtype
from prunekit.recovery.config import RecoveryConfig
from prunekit.recovery.data import TrainingData, collate
from prunekit.recovery.distributed import check_fsdp, gathered, shard
from prunekit.recovery.losses import kl_sum, teacher_log_probs
from prunekit.recovery.masks import SparsityMasks
from prunekit.recovery.state import latest_state, load_state, save_state


@dataclass
class TrainLog:
    """What the report records of a training run."""

    steps: int = 0
    tokens: int = 0
    losses: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    resumed_from: int | None = None
    compute_dtype: str = "float32"  # what the forwards and backwards ran in
    # reconstruct: each trained block's MSE to its teacher group, before → after
    blocks: dict[int, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        extra = {"blocks": {str(k): v for k, v in self.blocks.items()}} if self.blocks else {}
        return {
            **extra,
            "compute_dtype": self.compute_dtype,
            "steps": self.steps,
            "tokens": self.tokens,
            "loss_first": self.losses[0] if self.losses else None,
            "loss_last": self.losses[-1] if self.losses else None,
            "losses": [round(x, 5) for x in self.losses],
            "wall_s": round(self.wall_s, 1),
            "cpu_s": round(self.cpu_s, 1),
            "tokens_per_s": round(self.tokens / self.wall_s, 1) if self.wall_s else None,
            "resumed_from_step": self.resumed_from,
        }


def world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless torch.distributed is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_sum(value: torch.Tensor) -> torch.Tensor:
    if world()[1] > 1:
        dist.all_reduce(value)
    return value


def planned_steps(cfg: RecoveryConfig, data: TrainingData) -> int:
    """Steps the schedule spans: max_steps, else the token budget at the data's mean sample length."""
    if cfg.max_steps:
        return cfg.max_steps
    if cfg.max_tokens:
        mean_len = data.tokens / len(data.samples)
        return max(1, math.ceil(cfg.max_tokens / (cfg.batch_size * mean_len)))
    return 10**9  # time budget only: constant rate after warm-up


def lr_at(step: int, cfg: RecoveryConfig, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% over the planned steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if total >= 10**9:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def batch_indices(step: int, cfg: RecoveryConfig, n: int) -> list[int]:
    """The global batch of `step`: consecutive samples of a seeded permutation per epoch."""
    out = []
    for j in range(cfg.batch_size):
        k = step * cfg.batch_size + j
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + k // n))
        out.append(int(perm[k % n]))
    return out


def _use_bf16(bf16: bool, device: torch.device) -> bool:
    """Mixed precision only where the device computes in bfloat16 natively: emulated bfloat16 on
    a CPU without it (no avx512_bf16 / AMX) is several times slower than float32."""
    return bf16 and auto_dtype(device) == "bfloat16"


def _compute_copy(student: nn.Module, bf16: bool) -> nn.Module:
    """The model forwards run on: with `bf16` (resolved by `_use_bf16`) a bfloat16 copy (float32
    masters stay in `student`, so small updates are not rounded away), else `student`."""
    return copy.deepcopy(student).to(torch.bfloat16) if bf16 else student


def _meta_shell(model: nn.Module, keep: list[torch.Tensor]) -> nn.Module:
    """A copy of `model` with its parameters on the meta device (no memory; ties kept) and the
    tensors `keep` shared: the plain module FSDP's gathered weights are put back into."""
    memo = {id(p): nn.Parameter(p.detach().to("meta"), p.requires_grad) for p in model.parameters()}
    return copy.deepcopy(model, memo | {id(t): t for t in keep})


class Distiller:
    """Trains `params` of the student towards the teacher; masks re-applied after every step.
    With cfg.shard == "fsdp" both models are sharded in place: take the result from `unsharded()`."""

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        adapter: DecoderAdapter,
        params: list[nn.Parameter],
        masks: SparsityMasks,
        teacher_ids: torch.Tensor | None,
        cfg: RecoveryConfig,
        device: torch.device,
        pad_id: int,
    ) -> None:
        self.student, self.teacher, self.adapter = student, teacher, adapter
        self.params, self.masks, self.teacher_ids = params, masks, teacher_ids
        self.cfg, self.device, self.pad_id = cfg, device, pad_id
        self.rank, self.world = world()
        names = {id(p): n for n, p in student.named_parameters()}
        trained = [names[id(p)] for p in params]
        bf16 = _use_bf16(cfg.bf16, device)
        weights_dtype = next(student.parameters()).dtype
        self.compute_dtype = str(torch.bfloat16 if bf16 else weights_dtype).removeprefix("torch.")
        self.fsdp, self.shell = cfg.shard == "fsdp", None
        if self.fsdp:
            check_fsdp(cfg.batch_size)
            self.shell = _meta_shell(student, list(masks.keeps.values()))
            shard(teacher, adapter, device, bf16=False)
            shard(student, adapter, device, bf16)
        live = dict(student.named_parameters())
        self.named = {n: live[n] for n in trained}  # float32 masters (FSDP shards): trained, saved
        self.params = list(self.named.values())
        self.compute = student if self.fsdp else _compute_copy(student, bf16)
        live = dict(self.compute.named_parameters())
        self.pairs = [(p, live[n]) for n, p in self.named.items() if live[n] is not p]
        self.forward = self.compute
        if self.world > 1 and not self.fsdp:
            self.forward = nn.parallel.DistributedDataParallel(self.compute)
        self.optimizer = torch.optim.AdamW(
            self.params, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0
        )

    @torch.no_grad()
    def unsharded(self) -> nn.Module:
        """The trained student as a plain module: itself, or under FSDP its shell with the whole
        weights gathered (one tensor at a time; every process gets them, in CPU memory)."""
        if self.shell is None:
            return self.student
        sharded = dict(self.student.named_parameters())
        for name, p in self.shell.named_parameters():
            whole = nn.Parameter(gathered(sharded[name]).cpu(), p.requires_grad)
            torch.utils.swap_tensors(p, whole)
        return self.shell

    @torch.no_grad()
    def _sync(self) -> None:
        """Copy the float32 masters into the compute copy's parameters."""
        for master, live in self.pairs:
            live.copy_(master)

    def _grads_to_masters(self) -> None:
        for master, live in self.pairs:
            master.grad = None if live.grad is None else live.grad.float()
            live.grad = None

    def _step(self, data: TrainingData, step: int) -> tuple[float, int]:
        """One optimiser step over the global batch; returns its mean KL and its token count."""
        chosen = batch_indices(step, self.cfg, len(data.samples))
        mine = [data.samples[i] for i in chosen[self.rank :: self.world]]
        weight = torch.tensor([sum(sum(s.weights) for s in mine)], dtype=torch.float64)
        total_weight = float(_all_sum(weight.clone()))
        loss_sum = torch.zeros(1, dtype=torch.float64)
        micro = [
            mine[i : i + self.cfg.micro_batch] for i in range(0, len(mine), self.cfg.micro_batch)
        ]
        for k, chunk in enumerate(micro):
            ids, mask, w = (t.to(self.device) for t in collate(chunk, self.pad_id))
            t_ids = self.teacher_ids[ids] if self.teacher_ids is not None else ids
            with torch.no_grad():
                t_logp = teacher_log_probs(
                    self.teacher(input_ids=t_ids, attention_mask=mask).logits, self.teacher_ids
                )
            sync = k == len(micro) - 1 or self.world == 1 or self.fsdp  # FSDP: reduce-scatter each
            ctx = contextlib.nullcontext() if sync else self.forward.no_sync()
            with ctx:
                logits = self.forward(input_ids=ids, attention_mask=mask).logits
                kl = kl_sum(logits, t_logp, w)
                (kl * self.world / total_weight).backward()
            loss_sum += kl.detach().double().cpu()
        self._grads_to_masters()
        self.masks.mask_grads(self.student, self.adapter)
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.masks.apply(self.student, self.adapter)
        self._sync()
        tokens = torch.tensor([sum(len(s.ids) for s in mine)], dtype=torch.float64)
        return float(_all_sum(loss_sum)) / total_weight, int(_all_sum(tokens))

    def train(
        self,
        data: TrainingData,
        state_dir: Path | None = None,
        resume: bool = False,
        progress: bool = True,
    ) -> TrainLog:
        cfg, log = self.cfg, TrainLog(compute_dtype=self.compute_dtype)
        total = planned_steps(cfg, data)
        if resume and state_dir is not None and latest_state(state_dir) is not None:
            meta = load_state(state_dir, self.named, self.optimizer)
            log.steps, log.tokens, log.losses = meta["step"], meta["tokens"], meta["losses"]
            log.resumed_from = log.steps
            self._sync()
        self.compute.train()
        start, cpu0 = time.perf_counter(), time.process_time()
        bar = tqdm(
            total=cfg.max_steps or None,
            desc="recover (distill)",
            unit="step",
            disable=not progress or self.rank != 0,
        )
        bar.update(log.steps)
        try:
            while not self._budget_reached(log, time.perf_counter() - start):
                for group in self.optimizer.param_groups:
                    group["lr"] = lr_at(log.steps, cfg, total)
                loss, tokens = self._step(data, log.steps)
                log.steps += 1
                log.tokens += tokens
                log.losses.append(loss)
                bar.update(1)
                elapsed = time.perf_counter() - start
                bar.set_postfix(kl=f"{loss:.4f}", tok_s=f"{log.tokens / max(elapsed, 1e-9):.0f}")
                if (
                    state_dir is not None
                    and (self.rank == 0 or self.fsdp)  # FSDP: every process gathers its shards
                    and log.steps % cfg.checkpoint_every == 0
                ):
                    meta = {"step": log.steps, "tokens": log.tokens, "losses": log.losses}
                    save_state(state_dir, self.named, self.optimizer, meta, self.rank == 0)
        finally:
            bar.close()
            self.compute.eval()
        log.wall_s = time.perf_counter() - start
        log.cpu_s = time.process_time() - cpu0
        return log

    def _budget_reached(self, log: TrainLog, elapsed: float) -> bool:
        """Any budget spent; under DDP every process stops together (clocks differ)."""
        cfg = self.cfg
        done = bool(
            (cfg.max_steps and log.steps >= cfg.max_steps)
            or (cfg.max_tokens and log.tokens >= cfg.max_tokens)
            or (cfg.time_budget_s and elapsed >= cfg.time_budget_s)
        )
        return bool(_all_sum(torch.tensor([float(done)])) > 0)
