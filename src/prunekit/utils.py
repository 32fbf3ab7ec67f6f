"""Small shared helpers: hashing, atomic output folders, memory and timing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from prunekit.errors import PrunekitError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def check_output_dir(path: Path, force: bool) -> None:
    """Refuse an existing non-empty output folder unless `force` (checked before any work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PrunekitError(f"output '{path}' exists and is not a folder; choose another -o path")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise PrunekitError(
            f"output folder '{path}' already exists and is not empty; pass --force to replace it"
        )


@contextlib.contextmanager
def atomic_output_dir(path: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; rename it to `path` only if the block completes."""
    path = Path(path)
    check_output_dir(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
