"""`prunekit prune MODEL ...`: one-shot pruning with magnitude / Wanda / SparseGPT, exported with a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from prunekit.cli.common import add_model_args, add_ppl_args, split_list


def register(sub) -> None:
    p = sub.add_parser(
        "prune", help="prune a model and export a standard checkpoint with report.json"
    )
    add_model_args(p)
    p.add_argument("--method", default="wanda", choices=["magnitude", "wanda", "sparsegpt"])
    p.add_argument(
        "--sparsity", type=float, default=None, help="fraction of weights to zero, 0 ≤ S < 1"
    )
    p.add_argument("--pattern", default="unstructured", help="unstructured, 2:4 or 4:8")
    p.add_argument(
        "--calib", default="python", help="built-in corpus (python) or a file/folder/.jsonl"
    )
    p.add_argument("--calib-samples", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8, help="calibration windows per forward pass")
    p.add_argument("--seed", type=int, default=0)
    add_ppl_args(p, "--eval-ppl")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prunekit import api
    from prunekit.data.sources import resolve_source
    from prunekit.methods.patterns import parse_pattern, resolve_sparsity
    from prunekit.models.loading import load_model, resolve_device
    from prunekit.reports.report import new_report
    from prunekit.utils import Timer, check_output_dir, peak_rss_mb

    # Validate everything cheap before loading a model.
    resolve_sparsity(args.sparsity, parse_pattern(args.pattern))
    check_output_dir(args.output, args.force)
    device = resolve_device(args.device)
    if args.method != "magnitude":
        resolve_source(args.calib, "calib")
    ppl_sets = split_list(args.eval_ppl)
    for data in ppl_sets:
        resolve_source(data, "eval")

    timer = Timer()
    report = new_report()
    with timer("load"):
        lm = load_model(args.model, args.dtype, args.trust_remote_code)
    report["model"] = lm.info

    def ppl_all() -> dict:
        return {
            d: api.perplexity(
                lm.model,
                lm.tokenizer,
                d,
                args.ppl_seq_len,
                args.ppl_tokens,
                args.ppl_batch_size,
                device,
            )
            for d in ppl_sets
        }

    if ppl_sets:
        if device.type != "cpu":
            lm.model.to(device)
        with timer("eval_before"):
            report["evaluation_before"] = {"perplexity": ppl_all()}
        lm.model.to("cpu")
    result = api.prune(
        lm.model,
        lm.tokenizer,
        method=args.method,
        sparsity=args.sparsity,
        pattern=args.pattern,
        calib=args.calib,
        calib_samples=args.calib_samples,
        seq_len=args.seq_len,
        seed=args.seed,
        batch_size=args.batch_size,
        device=device,
    )
    timer.stages.update(result.report.pop("timings_s"))
    report.update(result.report)
    if ppl_sets:
        if device.type != "cpu":
            lm.model.to(device)
        with timer("eval_after"):
            report["evaluation"] = {"perplexity": ppl_all()}
        lm.model.to("cpu")
    report["timings_s"] = timer.stages
    report["peak_rss_mb"] = peak_rss_mb()
    result.report = report
    with timer("save"):
        api.save(result, args.output, force=args.force)
    _summary(report, args.output)
    return 0


def _summary(report: dict, out: Path) -> None:
    from prunekit.cli.common import print_table

    sp = report["sparsity"]
    rows = [
        ["target sparsity", f"{sp['target']:.4f}"],
        ["achieved sparsity", f"{sp['achieved']:.4f}"],
        [
            "params (total / non-zero)",
            f"{report['params']['total']:,} / {report['params']['nonzero']:,}",
        ],
    ]
    for d, r in report.get("evaluation", {}).get("perplexity", {}).items():
        before = report.get("evaluation_before", {}).get("perplexity", {}).get(d, {}).get("ppl")
        rows.append([f"ppl {d} (before → after)", f"{before:.3f} → {r['ppl']:.3f}"])
    rows += [[f"time {k} (s)", f"{v:.1f}"] for k, v in report["timings_s"].items()]
    rows.append(["peak RSS (MiB)", f"{report['peak_rss_mb']:.0f}"])
    rows.append(["output", str(out)])
    print_table(["", "value"], rows)
