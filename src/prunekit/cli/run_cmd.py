"""`prunekit run RECIPE.yaml`: run a recipe of ordered steps and export a standard checkpoint + report."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run a YAML recipe (vocabulary, depth, width, unstructured steps)"
    )
    p.add_argument("recipe", type=Path, help="recipe file, e.g. recipes/seed_structural.yaml")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="output folder (overrides the recipe's output)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--device", default=None, help="override the recipe's device (cpu, cuda, auto)")
    p.add_argument("--check", action="store_true", help="only validate the recipe, load nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prunekit.errors import PrunekitError
    from prunekit.recipes.runner import precheck, run_recipe
    from prunekit.recipes.schema import load_recipe
    from prunekit.utils import check_output_dir

    recipe = load_recipe(args.recipe)
    if args.device:
        recipe.device = args.device
    out = args.output or (Path(recipe.output) if recipe.output else None)
    if out is None:
        raise PrunekitError("no output folder: pass -o OUT or set 'output:' in the recipe")
    check_output_dir(out, args.force, inputs=[recipe.model])
    precheck(recipe)
    if args.check:
        print(f"recipe {args.recipe} is valid: {' → '.join(s.name for s in recipe.steps)}")
        return 0
    report = run_recipe(recipe, out, args.force)
    _summary(report, out)
    return 0


def _summary(report: dict, out: Path) -> None:
    from prunekit.cli.common import print_summary

    rows = [["parameters before", f"{report['params_before']['total']:,}"]]
    for s in report["steps"]:
        rows.append([f"after {s['step']}", f"{s['params_after']['total']:,}"])
    for d, r in report.get("evaluation", {}).get("perplexity", {}).items():
        before = report.get("evaluation_before", {}).get("perplexity", {}).get(d, {}).get("ppl")
        rows.append(
            [
                f"ppl {d}" + (" (before → after)" if before else ""),
                (f"{before:.3f} → " if before else "") + f"{r['ppl']:.3f}",
            ]
        )
    for f in report.get("export", {}).get("gguf", {}).get("files", []):
        rows.append([f"gguf {f['quant']}", f"{f['file']} ({f['bytes'] / 2**20:.1f} MiB)"])
    print_summary(rows, report, out)
