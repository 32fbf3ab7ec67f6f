"""Block-wise reconstruction (EBFT-style): train each pruned block to reproduce the dense block's
output on the calibration stream, then move on. One block in memory at a time, no output head."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from prunekit.calibration.engine import BlockContext, LayerwiseEngine, _first
from prunekit.models.adapters import DecoderAdapter
from prunekit.recovery.config import RecoveryConfig
from prunekit.recovery.lora import merge_lora
from prunekit.recovery.masks import Layers, SparsityMasks, in_scope
from prunekit.recovery.trainable import select_trainable
from prunekit.recovery.trainer import TrainLog, lr_at


def reconstruct(
    student: nn.Module,
    teacher: nn.Module,
    adapter: DecoderAdapter,
    batches: list[torch.Tensor],
    masks: SparsityMasks,
    cfg: RecoveryConfig,
    device: torch.device,
    progress: bool = True,
    only: Layers = None,
) -> TrainLog:
    """Per block: targets = the teacher block on the teacher's stream; the student block learns
    to map its own (pruned) stream onto them, so errors of earlier blocks are corrected too.
    Blocks outside `only` are passed through untrained."""
    teacher_layers = adapter.layers(teacher)
    log = TrainLog()
    state: dict = {"teacher_stream": None}
    start, cpu0 = time.perf_counter(), time.process_time()

    def block_fn(ctx: BlockContext) -> None:
        if state["teacher_stream"] is None:  # same embeddings: block 0 sees the same inputs
            state["teacher_stream"] = [h.clone() for h in ctx.inputs]
        t_layer = teacher_layers[ctx.index].to(device)
        targets = [
            _first(t_layer(h, *c.args, **c.kwargs))
            for h, c in zip(state["teacher_stream"], ctx.calls)
        ]
        t_layer.to("cpu")
        state["teacher_stream"] = targets
        if in_scope(ctx.index, only):
            _train_block(student, adapter, ctx, targets, masks, cfg, log)

    engine = LayerwiseEngine(
        student, adapter, batches, device, progress, desc="recover (reconstruct)"
    )
    engine.run(block_fn)
    log.wall_s = time.perf_counter() - start
    log.cpu_s = time.process_time() - cpu0
    return log


def _train_block(
    model: nn.Module,
    adapter: DecoderAdapter,
    ctx: BlockContext,
    targets: list[torch.Tensor],
    masks: SparsityMasks,
    cfg: RecoveryConfig,
    log: TrainLog,
) -> None:
    params = select_trainable(
        model, adapter, cfg.train, masks, cfg.lora_rank, cfg.lora_alpha, only=ctx.index
    )
    layer = adapter.layers(model)[ctx.index]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
    total = cfg.epochs * len(ctx.inputs)
    step = 0
    losses = []
    with torch.enable_grad():
        layer.train()
        for _ in range(cfg.epochs):
            for h, c, target in zip(ctx.inputs, ctx.calls, targets):
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, cfg, total)
                out = _first(layer(h, *c.args, **c.kwargs))
                loss = F.mse_loss(out.float(), target.float())
                loss.backward()
                masks.mask_grads(model, adapter, only=ctx.index)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                masks.apply(model, adapter, only=ctx.index)
                losses.append(float(loss.detach()))
                step += 1
                log.tokens += h.shape[0] * h.shape[1]
        layer.eval()
    merge_lora(layer)
    masks.apply(model, adapter, only=ctx.index)
    model.requires_grad_(False)
    log.steps += step
    log.losses.append(sum(losses[-len(ctx.inputs) :]) / len(ctx.inputs))
