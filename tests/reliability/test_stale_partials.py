"""Cleaning what killed runs left deletes only prunekit's own temporary folders: those that
hold its marker, whose maker is dead, and only once the next result is in place."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from prunekit.utils import (
    PARTIAL_MARKER,
    _make_temp_dir,
    atomic_output_dir,
    check_output_dir,
    remove_stale_partials,
)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _stale(path: Path, kind: str = "partial") -> Path:
    """A marked temporary folder as a run killed mid-save leaves it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = _make_temp_dir(path, kind)
    marker = folder / PARTIAL_MARKER
    mark = json.loads(marker.read_text())
    marker.write_text(json.dumps({**mark, "pid": _dead_pid()}))
    return folder


def _save(path: Path) -> None:
    with atomic_output_dir(path, force=True) as tmp:
        (tmp / "model.safetensors").write_bytes(b"weights")


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_user_folder_named_like_a_partial_survives(tmp_path):
    """No marker, no deletion, whatever the name and however dead the pid in it."""
    mine = tmp_path / f".out.partial-{_dead_pid()}-abc"
    (mine / "notes").mkdir(parents=True)
    old = tmp_path / f".out.old-{_dead_pid()}"
    old.mkdir()
    _save(tmp_path / "out")
    assert (mine / "notes").is_dir() and old.is_dir()


def test_a_marker_copied_elsewhere_does_not_count(tmp_path):
    """The marker names its own folder: a copy under another name is not prunekit's."""
    real = _stale(tmp_path / "out")
    copy = tmp_path / f".out.partial-{_dead_pid()}-copy"
    copy.mkdir()
    (copy / PARTIAL_MARKER).write_text((real / PARTIAL_MARKER).read_text())
    _save(tmp_path / "out")
    assert not real.exists() and copy.is_dir()


def test_glob_characters_in_the_output_name_do_not_widen(tmp_path):
    """`-o 'runs/[ab]'` touches only `.[ab].*` folders, not those of outputs `a` and `b`."""
    runs = tmp_path / "runs"
    others = [_stale(runs / "a"), _stale(runs / "b")]
    user = runs / ".a.partial-1-x"
    user.mkdir()
    own = _stale(runs / "[ab]")
    _save(runs / "[ab]")
    assert all(p.is_dir() for p in [*others, user]) and not own.exists()
    assert (runs / "[ab]" / "model.safetensors").is_file()


def test_a_stale_partial_goes_only_after_a_successful_save(tmp_path):
    out = tmp_path / "out"
    stale = _stale(out)
    check_output_dir(out, force=False)
    with pytest.raises(RuntimeError), atomic_output_dir(out):
        raise RuntimeError("this run fails too")
    assert stale.is_dir()
    _save(out)
    assert _names(tmp_path) == ["out"]
    assert _names(out) == ["model.safetensors"]  # the marker never reaches the result


def test_a_live_runs_partial_is_kept(tmp_path):
    out = tmp_path / "out"
    folder = _make_temp_dir(out, "partial")  # made by this (live) process
    assert remove_stale_partials(out) == []
    assert folder.is_dir()


def test_an_output_set_aside_by_a_killed_run_is_restored(tmp_path):
    """Killed between setting the old output aside and renaming the new one in: the old one
    is the only copy, so it comes back instead of being deleted."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"previous")
    holder = _stale(out, "old")
    out.rename(holder / "previous")
    with pytest.raises(Exception, match="already exists"):
        check_output_dir(out, force=False)
    assert (out / "model.safetensors").read_bytes() == b"previous"
    _save(out)
    assert _names(tmp_path) == ["out"]
    assert (out / "model.safetensors").read_bytes() == b"weights"


def test_replacing_with_force_leaves_nothing_beside(tmp_path):
    out = tmp_path / "out"
    _save(out)
    _save(out)
    assert _names(tmp_path) == ["out"] and _names(out) == ["model.safetensors"]
