"""`prunekit recover STUDENT ...`: train a pruned model back towards its dense teacher, zeros kept."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prunekit.cli.common import (
    add_config_args,
    add_model_args,
    add_output_args,
    add_ppl_args,
    config_from_args,
    held_out_sets,
    perplexities,
    ppl_rows,
    print_summary,
)
from prunekit.errors import PrunekitError

HELP = {
    "method": "distill (end-to-end KL to the teacher) or reconstruct (block by block, MSE)",
    "train": "norms (norms + biases), lora (masked LoRA, merged) or full (surviving weights)",
    "layers": "all, or pruned: train only the layers pruning touched (zeros or narrower than "
    "the teacher's; SAAP's group-wise fine-tuning)",
    "data": "comma-separated: a corpus (python), instruct:CORPUS (corpus-answered), "
    "answered:CORPUS (teacher-answered, sandbox-checked, cached), or a .jsonl / folder of text",
    "windows": "corpus windows per corpus in --data",
    "instructions": "corpus-derived instructions per instruct:/answered: source",
    "batch_size": "samples per optimiser step (global, over all processes)",
    "micro_batch": "samples per forward pass",
    "lr": "learning rate (default: distill 1e-3 norms, 3e-4 lora, 2e-5 full; reconstruct 1e-3, 2e-3 full)",
    "max_steps": "stop after N optimiser steps",
    "max_tokens": "stop after N training tokens (default 400000)",
    "time_budget_s": "stop after S seconds of training (default 2700)",
    "epochs": "reconstruct: passes over the windows per block",
    "checkpoint_every": "save resumable training state every N steps",
    "bf16": "forward/backward in a bfloat16 copy where the device computes in bfloat16 natively, "
    "float32 master weights (--no-bf16: all float32)",
    "shard": "under torchrun: ddp (a whole model per process, default) or fsdp (FSDP2: student "
    "and teacher sharded block by block over the processes, for students larger than one GPU)",
}


def register(sub) -> None:
    p = sub.add_parser(
        "recover", help="recover a pruned model by distillation from its dense teacher"
    )
    add_model_args(p)
    p.add_argument(
        "--teacher",
        default=None,
        help="the dense model (default: the one the student's report.json names)",
    )
    p.add_argument(
        "--teacher-dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="auto: bfloat16 where the device computes in it natively, else float32",
    )
    from prunekit.recovery.config import SHARDS, RecoveryConfig

    add_config_args(
        p,
        "recovery (the recipe step `recover:` takes the same keys)",
        RecoveryConfig,
        HELP,
        choices={"shard": list(SHARDS)},
    )
    p.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last checkpoint"
    )
    add_ppl_args(p, "--eval-ppl")
    add_output_args(p)
    p.set_defaults(func=run)


def teacher_of(student: str, given: str | None) -> str:
    """--teacher, else the model named in the student folder's report.json."""
    if given:
        return given
    report = Path(student) / "report.json"
    try:
        return json.loads(report.read_text())["model"]["id"]
    except (OSError, ValueError, KeyError, TypeError):
        raise PrunekitError(
            f"cannot tell the teacher of '{student}' (no readable report.json naming its model); pass --teacher"
        ) from None


