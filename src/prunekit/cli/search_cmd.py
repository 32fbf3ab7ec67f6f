"""`prunekit search MODEL --budget params=0.8 --hours 3 -o OUT`: EvoPress-style search over per-layer
levels (FFN width, head groups, block drop) within a budget; `--plan plan.json` rebuilds a plan."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from prunekit.errors import PrunekitError

HELP = {
    "budget": "params=F (of the non-embedding parameters, e.g. 0.8), params=N[K|M|B] (e.g. "
    "318.5M), size=N[MB|GB] (bytes of the export at --dtype) or decode=Sx (predicted decode "
    "speedup S > 1 over the dense model, from per-layer times measured on this machine)",
    "stages": "selection stages as fractions of the fitness tokens (comma list ending at 1); "
    "survivors halve each stage",
    "ffn_levels": "MLP channel fractions a layer may keep (comma list)",
    "head_levels": "kv head-group fractions a layer may keep (comma list; 1 = not searched)",
    "work_dir": "level database and search state (default: OUT.search-work; --resume reads it)",
}
# flags the command gives itself (not SearchConfig's): the plan path, HumanEval, keeping work
OWN = ("plan", "humaneval", "humaneval_limit", "max_new_tokens", "keep_work")


def register(sub) -> None:
    from prunekit.cli.common import add_model_args, add_output_args
    from prunekit.config.cli import add_flags
    from prunekit.search.config import SearchConfig

    p = sub.add_parser(
        "search",
        help="search per-layer compression levels within a budget (EvoPress-style, KL fitness)",
    )
    add_model_args(p)
    add_flags(p, SearchConfig, helps=HELP)
    p.add_argument("--plan", type=Path, default=None,
                   help="rebuild a saved plan.json instead of searching (no --budget)")  # fmt: skip
    p.add_argument("--humaneval", action="store_true",
                   help="after the search and export, judge the chosen model on HumanEval")  # fmt: skip
    p.add_argument("--humaneval-limit", type=int, default=None, help="first K problems only")
    p.add_argument("--max-new-tokens", type=int, default=512, help="HumanEval generation length")
    p.add_argument("--keep-work", action="store_true",
                   help="keep the work folder after a finished search")  # fmt: skip
    add_output_args(p)
    p.set_defaults(func=run)


def _config(args: argparse.Namespace):
    from prunekit.config.cli import given
    from prunekit.config.options import Surface
    from prunekit.search.config import SearchConfig

    values = {SearchConfig.spell(k, Surface.CLI): v for k, v in given(args, SearchConfig).items()}
    if "--work-dir" not in values:
        values["--work-dir"] = str(Path(f"{args.output}.search-work"))
    return SearchConfig.parse(values, Surface.CLI)


def run(args: argparse.Namespace) -> int:
    from prunekit.cli.common import load_reported
    from prunekit.utils import check_output_dir, peak_rss_mb

    if args.humaneval_limit is not None and args.humaneval_limit < 1:
        raise PrunekitError(f"--humaneval-limit must be at least 1, got {args.humaneval_limit}")
    if str(args.device) != "cpu":
        raise PrunekitError("search runs on the CPU only for now; drop --device")
    plan = None
    if args.plan is not None:
        from prunekit.search.plan import read_plan

        plan = read_plan(args.plan)
    else:
        cfg = _config(args)
    check_output_dir(args.output, args.force, inputs=[args.model])
    lm, timer, report = load_reported(args)
    if plan is not None:
        from prunekit.search.run import rebuild

        with timer("rebuild"):
            result = rebuild(lm.model, lm.tokenizer, plan)
    else:
        from prunekit.search.run import search

        result = search(lm.model, lm.tokenizer, cfg, info=lm.info)
    timer.stages.update(result.report.pop("timings_s", {}))
    result.report = {**report, **result.report, "timings_s": timer.stages}
    from prunekit.search.report import save_search, update_report

    t = time.perf_counter()
    save_search(result, args.output, force=args.force)
    timer.stages["save"] = time.perf_counter() - t
    if args.humaneval:
        result.report["evaluation"] = {"humaneval": _humaneval(result, args, timer)}
    result.report["peak_rss_mb"] = peak_rss_mb()
    if "search" in result.report:
        update_report(Path(args.output), result.report)
        if not args.keep_work and cfg.work_dir and Path(cfg.work_dir).is_dir():
            shutil.rmtree(cfg.work_dir)
    _summary(result.report, args.output)
    return 0


def _humaneval(result, args: argparse.Namespace, timer) -> dict:
    """HumanEval of the chosen model, after the search (never inside it)."""
    from prunekit.evaluation.humaneval import run_humaneval

    t = time.perf_counter()
    out = run_humaneval(
        result.model,
        result.tokenizer,
        limit=args.humaneval_limit,
        max_new_tokens=args.max_new_tokens,
        jsonl_path=Path(args.output) / "humaneval.jsonl",
        model_name=str(args.model),
    )
    timer.stages["humaneval_after_search"] = time.perf_counter() - t
    return out


def _summary(report: dict, out: Path) -> None:
    from prunekit.cli.common import print_table

    rows = []
    s = report.get("search")
    if s:
        b = s["budget"]
        rows += [
            ["budget", f"{b['text']}: {b['chosen']:,} of {b['limit']:,} {b['unit']}"],
            *_decode_rows(s.get("decode")),
            ["best fitness (KL)", f"{s['best']['fitness']:.6g}"],
            ["exported model's KL", f"{s['best']['direct_fitness']:.6g}"],
            ["dropped layers", str(s["best"]["dropped"] or "none")],
            ["generations / scorings", f"{s['generations']} / {s['evaluations']}"],
            ["stopped by", str(s["stop_reason"])],
        ]
    he = report.get("evaluation", {}).get("humaneval", {})
    if "pass@1" in he:
        rows.append(["HumanEval pass@1 (after the search)", f"{he['pass@1']:.4f}"])
    rows += [[f"time {k} (s)", f"{v:.1f}"] for k, v in report.get("timings_s", {}).items()]
    rows.append(["output", str(out)])
    print_table(["", "value"], rows)


def _decode_rows(decode: dict | None) -> list[list[str]]:
    if decode is None:
        return []
    return [
        ["decode speedup predicted", f"{decode['predicted_speedup']:.3f}x"],
        ["decode speedup measured (this machine)", f"{decode['measured_speedup']:.3f}x"],
    ]
