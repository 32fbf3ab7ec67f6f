"""Recover a pruned student from its dense teacher: check the pair, build data, train, verify masks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from prunekit.config.api import takes
from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.recovery.answers import teacher_answers
from prunekit.recovery.config import RecoveryConfig
from prunekit.recovery.data import (
    ANSWERED,
    answered_corpora,
    build_training_data,
    instructions_from,
)
from prunekit.recovery.distributed import check_fsdp
from prunekit.recovery.lineup import layer_sources, teacher_groups
from prunekit.recovery.lora import merge_lora
from prunekit.recovery.masks import SparsityMasks
from prunekit.recovery.trainable import select_trainable
from prunekit.recovery.trainer import Distiller, TrainLog
from prunekit.recovery.vocab_map import teacher_ids_for


@dataclass
class RecoveryResult:
    """The recovered student (edited in place; under FSDP a plain copy holding the gathered
    weights) and what the report records."""

    model: nn.Module
    tokenizer: object
    report: dict = field(default_factory=dict)
    log: TrainLog | None = None


def check_pair(
    student: nn.Module, teacher: nn.Module, student_tok, teacher_tok
) -> torch.Tensor | None:
    """The student must be a pruned form of the teacher: same family and hidden size, no more
    layers, and a vocabulary the teacher contains. Returns the student→teacher token map."""
    s_cfg, t_cfg = student.config, teacher.config
    if s_cfg.model_type != t_cfg.model_type:
        raise PrunekitError(
            f"the teacher is a {t_cfg.model_type} model and the student a {s_cfg.model_type} one; "
            "pass the model the student was pruned from with --teacher"
        )
    if s_cfg.hidden_size != t_cfg.hidden_size or s_cfg.num_hidden_layers > t_cfg.num_hidden_layers:
        raise PrunekitError(
            f"the student (hidden {s_cfg.hidden_size}, {s_cfg.num_hidden_layers} layers) is not a pruned "
            f"form of the teacher (hidden {t_cfg.hidden_size}, {t_cfg.num_hidden_layers} layers); "
            "pass the model it was pruned from with --teacher"
        )
    return teacher_ids_for(student_tok, teacher_tok)


def pruned_layers(
    student: nn.Module, teacher: nn.Module, adapter, sources: list[int] | None = None
) -> list[int]:
    """The student layers pruning touched: one standing for removed layers too (depth pruning),
    with a Linear narrower than its teacher layer's (structured pruning), or with more exact zeros
    (a dequantized teacher has zeros of its own). `sources`: `layer_sources`, if already known."""
    s_layers, t_layers = adapter.layers(student), adapter.layers(teacher)
    sources = sources or layer_sources(student, teacher, adapter)
    groups = teacher_groups(sources, len(t_layers))
    touched = []
    for i, (s_layer, k) in enumerate(zip(s_layers, sources)):
        s_lin, t_lin = adapter.linears(s_layer), adapter.linears(t_layers[k])
        if len(groups[i]) > 1 or any(
            lin.weight.shape != t_lin[name].weight.shape
            or int((lin.weight == 0).sum()) > int((t_lin[name].weight == 0).sum())
            for name, lin in s_lin.items()
        ):
            touched.append(i)
    if not touched:
        raise PrunekitError(
            "--layers pruned: no layer of the student differs from the teacher's; use --layers all"
        )
    return touched


def trainable_count(params: list[nn.Parameter], masks: SparsityMasks, model, adapter) -> int:
    """Entries that can change: trainable tensors minus their pruned (fixed-zero) entries."""
    ids = {id(p) for p in params}
    fixed = sum(int((~k).sum()) for w, k in masks.weights(model, adapter) if id(w) in ids)
    return sum(p.numel() for p in params) - fixed


@takes(RecoveryConfig)
def recover(
    student: nn.Module,
    student_tokenizer,
    teacher: nn.Module,
    teacher_tokenizer,
    cfg: RecoveryConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    state_dir: Path | None = None,
    resume: bool = False,
    **options,
) -> RecoveryResult:
    """Train the student towards the teacher; every pruned weight stays exactly zero.

    Give a `RecoveryConfig` or its fields as keywords (the `recover` command's flags and the
    recipe's `recover` step are the same class), e.g. `train="lora", max_steps=100`.
    """
    cfg = RecoveryConfig.of(cfg, options)
    device = torch.device(device)
    fsdp = cfg.shard == "fsdp"
    if fsdp:
        check_fsdp(cfg.batch_size)
    teacher_ids = check_pair(student, teacher, student_tokenizer, teacher_tokenizer)
    adapter = adapter_for(student)
    windows_only = cfg.method == "reconstruct"
    # each student layer must be a pruned teacher layer; checked before any data is made
    sources = (
        layer_sources(student, teacher, adapter) if windows_only or cfg.layers == "pruned" else None
    )
    masks = SparsityMasks.from_model(student, adapter)
    torch.manual_seed(cfg.seed)
    spec = _window_parts(cfg.data) if windows_only else cfg.data
    teacher.eval().requires_grad_(False)
    if not fsdp or answered_corpora(spec):  # FSDP moves shards only; answering needs the whole
        teacher.to(device)
    answers, answer_reports = _answers(spec, teacher, teacher_tokenizer, cfg, device, progress)
    data = build_training_data(
        spec,
        student_tokenizer,
        seq_len=cfg.seq_len,
        windows=cfg.windows,
        instructions=cfg.instructions,
        seed=cfg.seed,
        answers=answers,
        windows_only=windows_only,
    )
    for corpus, rep in answer_reports.items():
        data.report["sources"][f"answered:{corpus}"]["teacher_answers"] = rep
    if not fsdp:
        student.to(device)
    layers = pruned_layers(student, teacher, adapter, sources) if cfg.layers == "pruned" else None
    if cfg.method == "distill":
        params = select_trainable(
            student, adapter, cfg.train, masks, cfg.lora_rank, cfg.lora_alpha, only=layers
        )
        trainable = trainable_count(params, masks, student, adapter)
        pad = student_tokenizer.pad_token_id
        pad = pad if pad is not None else student_tokenizer.eos_token_id
        distiller = Distiller(
            student, teacher, adapter, params, masks, teacher_ids, cfg, device, pad
        )
        log = distiller.train(data, state_dir, resume, progress)
        student = distiller.unsharded()
        merge_lora(student)
    else:
        from prunekit.recovery.reconstruct import reconstruct

        ids = torch.tensor([s.ids for s in data.samples])
        t_ids = ids if teacher_ids is None else teacher_ids[ids]
        trainable = None  # per block; recorded by the block loop
        log = reconstruct(
            student,
            teacher,
            adapter,
            list(ids.split(cfg.micro_batch)),
            masks,
            cfg,
            device,
            progress,
            layers,
            list(t_ids.split(cfg.micro_batch)),
            sources,
        )
    student.requires_grad_(False).eval()
    report = {
        "config": cfg.as_dict(),
        "data": data.report,
        "trainable_params": trainable,
        "vocabulary_mapped": teacher_ids is not None,
        "trained_layers": "all" if layers is None else layers,
        # what training left: no final re-apply of the masks before this (it made the check unfailable)
        "masks": masks.verify(student, adapter),
        "training": log.as_dict(),
    }
    if not report["masks"]["pruned_weights_still_zero"]:
        raise PrunekitError("a pruned weight became non-zero during recovery; this is a bug")
    return RecoveryResult(student, student_tokenizer, report, log)


def _answers(
    spec: str, teacher: nn.Module, tokenizer, cfg: RecoveryConfig, device, progress: bool
) -> tuple[dict[str, str], dict[str, dict]]:
    """Checked teacher answers for the spec's `answered:` corpora (rank 0 makes the cache first)."""
    import torch.distributed as dist

    from prunekit.models.registry import cache_root

    corpora = answered_corpora(spec)
    group = bool(corpora) and dist.is_available() and dist.is_initialized()
    if group and dist.get_rank() != 0:
        dist.barrier()
    answers: dict[str, str] = {}
    reports: dict[str, dict] = {}
    for corpus in corpora:
        items = instructions_from(corpus, cfg.instructions, cfg.seed)
        got, reports[corpus] = teacher_answers(
            items, corpus, teacher, tokenizer, cache_root(), device=device, progress=progress
        )
        answers.update(got)
    if group and dist.get_rank() == 0:
        dist.barrier()
    return answers, reports


def _window_parts(spec: str) -> str:
    """Reconstruction needs equal-length windows: the spec's corpora, paths and instruct:CORPUS
    parts (chat-formatted instructions cut into windows); teacher answers and JSONL rows are not."""
    parts = [p.strip() for p in spec.split(",")]
    parts = [p for p in parts if p and not p.startswith(ANSWERED) and not p.endswith(".jsonl")]
    if not parts:
        raise PrunekitError(
            "reconstruct trains on equal-length windows; add a corpus or instruct:CORPUS to "
            "--data (e.g. python)"
        )
    return ",".join(parts)