def student_evaluation(student: str) -> dict:
    """The student's own HumanEval result, if its report.json has one (the "before" of recovery;
    `prunekit eval OUT --humaneval` adds the "after")."""
    try:
        report = json.loads((Path(student) / "report.json").read_text())
        humaneval = report["evaluation"]["humaneval"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {"humaneval": {**humaneval, "from": str(Path(student) / "report.json")}}


def run(args: argparse.Namespace) -> int:
    from prunekit.models.adapters import adapter_for
    from prunekit.models.loading import load_model, resolve_device
    from prunekit.recovery.config import RecoveryConfig
    from prunekit.recovery.distributed import check_fsdp, is_writer, join_from_env, leave
    from prunekit.recovery.report import param_summary, plot_losses
    from prunekit.recovery.run import recover
    from prunekit.recovery.state import has_state, latest_state, remove_state, state_dir_for
    from prunekit.reports.report import new_report, write_report
    from prunekit.utils import Timer, check_output_dir, peak_rss_mb, write_output

    cfg = config_from_args(args, RecoveryConfig)
    teacher_name = teacher_of(args.model, args.teacher)
    check_output_dir(args.output, args.force, inputs=[args.model, teacher_name])
    device = join_from_env(resolve_device(args.device))
    if cfg.shard == "fsdp":
        check_fsdp(cfg.batch_size)
    ppl_sets = held_out_sets(args.eval_ppl)
    state_dir = state_dir_for(args.output)
    if has_state(state_dir) and not args.resume:
        raise PrunekitError(
            f"an interrupted run left {state_dir}; pass --resume to continue it, or delete it"
        )
    if args.resume and is_writer():
        found = latest_state(state_dir)
        where = f"from '{found}'" if found else "from step 0 (no complete checkpoint was left)"
        print(f"prunekit: resuming {where}", file=sys.stderr)

    timer, report = Timer(), new_report()
    with timer("load"):
        student = load_model(args.model, args.dtype, args.trust_remote_code, device)
        teacher = load_model(teacher_name, args.teacher_dtype, args.trust_remote_code, device)
    report["model"], report["teacher"] = student.info, teacher.info
    adapter = adapter_for(student.model)
    report["params_before"] = param_summary(student.model, adapter)
    report["evaluation_before"] = student_evaluation(args.model)
    if ppl_sets and is_writer():
        with timer("eval_before"):
            report["evaluation_before"]["perplexity"] = perplexities(
                student, ppl_sets, args, device
            )
    with timer("recover"):
        result = recover(
            student.model,
            student.tokenizer,
            teacher.model,
            teacher.tokenizer,
            cfg,
            device=device,
            state_dir=state_dir,
            resume=args.resume,
        )
    del teacher
    student.model = result.model  # under FSDP: a plain copy with the gathered weights
    report["recovery"] = result.report
    report["params"] = param_summary(student.model, adapter)
    if not is_writer():
        leave()
        return 0
    if ppl_sets:
        with timer("eval_after"):
            report["evaluation"] = {"perplexity": perplexities(student, ppl_sets, args, device)}
    report["timings_s"] = timer.stages
    report["peak_rss_mb"] = peak_rss_mb()
    from prunekit.export.checkpoint import save_checkpoint

    def _write(tmp: Path) -> None:
        save_checkpoint(student.model, student.tokenizer, tmp)
        plot_losses(
            result.log.losses, tmp / "recovery_loss.png", f"recover ({cfg.method}, {cfg.train})"
        )
        write_report(tmp, report)

    write_output(args.output, _write, force=args.force)
    remove_state(state_dir)
    leave()
    _summary(report, args.output)
    return 0


def _summary(report: dict, out: Path) -> None:
    rec, tr = report["recovery"], report["recovery"]["training"]
    rows = [
        ["method / trainable", f"{rec['config']['method']} / {rec['config']['train']}"],
        [
            "trainable parameters",
            f"{rec['trainable_params']:,}" if rec["trainable_params"] else "per block",
        ],
        ["data", f"{rec['data']['samples']} samples, {rec['data']['tokens']:,} tokens"],
        [
            "removed (HumanEval overlap)",
            str(sum(s["removed_humaneval_overlap"] for s in rec["data"]["sources"].values())),
        ],
        ["steps / tokens trained", f"{tr['steps']} / {tr['tokens']:,}"],
        ["loss first → last", f"{tr['loss_first']:.4g} → {tr['loss_last']:.4g}"],
        ["train wall / CPU (s)", f"{tr['wall_s']} / {tr['cpu_s']} ({tr['tokens_per_s']} tok/s)"],
        ["pruned weights still zero", str(rec["masks"]["pruned_weights_still_zero"])],
        [
            "params total / non-embedding",
            f"{report['params']['total']:,} / {report['params']['non_embedding']:,}",
        ],
    ]
    if "pattern" in rec["masks"]:
        rows.append(
            [f"{rec['masks']['pattern']} pattern valid", str(rec["masks"]["pattern_valid"])]
        )
    print_summary(rows + ppl_rows(report), report, out)
