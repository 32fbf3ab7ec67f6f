"""`prunekit prune MODEL ...`: one-shot pruning with any registered method, exported with a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from prunekit.allocation.build import OPTIONS as ALLOCATIONS
from prunekit.allocation.neuroal import DENSE_REFERENCES, GRIDS
from prunekit.cli.common import (
    CALIB_MINIMUMS,
    PPL_MINIMUMS,
    add_calib_args,
    add_model_args,
    add_output_args,
    add_ppl_args,
    check_at_least,
    held_out_sets,
    ppl_rows,
    print_summary,
    prune_and_save,
)
from prunekit.methods.oneshot import STREAMS
from prunekit.methods.pruners import PRUNERS
from prunekit.models.loading import DTYPE_CHOICES


def register(sub) -> None:
    p = sub.add_parser(
        "prune", help="prune a model and export a standard checkpoint with report.json"
    )
    add_model_args(p)
    p.add_argument("--method", default="wanda", choices=list(PRUNERS))
    p.add_argument(
        "--sparsity", type=float, default=None, help="fraction of weights to zero, 0 ≤ S < 1"
    )
    p.add_argument("--pattern", default="unstructured", help="unstructured, 2:4 or 4:8")
    add_calib_args(p, "calibration windows per forward pass")
    _add_forward_args(p)
    _add_allocation_args(p)
    add_ppl_args(p, "--eval-ppl")
    add_output_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prunekit import api
    from prunekit.calibration.sets import check_neuroal, check_spec
    from prunekit.methods.patterns import parse_pattern, resolve_sparsity
    from prunekit.models.loading import resolve_device
    from prunekit.utils import check_output_dir

    # Validate everything cheap before loading a model.
    resolve_sparsity(args.sparsity, parse_pattern(args.pattern))
    check_at_least(args, **CALIB_MINIMUMS, **PPL_MINIMUMS)
    alloc_options = _allocation_options(args)
    check_output_dir(args.output, args.force, inputs=[args.model])
    device = resolve_device(args.device)
    if args.method != "magnitude" or args.allocation != "uniform":
        check_spec(args.calib)
        check_neuroal(args.allocation, args.calib)
    ppl_sets = held_out_sets(args.eval_ppl)
    options = {
        "method": args.method,
        "sparsity": args.sparsity,
        "pattern": args.pattern,
        "allocation": args.allocation,
        "allocation_options": alloc_options,
        "forward_dtype": args.forward_dtype,
        "stream": args.stream,
    }
    report = prune_and_save(args, device, ppl_sets, api.prune, options)
    _summary(report, args.output)
    return 0


def _add_forward_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("calibration forwards (recorded in report.json)")
    g.add_argument(
        "--forward-dtype",
        default=None,
        choices=DTYPE_CHOICES,
        help="autocast the calibration forwards to this dtype (weights and statistics keep "
        "theirs); default: the model's dtype; auto = bfloat16 where the device has it, else float32",
    )
    g.add_argument(
        "--stream",
        default="pruned",
        choices=STREAMS,
        help="statistics on the stream of the blocks already pruned (default, the published "
        "sequential method) or of the dense model (dense: one forward per block; not the "
        "published sequential method)",
    )


def _add_allocation_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("allocation (how many weights each block and row loses)")
    g.add_argument("--allocation", default="uniform", choices=list(ALLOCATIONS))
    g.add_argument("--owl-m", type=float, default=None, help="OWL outlier threshold M (default 5)")
    g.add_argument("--owl-lambda", type=float, default=None, help="OWL spread λ (default 0.08)")
    g.add_argument(
        "--neuroal-samples", type=int, default=None, help="NeuroAL search windows (default 8)"
    )
    g.add_argument(
        "--neuroal-search-method",
        default=None,
        choices=list(PRUNERS),
        help="scorer used inside the search (default: the method, or its declared cheaper "
        "stand-in: wanda for sparsegpt)",
    )
    g.add_argument(
        "--neuroal-grid",
        default=None,
        choices=list(GRIDS),
        help="λ candidates: full = the published grids (28 searched), coarse = 8 of them "
        "(about 1/3.5 of the search time)",
    )
    g.add_argument("--neuroal-no-row-step", action="store_true", help="block step only")
    g.add_argument(
        "--neuroal-exact-masks",
        action="store_true",
        help="re-score every search candidate on its own stream (slower; default: score once)",
    )
    g.add_argument(
        "--neuroal-dense-reference",
        default=None,
        choices=DENSE_REFERENCES,
        help="dense outputs the search aligns to: stream = the dense block on each candidate's "
        "own stream (default, two passes per block per candidate), cached = the dense model's "
        "stream, taken once (one pass; measured: picks steeper ramps, much worse ppl)",
    )
    g.add_argument(
        "--neuroal-exhaustive",
        action="store_true",
        help="finish every candidate (default: stop one once it cannot beat the best)",
    )


def _allocation_options(args: argparse.Namespace) -> dict:
    """Allocation options from the flags, validated before any model is loaded."""
    from prunekit.allocation.build import check_allocation
    from prunekit.errors import PrunekitError
    from prunekit.methods.patterns import parse_pattern

    given = {
        "owl": {"m": args.owl_m, "lambda": args.owl_lambda},
        "neuroal": {
            "samples": args.neuroal_samples,
            "search_method": args.neuroal_search_method,
            "grid": args.neuroal_grid,
            "row_step": False if args.neuroal_no_row_step else None,
            "bound": False if args.neuroal_exhaustive else None,
            "fast_masks": False if args.neuroal_exact_masks else None,
            "dense_reference": args.neuroal_dense_reference,
        },
    }
    for name, opts in given.items():
        used = [k for k, v in opts.items() if v is not None]
        if used and name != args.allocation:
            raise PrunekitError(f"--{name}-* flags need --allocation {name}")
    opts = {k: v for k, v in given.get(args.allocation, {}).items() if v is not None}
    check_allocation(args.allocation, opts, parse_pattern(args.pattern))
    return opts


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
