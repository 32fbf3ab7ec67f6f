"""`prunekit prune MODEL ...`: one-shot pruning with any registered method, exported with a report.

The flags are `PruneConfig`'s fields (the recipe's `unstructured` step takes the same keys), plus
one `--NAME-FIELD` flag per option of each registered allocation and method.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prunekit.allocation.options import ALLOCATIONS
from prunekit.cli.common import (
    PPL_MINIMUMS,
    add_calib_args,
    add_model_args,
    add_output_args,
    add_ppl_args,
    check_at_least,
    check_model_args,
    held_out_sets,
    ppl_rows,
    print_summary,
    prune_and_save,
)
from prunekit.config import OptionError, Surface
from prunekit.config.cli import add_flags, given
from prunekit.config.prune import PruneConfig
from prunekit.errors import PrunekitError
from prunekit.methods.pruners import PRUNERS


def register(sub) -> None:
    p = sub.add_parser(
        "prune", help="prune a model and export a standard checkpoint with report.json"
    )
    add_model_args(p)
    add_flags(p, PruneConfig, ("method", "sparsity", "pattern"))
    add_calib_args(p, "calibration windows per forward pass")
    forwards = p.add_argument_group("calibration forwards (recorded in report.json)")
    add_flags(forwards, PruneConfig, ("forward_dtype", "stream"))
    alloc = p.add_argument_group("allocation (how many weights each block and row loses)")
    add_flags(alloc, PruneConfig, ("allocation",), helps={"allocation": None})
    for schema in ALLOCATIONS.values():
        add_flags(alloc, schema)
    methods = p.add_argument_group("method options (--NAME-*: only with --method NAME)")
    for schema in PRUNERS.values():
        add_flags(methods, schema)
    add_ppl_args(p, "--eval-ppl")
    add_output_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prunekit import api
    from prunekit.calibration.sets import check_spec
    from prunekit.models.loading import resolve_device
    from prunekit.utils import check_output_dir

    # Validate everything cheap before loading a model.
    check_model_args(args)
    cfg = config_from_args(args)
    check_at_least(args, **PPL_MINIMUMS)
    check_output_dir(args.output, args.force, inputs=[args.model])
    device = resolve_device(args.device)
    if cfg.pruner().needs or cfg.allocation != "uniform":
        check_spec(cfg.calib)
    ppl_sets = held_out_sets(args.eval_ppl)
    report = prune_and_save(
        args, device, ppl_sets, lambda m, t: api.prune(m, t, cfg, device=device)
    )
    _summary(report, args.output)
    return 0


def config_from_args(args: argparse.Namespace) -> PruneConfig:
    """The flags as one validated PruneConfig; a method's or allocation's own flags need it
    chosen (`--owl-* flags need --allocation owl`)."""
    values = given(args, PruneConfig)
    for kind, registry in (("allocation", ALLOCATIONS), ("method", PRUNERS)):
        chosen = values.get(kind, PruneConfig.model_fields[kind].default)
        for name, schema in registry.items():
            flags = given(args, schema)
            if flags and name != chosen:
                raise PrunekitError(f"--{name}-* flags need --{kind} {name}")
            if flags:
                values[f"{kind}_options"] = {
                    schema.spell(f, Surface.RECIPE): v for f, v in flags.items()
                }
    try:
        return PruneConfig.check(values)
    except OptionError as exc:
        raise PrunekitError(exc.render(Surface.CLI)) from None


def _summary(report: dict, out: Path) -> None:
    sp = report["sparsity"]
    rows = [
        ["target sparsity", f"{sp['target']:.4f}"],
        ["achieved sparsity", f"{sp['achieved']:.4f}"],
        [
            "params (total / non-zero)",
            f"{report['params']['total']:,} / {report['params']['nonzero']:,}",
        ],
    ] + ppl_rows(report)
    if report.get("allocation"):
        from prunekit.reports.allocation_plots import summary_rows

        rows += summary_rows(report["allocation"])
    print_summary(rows, report, out)
