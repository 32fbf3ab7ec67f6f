"""Registry of built-in corpora. Each is a list of source files split by file into calibration
and held-out evaluation parts, deterministically (a hash of the file's relative path).

Adding a language is a few lines: a `Corpus` with a `find` function returning (root, files).
"""

from __future__ import annotations

import hashlib
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prunekit.data.corpus_sources import (
    cpp_sources,
    install_hint,
    java_sources,
    javascript_sources,
    text_sources,
)
from prunekit.errors import PrunekitError

EVAL_SHARE = 10  # one file in EVAL_SHARE goes to the held-out split


@dataclass(frozen=True)
class Corpus:
    """A built-in corpus: where its files are, what it is, its licence, how to install it."""

    name: str
    description: str
    licence: str
    find: Callable[[], tuple[Path, list[Path]]]
    install_hint: str = ""

    def files(self, split: str) -> list[Path]:
        """Files of `split` ('calib' or 'eval'), sorted by relative path."""
        root, files = self.find()
        if not files:
            hint = f"; install it with: {self.install_hint}" if self.install_hint else ""
            raise PrunekitError(f"corpus '{self.name}' has no files on this machine{hint}")
        chosen = [f for f in files if (split == "eval") == is_eval_file(f.relative_to(root))]
        return sorted(chosen, key=lambda p: p.relative_to(root).as_posix())


def is_eval_file(relative: Path) -> bool:
    """Deterministic by-file split: the same files are held out on every machine."""
    digest = hashlib.sha1(relative.as_posix().encode()).hexdigest()
    return int(digest[:8], 16) % EVAL_SHARE == 0


def _python_stdlib() -> tuple[Path, list[Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "__pycache__", "idle_test"}
    files = [
        p
        for p in root.rglob("*.py")
        if not skip.intersection(p.relative_to(root).parts) and p.is_file()
    ]
    return root, files


CORPORA: dict[str, Corpus] = {}


def register(corpus: Corpus) -> Corpus:
    CORPORA[corpus.name] = corpus
    return corpus


register(
    Corpus(
        name="python",
        description="CPython standard library sources of the running interpreter (tests excluded)",
        licence="PSF License 2.0",
        find=_python_stdlib,
    )
)

register(
    Corpus(
        name="java",
        description="OpenJDK 17 class library, java.* modules (Debian openjdk-17-source src.zip; "
        "licence headers removed)",
        licence="GPL-2.0 with the Classpath Exception",
        find=java_sources,
        install_hint=install_hint("java"),
    )
)
register(
    Corpus(
        name="cpp",
        description="GNU libstdc++ headers of the newest installed GCC (/usr/include/c++/N; "
        "licence headers removed)",
        licence="GPL-3.0 with the GCC Runtime Library Exception",
        find=cpp_sources,
        install_hint=install_hint("cpp"),
    )
)
register(
    Corpus(
        name="javascript",
        description="hand-written .js of npm lodash@4, express@4, eslint@8, acorn@8 and their "
        "dependencies (no bundles, minified files or tests)",
        licence="MIT (lodash, express, eslint, acorn); dependencies MIT/ISC/BSD/Apache-2.0 (see each package.json)",
        find=javascript_sources,
        install_hint=install_hint("javascript"),
    )
)
register(
    Corpus(
        name="text",
        description="English prose: Jane Austen's six novels, one file per chapter (Debian "
        "r-cran-janeaustenr data, Project Gutenberg texts)",
        licence="public domain (novels); janeaustenr package MIT",
        find=text_sources,
        install_hint=install_hint("text"),
    )
)


def get_corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise PrunekitError(
            f"unknown corpus '{name}'; built-in corpora: {', '.join(sorted(CORPORA))}, "
            "or pass a path to a file, folder or .jsonl"
        )
    return CORPORA[name]
