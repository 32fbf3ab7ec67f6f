"""Run a benchmark's reference solutions through the sandbox: every one should pass.

    python -m prunekit.evaluation.canonical humaneval-x [--limit K] [--workers N]

Prints, per benchmark, how many canonical solutions passed and each failure with its reason;
exit status 1 if any failed. A check of the data, the program assembly and the toolchains.
"""

from __future__ import annotations

import argparse
import json
import sys

from prunekit.evaluation.benchmarks import expand, get_benchmark


def canonical_results(name: str, limit: int | None = None, workers: int | None = None) -> list:
    """(task_id, ExecResult) for each canonical solution of benchmark `name`."""
    from prunekit.evaluation.sandbox import run_many

    bench = get_benchmark(name)
    bench.preflight()
    problems = bench.load(limit)
    checks = [bench.check(p, p.canonical_solution, "completion") for p in problems]
    results = run_many(checks, workers=workers)
    return [(p.task_id, r) for p, r in zip(problems, results)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmarks", nargs="+", help="e.g. humaneval-x or humaneval-x:java")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="one JSON summary line per benchmark")
    args = parser.parse_args(argv)
    failed_any = False
    for name in expand(args.benchmarks):
        results = canonical_results(name, args.limit, args.workers)
        failed = [(t, r) for t, r in results if not r.passed]
        failed_any |= bool(failed)
        summary = {
            "benchmark": name,
            "passed": len(results) - len(failed),
            "total": len(results),
            "failed": {t: f"{r.error}: {r.detail}" for t, r in failed},
        }
        if args.json:
            print(json.dumps(summary), flush=True)
        else:
            print(f"{name}: {summary['passed']}/{summary['total']} canonical solutions pass")
            for task, why in summary["failed"].items():
                print(f"  {task}: {why}")
            sys.stdout.flush()
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
