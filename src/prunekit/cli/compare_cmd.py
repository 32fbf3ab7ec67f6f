"""`prunekit compare DIR1 DIR2 ...`: one side-by-side table of run reports and a PNG plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from prunekit.errors import PrunekitError


def register(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="compare run reports side by side (perplexity, pass@1, speed, memory, size); "
        "reports with several code benchmarks also get a pooled pass@1 and a paired test",
    )
    p.add_argument("runs", nargs="+", help="run folders holding report.json (or report files)")
    p.add_argument(
        "--plot",
        type=Path,
        default=Path("prunekit-compare.png"),
        help="PNG plot of quality vs size and speed (default: prunekit-compare.png)",
    )
    p.add_argument("--no-plot", action="store_true", help="do not write the plot")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table as Markdown")
    p.set_defaults(func=run)


def _check_content(entry, table, problem_diffs) -> None:
    """Tabulate one report alone first, so unexpected content names its file in one line."""
    from prunekit.reports.compare import check_numbers, pooled_tests

    try:
        check_numbers(entry.report)
        table([entry])
        problem_diffs([entry, entry])
        pooled_tests([entry, entry])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise PrunekitError(
            f"'{entry.path}' has content a prunekit report does not ({type(exc).__name__}: "
            f"{exc}); compare reports written by prunekit, or fix the file"
        ) from None


def run(args: argparse.Namespace) -> int:
    from prunekit.reports.compare import (
        load_entry,
        plot,
        pooled_tests,
        problem_diffs,
        render_markdown,
        render_pooled,
        render_text,
        table,
    )
    from prunekit.utils import check_output_file

    if not args.no_plot:
        check_output_file(args.plot, "--plot")
    if args.markdown is not None:
        check_output_file(args.markdown, "--markdown")
    entries = [load_entry(r) for r in args.runs]
    for entry in entries:
        _check_content(entry, table, problem_diffs)
    headers, rows = table(entries)
    print(render_text(headers, rows))
    diffs = problem_diffs(entries)
    for d in diffs:
        print(
            f"HumanEval vs {d['against']}: {d['run']} lost {len(d['lost'])}, gained "
            f"{len(d['gained'])} of {d['common']} common problems ({d['both_pass']} pass in both)"
        )
    pooled = pooled_tests(entries)
    for t in pooled:
        print(render_pooled(t))
    if args.markdown:
        text = render_markdown(headers, rows) + "\n"
        text += "".join(f"\n{render_pooled(t)}.\n" for t in pooled)
        for d in diffs:
            text += (
                f"\nHumanEval vs {d['against']}: {d['run']} lost {len(d['lost'])} "
                f"({', '.join(d['lost']) or 'none'}), gained {len(d['gained'])} "
                f"({', '.join(d['gained']) or 'none'}).\n"
            )
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
        print(f"table: {args.markdown}")
    if not args.no_plot:
        print(f"plot: {plot(entries, args.plot)}")
    return 0
