"""`prunekit eval MODEL ...`: perplexity per corpus (and, with eval_code, HumanEval and speed)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from prunekit.cli.common import (
    PPL_MINIMUMS,
    add_model_args,
    add_ppl_args,
    check_at_least,
    held_out_sets,
    perplexities,
    print_table,
    read_report,
)


def _code_eval():
    import importlib.util

    if importlib.util.find_spec("prunekit.cli.eval_code") is None:
        return None
    return importlib.import_module("prunekit.cli.eval_code")


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model or a prune run folder")
    add_model_args(p)
    add_ppl_args(p, "--ppl")
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="write results here (default: into MODEL/report.json when MODEL is a run folder)",
    )
    code = _code_eval()
    if code is not None:
        code.register_args(p)
    p.set_defaults(func=run)


def _run_folder(model: str) -> Path | None:
    path = Path(model)
    return path if (path / "report.json").is_file() else None


def _check_target(target: Path | None) -> dict | None:
    """Before the model loads: the report to update parses, and its folder is writable."""
    if target is None:
        return None
    from prunekit.utils import check_writable

    check_writable(target)
    return read_report(target) if target.is_file() else None


def run(args: argparse.Namespace) -> int:
    from prunekit.models.loading import load_model, resolve_device
    from prunekit.reports.report import new_report, render_markdown

    device = resolve_device(args.device)
    ppl_sets = held_out_sets(args.ppl)
    code = _code_eval()
    if code is not None:
        code.check_args(args)
    check_at_least(args, **PPL_MINIMUMS)
    folder = _run_folder(args.model)
    target = args.report or (folder / "report.json" if folder else None)
    existing = _check_target(target)
    lm = load_model(args.model, args.dtype, args.trust_remote_code, device)
    lm.model.to(device)
    results: dict = {}
    if ppl_sets:
        results["perplexity"] = perplexities(lm, ppl_sets, args, device)
    if code is not None:
        results.update(
            code.run(args, lm, device, folder or (args.report.parent if args.report else None))
        )
    if not results:
        from prunekit.errors import PrunekitError

        raise PrunekitError("nothing to evaluate; ask for e.g. --ppl python")
    dtype = str(next(lm.model.parameters()).dtype).removeprefix("torch.")
    for entry in [*results.get("perplexity", {}).values(), results.get("humaneval")]:
        if isinstance(entry, dict):
            entry["dtype"] = dtype  # both depend on the dtype the forwards ran in

    if target is not None:
        report = existing if existing is not None else {**new_report(), "model": lm.info}
        evaluation = report.setdefault("evaluation", {})
        for key, value in results.items():
            if isinstance(value, dict) and isinstance(evaluation.get(key), dict):
                evaluation[key].update(value)
            else:
                evaluation[key] = value
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(report, indent=2, default=str))
        tmp.replace(target)
        if target.name == "report.json":
            (target.parent / "report.md").write_text(render_markdown(report))
    rows = [
        [d, f"{r['ppl']:.4f}", r["tokens"], r["seq_len"]]
        for d, r in results.get("perplexity", {}).items()
    ]
    if rows:
        print_table(["data", "perplexity", "tokens", "window"], rows)
    return 0
