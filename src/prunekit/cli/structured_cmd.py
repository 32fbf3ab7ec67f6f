"""`prunekit structured MODEL ...`: remove attention head groups and MLP channels with per-block ratios."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from prunekit.cli.common import (
    PPL_MINIMUMS,
    add_calib_args,
    add_config_args,
    add_model_args,
    add_output_args,
    add_ppl_args,
    calib_kwargs,
    check_at_least,
    check_model_args,
    config_from_args,
    held_out_sets,
    ppl_rows,
    print_summary,
    prune_and_save,
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
    "refit": "re-solve the kept columns of o_proj / down_proj by least squares so each pruned "
    "block's output tracks the dense one on the calibration data (no training)",
    "refit_damp": "refit ridge, relative to the mean diagonal of the kept inputs' XᵀX",
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
    add_calib_args(p, "calibration windows per backward pass")
    add_ppl_args(p, "--eval-ppl")
    add_output_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prunekit import api
    from prunekit.calibration.sets import check_spec
    from prunekit.models.adapters import adapter_for
    from prunekit.models.loading import LoadedModel, resolve_device
    from prunekit.structural.saap import SaapConfig, check_budget
    from prunekit.utils import check_output_dir

    check_model_args(args)
    cfg = config_from_args(args, SaapConfig)
    calib = calib_kwargs(args)
    check_at_least(args, **PPL_MINIMUMS)
    check_output_dir(args.output, args.force, inputs=[args.model])
    device = resolve_device(args.device)
    check_spec(calib["calib"])
    ppl_sets = held_out_sets(args.eval_ppl)

    def check(lm: LoadedModel) -> None:  # before any scoring
        check_budget(lm.model, adapter_for(lm.model), cfg)
        api.check_seq_len(lm.model, calib["seq_len"])

    def prune(model, tokenizer):
        return api.structured(model, tokenizer, **calib, device=device, **dataclasses.asdict(cfg))

    report = prune_and_save(args, device, ppl_sets, prune, check)
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
    print_summary(summary_rows(report["structured"]) + ppl_rows(report), report, out)
