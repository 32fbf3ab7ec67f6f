"""Argument helpers shared by sub-commands."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prunekit.errors import PrunekitError

if TYPE_CHECKING:
    from torch import nn

    from prunekit.api import PruneResult
    from prunekit.models.loading import LoadedModel
    from prunekit.utils import Timer


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """MODEL and --dtype/--device/--trust-remote-code: `LoadOptions`' fields (a recipe's top level
    takes the same keys); `check_model_args` validates them."""
    from prunekit.config.cli import add_flags
    from prunekit.config.load import LoadOptions

    add_flags(parser, LoadOptions, keep_defaults=True)


def check_model_args(args: argparse.Namespace) -> None:
    """The model flags checked as a recipe's top level is, before anything loads."""
    from prunekit.config.cli import given
    from prunekit.config.load import LoadOptions

    cli_check(LoadOptions, given(args, LoadOptions))


def cli_check(config: type, values: dict):
    """`config.check(values)` with any problem spelled as flags, on one line."""
    from prunekit.config import OptionError, Surface

    try:
        return config.check(values)
    except OptionError as exc:
        raise PrunekitError(exc.render(Surface.CLI)) from None


def add_calib_args(parser: argparse.ArgumentParser, batch_help: str) -> None:
    """The calibration flags: `CalibrationOptions`' fields (a recipe's `calibration:` keys)."""
    from prunekit.config.calibration import CalibrationOptions
    from prunekit.config.cli import add_flags

    add_flags(parser, CalibrationOptions, helps={"batch_size": batch_help}, keep_defaults=True)


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")


def add_ppl_args(parser: argparse.ArgumentParser, flag: str = "--ppl") -> None:
    parser.add_argument(
        flag,
        default=None,
        help="comma-separated corpora or paths for held-out perplexity, e.g. python",
    )
    parser.add_argument("--ppl-seq-len", type=int, default=512, help="window length for perplexity")
    parser.add_argument(
        "--ppl-tokens", type=int, default=32768, help="max held-out tokens per corpus"
    )
    parser.add_argument("--ppl-batch-size", type=int, default=4)


def perplexities(lm, names: list[str], args: argparse.Namespace, device) -> dict:
    """Held-out perplexity on each named corpus/path, with the model on `device` meanwhile (a
    GGUF in llama.cpp has no device and stays where it is)."""
    from prunekit import api

    home = getattr(lm.model, "device", device)
    lm.model.to(device)
    try:
        return {
            name: api.perplexity(
                lm.model,
                lm.tokenizer,
                name,
                args.ppl_seq_len,
                args.ppl_tokens,
                args.ppl_batch_size,
                device,
            )
            for name in names
        }
    finally:
        lm.model.to(home)


def split_list(text: str | None) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else []


def held_out_sets(text: str | None) -> list[str]:
    """The comma-separated perplexity corpora/paths, each checked to resolve before any load."""
    from prunekit.data.sources import resolve_source

    names = split_list(text)
    for name in names:
        resolve_source(name, "eval")
    return names


def print_table(headers: list[str], rows: list[list]) -> None:
    """A plain aligned text table (stdout is for results, progress goes to stderr)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def ppl_rows(report: dict) -> list[list[str]]:
    """One `ppl CORPUS (before → after)` row per corpus the report measured after the change."""
    before = report.get("evaluation_before", {}).get("perplexity", {})
    return [
        [f"ppl {d} (before → after)", f"{before[d]['ppl']:.3f} → {r['ppl']:.3f}"]
        for d, r in report.get("evaluation", {}).get("perplexity", {}).items()
    ]


def calibration_rows(report: dict) -> list[list[str]]:
    """One row per calibration part: sequences and tokens it gave, HumanEval overlap dropped."""
    rows = []
    for p in report.get("calibration", {}).get("parts", []):
        removed = p.get("removed_humaneval_overlap")
        dropped = f", {removed} dropped for HumanEval overlap" if removed else ""
        rows.append(
            [
                f"calibration {p['source']}",
                f"{p['sequences']} of {p['share']} sequences, {p['tokens']:,} tokens{dropped}",
            ]
        )
    return rows


def print_summary(rows: list[list], report: dict, out: Path) -> None:
    """A command's closing table: `rows`, the calibration parts, then its stage timings, peak RSS
    and output folder."""
    rows = rows + calibration_rows(report)
    rows += [[f"time {k} (s)", f"{v:.1f}"] for k, v in report["timings_s"].items()]
    rows += [["peak RSS (MiB)", f"{report['peak_rss_mb']:.0f}"], ["output", str(out)]]
    print_table(["", "value"], rows)


def check_at_least(args: argparse.Namespace, **minimums: int) -> None:
    """Numeric options in range before any model loads: one line naming the flag and the bound."""
    for name, low in minimums.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise PrunekitError(
                f"--{name.replace('_', '-')} must be a whole number ≥ {low}, got {value}"
            )


PPL_MINIMUMS = {"ppl_seq_len": 2, "ppl_tokens": 1, "ppl_batch_size": 1}


def read_report(path: Path) -> dict:
    """An existing report.json as a dict, or one clear line on why it cannot be used."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PrunekitError(
            f"'{path}' is not a readable JSON report ({exc}); fix or remove it, or pass "
            "--report with another path"
        ) from None
    if not isinstance(report, dict):
        raise PrunekitError(f"'{path}' is not a prunekit report (expected a JSON object)")
    return report


def load_reported(args: argparse.Namespace) -> tuple[LoadedModel, Timer, dict]:
    """The model of `args` loaded (timed as `load`) with a new report that names it."""
    from prunekit.models.loading import load_model
    from prunekit.reports.report import new_report
    from prunekit.utils import Timer

    timer, report = Timer(), new_report()
    with timer("load"):
        lm = load_model(args.model, args.dtype, args.trust_remote_code)
    report["model"] = lm.info
    return lm, timer, report


def prune_and_save(
    args: argparse.Namespace,
    device,
    ppl_sets: list[str],
    prune: Callable[[nn.Module, object], PruneResult],
    check: Callable[[LoadedModel], None] | None = None,
) -> dict:
    """The pruning commands' body: load, `check(lm)` before any scoring, held-out perplexity around
    `prune(model, tokenizer)` (in place), report, atomic save."""
    from prunekit import api
    from prunekit.utils import peak_rss_mb

    lm, timer, report = load_reported(args)
    if check is not None:
        check(lm)
    if ppl_sets:
        with timer("eval_before"):
            report["evaluation_before"] = {"perplexity": perplexities(lm, ppl_sets, args, device)}
    result = prune(lm.model, lm.tokenizer)
    timer.stages.update(result.report.pop("timings_s"))
    report.update(result.report)
    if ppl_sets:
        with timer("eval_after"):
            report["evaluation"] = {"perplexity": perplexities(lm, ppl_sets, args, device)}
    report["timings_s"] = timer.stages
    report["peak_rss_mb"] = peak_rss_mb()
    result.report = report
    with timer("save"):
        api.save(result, args.output, force=args.force)
    return report
