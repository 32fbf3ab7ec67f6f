"""`prunekit structured MODEL ...`: remove attention head groups and MLP channels with per-block ratios."""

from __future__ import annotations

import argparse
from pathlib import Path

from prunekit.cli.common import (
    PPL_MINIMUMS,
    add_calib_args,
    add_model_args,
    add_output_args,
    add_ppl_args,
    check_at_least,
    check_model_args,
    cli_check,
    held_out_sets,
    ppl_rows,
    print_summary,
    prune_and_save,
)


def register(sub) -> None:
    from prunekit.config.cli import add_flags
    from prunekit.config.structured import SaapConfig

    p = sub.add_parser(
        "structured",
        help="remove attention head groups and MLP channels (SAAP: per-block ratios)",
    )
    add_model_args(p)
    group = p.add_argument_group(
        "structured pruning (the recipe step `structured:` takes the same keys)"
    )
    add_flags(group, SaapConfig, keep_defaults=True)
    add_calib_args(p, "calibration windows per backward pass")
    add_ppl_args(p, "--eval-ppl")
    add_output_args(p)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """The `StructuredConfig` of the flags (SAAP's and the calibration's), validated as the
    recipe step is; a problem is one line naming the flag."""
    from prunekit.config.calibration import CalibrationOptions
    from prunekit.config.cli import given
    from prunekit.config.structured import SaapConfig, StructuredConfig

    return cli_check(StructuredConfig, given(args, SaapConfig) | given(args, CalibrationOptions))


def run(args: argparse.Namespace) -> int:
    from prunekit import api
    from prunekit.calibration.sets import check_spec
    from prunekit.models.adapters import adapter_for
    from prunekit.models.loading import LoadedModel, resolve_device
    from prunekit.structural.saap import check_budget
    from prunekit.utils import check_output_dir

    check_model_args(args)
    cfg = config_from_args(args)
    check_at_least(args, **PPL_MINIMUMS)
    check_output_dir(args.output, args.force, inputs=[args.model])
    device = resolve_device(args.device)
    check_spec(cfg.calib)
    ppl_sets = held_out_sets(args.eval_ppl)

    def check(lm: LoadedModel) -> None:  # before any scoring
        check_budget(lm.model, adapter_for(lm.model), cfg)
        api.check_seq_len(lm.model, cfg.seq_len)

    def prune(model, tokenizer):
        return api.structured(model, tokenizer, cfg, device=device)

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
