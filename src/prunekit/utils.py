"""Small shared helpers: hashing, atomic output folders, memory and timing."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prunekit.errors import PrunekitError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM)


def check_output_dir(path: Path, force: bool) -> None:
    """Refuse an existing non-empty output folder unless `force`, or a location this process
    cannot write (checked before any work); remove what interrupted runs left next to it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PrunekitError(f"output '{path}' exists and is not a folder; choose another -o path")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise PrunekitError(
            f"output folder '{path}' already exists and is not empty; pass --force to replace it"
        )
    check_writable(path)
    remove_stale_partials(path)


def check_writable(path: Path) -> None:
    """Create and remove a folder where the output will go: the only test that also holds
    for root on a read-only filesystem."""
    anchor = path.absolute().parent
    while not anchor.exists():
        anchor = anchor.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".prunekit-write-test-", dir=anchor))
    except OSError as exc:
        raise PrunekitError(
            f"cannot write '{path}': '{anchor}' is not writable ({exc.strerror}); "
            "choose another output path"
        ) from None


def _partial_owner(name: str) -> int | None:
    """The pid in a `.NAME.partial-PID-XXXX` folder name (None for older names)."""
    head = name.rsplit(".partial-", 1)[-1].rsplit(".old-", 1)[-1].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _alive(pid: int | None) -> bool:
    if pid is None or pid == os.getpid():
        return pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete the temporary folders that killed runs (SIGKILL, power loss) left beside `path`;
    folders of runs still alive are kept. Says on stderr what it removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = [
        p
        for pattern in (f".{path.name}.partial-*", f".{path.name}.old-*")
        for p in path.parent.glob(pattern)
        if p.is_dir() and not _alive(_partial_owner(p.name))
    ]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
        print(f"prunekit: removed '{p}', left by an interrupted run", file=sys.stderr)
    return stale


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (so cleanup runs, as for Ctrl-C)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt("terminated (SIGTERM)")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: signals cannot be caught here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def atomic_output_dir(path: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; rename it to `path` only if the block completes.
    Interrupts (Ctrl-C, SIGTERM) and errors remove it; a folder another run put at `path`
    meanwhile is never replaced without `force` (this run's result is kept beside it)."""
    path = Path(path)
    check_output_dir(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _sigterm_as_interrupt():
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-{os.getpid()}-", dir=path.parent))
        try:
            yield tmp
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno in WRITE_ERRORS:
                raise PrunekitError(
                    f"could not write '{path}': {exc.strerror}; nothing was left behind; "
                    "free some space or choose another -o path"
                ) from exc
            raise
        _move_into_place(tmp, path, force)


def rescue_dir(path: Path) -> Path:
    """Where a result goes when its -o location refuses it: the temp directory (often another disk)."""
    return Path(tempfile.gettempdir()) / f"prunekit-rescued-{Path(path).name}-{os.getpid()}"


def write_output(path: Path, write: Callable[[Path], None], force: bool = False) -> Path:
    """Fill a result folder atomically with `write(folder)`. If the location refuses the write
    (full disk, quota, read-only), the result is written once more to `rescue_dir(path)`, so hours
    of pruning are not lost, and the one error line says where it is."""
    try:
        with atomic_output_dir(path, force=force) as tmp:
            write(tmp)
        return Path(path)
    except PrunekitError as exc:
        cause = exc.__cause__
        if not (isinstance(cause, OSError) and cause.errno in WRITE_ERRORS):
            raise
        rescue = rescue_dir(path)
        try:
            with atomic_output_dir(rescue, force=True) as tmp:
                write(tmp)
        except (PrunekitError, OSError):
            raise exc from cause
        raise PrunekitError(
            f"could not write '{path}': {cause.strerror}; the result was saved to '{rescue}' "
            "instead (move it where it belongs)"
        ) from cause


def _move_into_place(tmp: Path, path: Path, force: bool) -> None:
    if path.exists() and not force and (not path.is_dir() or any(path.iterdir())):
        kept = path.with_name(f"{path.name}.{os.getpid()}")
        tmp.rename(kept)
        raise PrunekitError(
            f"'{path}' was written by another run meanwhile and was left as it is; "
            f"this run's output is in '{kept}'"
        )
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(path)


def peak_rss_mb() -> float:
    """Peak resident set size of this process (since the last `reset_peak_rss`), in MiB."""
    try:  # Linux: VmHWM, which `reset_peak_rss` can lower again
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Restart the peak-RSS count at the current RSS (Linux only), so that one process can
    measure several models one after another; False where the kernel does not support it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Timer:
    """Collects wall times of named stages: `with timer("calibrate"): ...`."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start
