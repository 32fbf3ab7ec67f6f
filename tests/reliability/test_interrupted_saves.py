"""Saving never leaves half a folder: interrupts, kills, a full disk and concurrent runs."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from prunekit.errors import PrunekitError
from prunekit.utils import atomic_output_dir, check_output_dir

# A child process that starts a save, says so, and waits to be signalled mid-save.
SAVER = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    from prunekit.utils import atomic_output_dir

    # as in a terminal: a job started in the background (CI under `cmd &`) inherits SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def save():
        with atomic_output_dir(Path(sys.argv[1])) as tmp:
            (tmp / "model.safetensors").write_bytes(b"x" * (1 << 20))
            print("saving", flush=True)
            time.sleep(60)

    try:
        save()
    except KeyboardInterrupt:
        print("prunekit: interrupted; no output was written", file=sys.stderr)
        sys.exit(130)
    """
)


def _start_saver(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout.readline().strip() == b"saving"
    return proc


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_during_save_leaves_nothing(tmp_path, sig):
    out = tmp_path / "out"
    proc = _start_saver(out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and b"interrupted" in err
    assert _leftovers(tmp_path) == []


def test_killed_mid_save_is_cleaned_by_the_next_run(tmp_path, capsys):
    """The partial is removed once the next run's result is in place, not before: a next run
    that fails deletes nothing."""
    out = tmp_path / "out"
    proc = _start_saver(out)
    proc.kill()
    proc.wait()
    [partial] = _leftovers(tmp_path)
    assert partial.startswith(".out.partial-")
    check_output_dir(out, force=False)  # what the next run does before any work
    with pytest.raises(RuntimeError), atomic_output_dir(out):
        raise RuntimeError("the next run fails")
    assert _leftovers(tmp_path) == [partial]
    with atomic_output_dir(out) as tmp:
        (tmp / "model.safetensors").write_bytes(b"x")
    assert _leftovers(tmp_path) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    assert "left by an interrupted run" in capsys.readouterr().err


def test_partial_folder_of_a_live_run_is_kept(tmp_path):
    out = tmp_path / "out"
    proc = _start_saver(out)
    try:
        check_output_dir(out, force=False)
        assert len(_leftovers(tmp_path)) == 1  # still being written by `proc`
    finally:
        proc.kill()
        proc.wait()


def test_disk_full_during_save(tmp_path):
    """A writer that hits ENOSPC half-way: one clear error, nothing left behind."""
    out = tmp_path / "out"
    with (
        pytest.raises(PrunekitError, match="No space left on device") as exc,
        atomic_output_dir(out) as tmp,
    ):
        (tmp / "config.json").write_text("{}")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp / "model.safetensors"))
    assert "\n" not in str(exc.value)
    assert _leftovers(tmp_path) == []


def test_file_size_limit_during_save_is_a_clear_error(tmp_path):
    """A real write failure (RLIMIT_FSIZE in a child process stands in for a full disk)."""
    code = textwrap.dedent(
        """
        import resource, signal, sys
        from pathlib import Path
        from prunekit.errors import PrunekitError
        from prunekit.utils import atomic_output_dir
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
        try:
            with atomic_output_dir(Path(sys.argv[1])) as tmp:
                (tmp / "model.safetensors").write_bytes(b"x" * (1 << 20))
        except PrunekitError as exc:
            print(exc)
        """
    )
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert "could not write" in proc.stdout and "File too large" in proc.stdout, proc.stderr
    assert _leftovers(tmp_path) == []


def test_concurrent_runs_writing_the_same_output(tmp_path):
    """Both pass the up-front check; the first to finish wins, the second keeps its result
    beside it and says where, instead of replacing the first."""
    out = tmp_path / "out"
    first = atomic_output_dir(out)
    second = atomic_output_dir(out)
    a, b = first.__enter__(), second.__enter__()
    (a / "who").write_text("first")
    (b / "who").write_text("second")
    first.__exit__(None, None, None)
    with pytest.raises(PrunekitError, match="another run") as exc:
        second.__exit__(None, None, None)
    assert (out / "who").read_text() == "first"
    kept = Path(str(exc.value).rsplit("'", 2)[-2])
    assert (kept / "who").read_text() == "second"


def test_a_refused_output_location_keeps_the_result_elsewhere(tmp_path, monkeypatch):
    """Disk full at -o after the expensive work: the result is written to the temp directory and
    the one error line says where; nothing is left at -o."""
    from prunekit.utils import write_output

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").mkdir()
    full = tmp_path / "full"
    full.mkdir()

    def write(folder: Path) -> None:
        if folder.parent == full:
            raise OSError(
                errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "model.safetensors")
            )
        (folder / "model.safetensors").write_bytes(b"weights")

    with pytest.raises(PrunekitError) as err:
        write_output(full / "out", write)
    [rescued] = (tmp_path / "elsewhere").iterdir()
    assert f"saved to '{rescued}'" in str(err.value) and "No space left" in str(err.value)
    assert (rescued / "model.safetensors").read_bytes() == b"weights"
    assert list(full.iterdir()) == []


def test_when_the_rescue_fails_too_the_first_error_stands(tmp_path, monkeypatch):
    from prunekit.utils import write_output

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "elsewhere"))

    def write(folder: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))

    with pytest.raises(PrunekitError, match="nothing was left behind") as err:
        write_output(tmp_path / "out", write)
    assert "saved to" not in str(err.value)
    assert not (tmp_path / "out").exists()
