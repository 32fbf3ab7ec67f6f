"""`prunekit structured MODEL ...`: remove attention head groups and MLP channels with per-block ratios."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from prunekit.cli.common import (
    PPL_MINIMUMS,
    add_config_args,
    add_model_args,
    add_ppl_args,
    calib_kwargs,
    check_at_least,
    prune_and_save,
    split_list,
)

HELP = {
    "heads": "fraction of the attention head-group parameters removed (whole GQA groups), 0 ≤ f < 1",
    "ffn": "fraction of the MLP channel parameters removed, 0 ≤ f < 1",
    "target": "instead of --heads/--ffn: fraction of all non-embedding parameters removed",
    "importance": "group score: fused (vector + element Taylor, uncertainty-weighted) or one of them",
    "ratios": "per-block ratios: adaptive (spread of scores), uniform, or skip (first/last blocks kept)",
    "skip_first": "ratios skip: blocks left whole at the start",
    "skip_last": "ratios skip: blocks left whole at the end",
    "max_ratio": "most of any block's groups that may go",
    "multiple": "channels go in whole multiples of this (e.g. 64 for kernel-friendly widths)",
    "min_channels": "MLP channels that stay in every block",
}


def register(sub) -> None:
    p = sub.add_parser(
        "structured",
        help="remove attention head groups and MLP channels (SAAP: per-block ratios)",
    )
    add_model_args(p)
    from prunekit.structural.importance import REGISTRY
    from prunekit.structural.ratios import RATIOS
    from prunekit.structural.saap import SaapConfig

    add_config_args(
        p,
        "structured pruning (the recipe step `structured:` takes the same keys)",
        SaapConfig,
        HELP,
        choices={"importance": list(REGISTRY), "ratios": list(RATIOS)},
        keep_defaults=True,
    )
    p.add_argument(
        "--calib", default="python", help="built-in corpus (python) or a file/folder/.jsonl"
    )
    p.add_argument("--calib-samples", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument(
        "--batch-size", type=int, default=8, help="calibration windows per backward pass"
    )
    p.add_argument("--seed", type=int, default=0)
    add_ppl_args(p, "--eval-ppl")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace):
    from prunekit.structural.saap import SaapConfig

    names = {f.name for f in dataclasses.fields(SaapConfig)}
    return SaapConfig(**{k: v for k, v in vars(args).items() if k in names}).validated()


def run(args: argparse.Namespace) -> int:
    from prunekit import api
    from prunekit.data.sources import resolve_source
    from prunekit.models.adapters import adapter_for
    from prunekit.models.loading import load_model, resolve_device
    from prunekit.reports.report import new_report
    from prunekit.structural.saap import check_budget
    from prunekit.utils import Timer, check_output_dir

    cfg = _config(args)
    check_at_least(args, calib_samples=1, seq_len=2, batch_size=1, **PPL_MINIMUMS)
    check_output_dir(args.output, args.force)
    device = resolve_device(args.device)
    resolve_source(args.calib, "calib")
    ppl_sets = split_list(args.eval_ppl)
    for data in ppl_sets:
        resolve_source(data, "eval")

    timer, report = Timer(), new_report()
    with timer("load"):
        lm = load_model(args.model, args.dtype, args.trust_remote_code)
    report["model"] = lm.info
    check_budget(lm.model, adapter_for(lm.model), cfg)  # before any scoring
    api.check_seq_len(lm.model, args.seq_len)
    report = prune_and_save(
        lm,
        ppl_sets,
        args,
        device,
        timer,
        report,
        lambda: api.structured(
            lm.model,
            lm.tokenizer,
            **calib_kwargs(args, device),
            **dataclasses.asdict(cfg),
        ),
    )
    _summary(report, args.output)
    return 0


def summary_rows(section: dict) -> list[list[str]]:
    """Table rows for a structured report section (CLI summary and recipe details)."""
    cfg = section["config"]
    rows = [["importance / ratios", f"{cfg['importance']} / {cfg['ratios']}"]]
    for name, k in section["kinds"].items():
        rows.append(
            [
                f"{name}: removed / target params",
                f"{k['removed_params']:,} / {k['target_params']:,}",
            ]
        )
        rows.append([f"{name}: groups per block", " ".join(map(str, k["groups_after"]))])
        sigma = k["importance"].get("sigma")
        if sigma:
            rows.append([f"{name}: σ", ", ".join(f"{m} {v:.4g}" for m, v in sigma.items())])
    b, a = section["params_before"], section["params_after"]
    rows.append(["params total", f"{b['total']:,} → {a['total']:,}"])
    rows.append(["params non-embedding", f"{b['non_embedding']:,} → {a['non_embedding']:,}"])
    return rows


def _summary(report: dict, out: Path) -> None:
    from prunekit.cli.common import print_table

    rows = summary_rows(report["structured"])
    for d, r in report.get("evaluation", {}).get("perplexity", {}).items():
        before = report["evaluation_before"]["perplexity"][d]["ppl"]
        rows.append([f"ppl {d} (before → after)", f"{before:.3f} → {r['ppl']:.3f}"])
    rows += [[f"time {k} (s)", f"{v:.1f}"] for k, v in report["timings_s"].items()]
    rows += [["peak RSS (MiB)", f"{report['peak_rss_mb']:.0f}"], ["output", str(out)]]
    print_table(["", "value"], rows)
