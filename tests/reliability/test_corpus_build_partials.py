"""A corpus cache build killed half-way (SIGKILL) leaves a marked `.NAME.partial-*` folder that
the next build removes; an unmarked folder of the same name shape is never touched (issue 31,
items 3 and 6's loose end in data/corpus_sources.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from prunekit.utils import PARTIAL_MARKER

KILLED_BUILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from prunekit.data.corpus_sources import _prepared

    def build(out: Path) -> None:
        (out / "a.java").write_text("class A {}")
        os.kill(os.getpid(), signal.SIGKILL)

    _prepared("java", Path(sys.argv[1]), build)
    """
)


def test_a_killed_build_is_cleaned_by_the_next(tmp_path, monkeypatch):
    from prunekit.data.corpus_sources import _prepared

    home = tmp_path / "home"
    source = tmp_path / "src.zip"
    source.write_bytes(b"zip")
    env = {**os.environ, "PRUNEKIT_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(source)], env=env)
    assert proc.returncode == -signal.SIGKILL
    corpora = home / "corpora"
    [left] = [p for p in corpora.iterdir() if p.name.startswith(".java.partial-")]
    assert (left / PARTIAL_MARKER).is_file()
    mine = corpora / ".java.partial-users-own"  # same shape, no marker: not prunekit's
    mine.mkdir()

    monkeypatch.setenv("PRUNEKIT_HOME", str(home))
    root = _prepared("java", source, lambda out: (out / "b.java").write_text("class B {}"))
    assert sorted(p.name for p in corpora.iterdir()) == [".java.partial-users-own", "java"]
    assert sorted(p.name for p in root.iterdir()) == [".prunekit-corpus.json", "b.java"]
