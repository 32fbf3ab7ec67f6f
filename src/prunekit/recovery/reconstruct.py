"""Block-wise reconstruction (EBFT-style): train each pruned block to reproduce the dense block's
output on the calibration stream, then move on. One block in memory at a time, no output head.
A depth-pruned student's block reproduces the removed layers after it too (LLM-Streamline's
layer replacement, done with the kept layer itself)."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from prunekit.calibration.engine import BlockContext, LayerwiseEngine, _first
from prunekit.models.adapters import DecoderAdapter
from prunekit.recovery.config import RecoveryConfig
from prunekit.recovery.lineup import layer_sources, teacher_groups
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
    teacher_batches: list[torch.Tensor] | None = None,
    sources: list[int] | None = None,
) -> TrainLog:
    """Per block: targets = the teacher's group of layers that block stands for (itself plus the
    layers depth pruning removed after it) on the teacher's own stream; the student block learns
    to map its own (pruned) stream onto them, so errors of earlier blocks are corrected too.
    `teacher_batches`: the same text in the teacher's token ids (a vocabulary-pruned student);
    `sources`: `layer_sources`, if already known.
    Blocks outside `only` are passed through untrained."""
    teacher_layers = adapter.layers(teacher)
    sources = sources or layer_sources(student, teacher, adapter)
    groups = teacher_groups(sources, len(teacher_layers))
    t_engine = LayerwiseEngine(teacher, adapter, teacher_batches or batches, device, False)
    h0, t_calls = t_engine.capture()
    log = TrainLog()
    state = {"teacher_stream": h0}
    start, cpu0 = time.perf_counter(), time.process_time()

    def block_fn(ctx: BlockContext) -> None:
        stream = state["teacher_stream"]
        for k in groups[ctx.index]:
            t_layer = teacher_layers[k].to(device)
            stream = [_first(t_layer(h, *c.args, **c.kwargs)) for h, c in zip(stream, t_calls[k])]
            t_layer.to("cpu")
        state["teacher_stream"] = stream
        if in_scope(ctx.index, only):
            _train_block(student, adapter, ctx, stream, masks, cfg, log)

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
    before = _block_mse(layer, ctx, targets)
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
    log.blocks[ctx.index] = {"mse_before": before, "mse_after": _block_mse(layer, ctx, targets)}
    log.steps += step
    log.losses.append(sum(losses[-len(ctx.inputs) :]) / len(ctx.inputs))


@torch.no_grad()
def _block_mse(layer: nn.Module, ctx: BlockContext, targets: list[torch.Tensor]) -> float:
    """Mean squared error of the block's output against its targets over the whole stream."""
    errs = [
        F.mse_loss(_first(layer(h, *c.args, **c.kwargs)).float(), t.float())
        for h, c, t in zip(ctx.inputs, ctx.calls, targets)
    ]
    return round(float(torch.stack(errs).mean()), 6)
