"""Issue 31, item 4: a candidate cannot fill the disk through its work directory (with
namespaces it is a tmpfs of the file-size limit; every file is capped by RLIMIT_FSIZE), and its
folder is removed whatever modes it left, chmod-000 folders included, as root and as uid 65534."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from prunekit.evaluation.sandbox import Limits, remove_tree, run_program, sandbox_identity

SRC = Path(__file__).resolve().parents[2] / "src"
NOBODY = 65534
WRITER = textwrap.dedent(
    """
    import os
    written = 0
    try:
        for i in range(64):
            with open("f" + str(i), "wb") as fh:
                fh.write(b"x" * (1 << 20))
            written += 1 << 20
    except OSError:
        pass
    assert written <= LIMIT, written
    """
)
LOCKER = textwrap.dedent(
    """
    import os
    os.makedirs("a/b/c")
    open("a/b/c/f", "w").write("x")
    os.chmod("a/b/c", 0)
    os.chmod("a/b", 0)
    os.chmod("a", 0o100)
    """
)


def test_many_files_cannot_fill_the_disk():
    if not sandbox_identity()["namespaces"]:
        pytest.skip("the tmpfs work directory needs the namespaces (RLIMIT_FSIZE caps each file)")
    limits = Limits(wall_s=10.0, cpu_s=5, file_mb=4)
    result = run_program(f"LIMIT = {4 << 20}\n" + WRITER, limits)
    assert result.passed, result


def test_chmod_000_folders_are_removed(tmp_path):
    (tmp_path / "box" / "a" / "b").mkdir(parents=True)
    (tmp_path / "box" / "a" / "b" / "f").write_text("x")
    os.chmod(tmp_path / "box" / "a" / "b", 0)
    os.chmod(tmp_path / "box" / "a", 0)
    remove_tree(tmp_path / "box")
    assert not (tmp_path / "box").exists()


def test_nothing_is_left_as_root(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = run_program(LOCKER, Limits(wall_s=10.0, cpu_s=5))
    assert result.passed, result
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("namespaces", [True, False])
def test_nothing_is_left_as_an_unprivileged_user(namespaces):
    """Non-root, the owner of a chmod-000 folder cannot list it until it makes it searchable."""
    python3 = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or shutil.which("setpriv") is None or python3 is None:
        pytest.skip("needs root, setpriv and a system python3 to become uid 65534")
    scratch = Path(tempfile.mkdtemp(prefix="prunekit-nobody-"))  # pytest's are root-only
    os.chown(scratch, NOBODY, NOBODY)
    try:
        _run_as_nobody(python3, scratch, namespaces)
    finally:
        remove_tree(scratch)


def _run_as_nobody(python3: str, scratch: Path, namespaces: bool) -> None:
    code = textwrap.dedent(
        f"""
        import json, sys, tempfile
        sys.path.insert(0, {str(SRC)!r})
        tempfile.tempdir = {str(scratch)!r}
        from prunekit.evaluation import sandbox
        from prunekit.evaluation.sandbox import Limits, run_program, sandbox_identity
        if not {namespaces!r}:  # as on a host without them: the work dir is on the host's disk
            sandbox._namespace_prefix = lambda: ()
        r = run_program({LOCKER!r}, Limits(wall_s=10.0, cpu_s=5))
        print(json.dumps({{"passed": r.passed, "detail": r.detail, "uid": sandbox_identity()["uid"]}}))
        """
    )
    out = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            python3,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
    )
    if out.returncode != 0 and "Permission denied" in out.stderr and str(SRC) in out.stderr:
        pytest.skip(f"uid {NOBODY} cannot read {SRC} (checkout not world-readable)")
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["passed"] and got["uid"] == NOBODY, got
    assert os.listdir(scratch) == []
