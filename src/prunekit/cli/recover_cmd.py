"""`prunekit recover STUDENT ...`: train a pruned model back towards its dense teacher, zeros kept."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prunekit.cli.common import (
    add_model_args,
    add_output_args,
    add_ppl_args,
    cli_check,
    held_out_sets,
    perplexities,
    ppl_rows,
    print_summary,
)
from prunekit.errors import PrunekitError


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
    from prunekit.config.cli import add_flags
    from prunekit.recovery.config import RecoveryConfig

    add_flags(
        p.add_argument_group("recovery (the recipe step `recover:` takes the same keys)"),
        RecoveryConfig,
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
    from prunekit.config.cli import given
    from prunekit.models.adapters import adapter_for
    from prunekit.models.loading import load_model, resolve_device
    from prunekit.recovery.config import RecoveryConfig
    from prunekit.recovery.distributed import check_fsdp, is_writer, join_from_env, leave
    from prunekit.recovery.report import param_summary, plot_losses
    from prunekit.recovery.run import recover
    from prunekit.recovery.state import has_state, latest_state, remove_state, state_dir_for
    from prunekit.reports.report import new_report, write_report
    from prunekit.utils import Timer, check_output_dir, peak_rss_mb, write_output

    cfg = cli_check(RecoveryConfig, given(args, RecoveryConfig))
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
