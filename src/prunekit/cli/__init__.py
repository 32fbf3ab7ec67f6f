"""`prunekit` command line: one module per sub-command, each with `register(subparsers)`."""

from __future__ import annotations

import argparse
import sys

from prunekit.errors import PrunekitError

COMMANDS = (
    "models_cmd",
    "install_cmd",
    "prune_cmd",
    "structured_cmd",
    "run_cmd",
    "eval_cmd",
    "compare_cmd",
    "submodels_cmd",
    "recover_cmd",
    "search_cmd",
    "export_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="prunekit", description="Prune code LLMs and measure what each cut costs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"prunekit.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"prunekit.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PrunekitError as exc:
        print(f"prunekit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prunekit: interrupted; no output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
