"""Small shared helpers: hashing, atomic output folders, memory and timing."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import stat
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


_INPUTS: set[Path] = set()  # resolved model folders/files this process has read


def protect_input(path: Path) -> None:
    """Record a model folder or file this process read: no output may replace it (or a folder
    holding it), --force or not."""
    _INPUTS.add(Path(path).resolve())


def input_in(path: Path, inputs: Iterator[Path] | list[Path] = ()) -> Path | None:
    """The input (given, or recorded by `protect_input`) that `path` is or holds, if any."""
    target = Path(path).resolve()
    for given in [*inputs, *_INPUTS]:
        resolved = Path(given).resolve()
        if resolved == target or target in resolved.parents:
            return resolved
    return None


def write_error(exc: BaseException) -> OSError | None:
    """The OSError behind a failed write when it is one of WRITE_ERRORS (full disk, quota,
    read-only, file too large); safetensors reports these as '... (os error 28)'."""
    if isinstance(exc, OSError):
        return exc if exc.errno in WRITE_ERRORS else None
    found = re.search(r"\(os error (\d+)\)", str(exc))
    if found and int(found.group(1)) in WRITE_ERRORS:
        code = int(found.group(1))
        return OSError(code, os.strerror(code))
    return None


def check_free_space(folder: Path, needed: int, what: str = "the weights") -> None:
    """Raise ENOSPC (an OSError, so the callers' rescue applies) when `folder`'s filesystem
    has less than `needed` bytes free, plus a margin, before anything is written."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    margin = needed // 50 + (16 << 20)
    if free < needed + margin:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device ({_mib(needed + margin)} needed for {what}, "
            f"{_mib(free)} free there)",
        )


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def check_output_dir(path: Path, force: bool, inputs: list[Path] | tuple = ()) -> None:
    """Refuse an existing non-empty output folder unless `force`, an output that is (or holds)
    one of the `inputs` (e.g. the model folder), or a location this process cannot write
    (checked before any work). Deletes nothing: see `remove_stale_partials`."""
    path = Path(path)
    check_path_resolves(path)
    clash = input_in(path, [Path(i) for i in inputs if os.path.exists(i)])
    if clash is not None:
        raise PrunekitError(
            f"output '{path}' would replace the model this run reads ('{clash}'), --force or "
            "not; choose another -o path"
        )
    restore_set_aside(path)
    if path.exists() and not path.is_dir():
        raise PrunekitError(f"output '{path}' exists and is not a folder; choose another -o path")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise PrunekitError(
            f"output folder '{path}' already exists and is not empty; pass --force to replace it"
        )
    check_writable(path)


def check_path_resolves(path: Path, flag: str = "-o") -> None:
    """Every existing part of `path` resolves: no symlink loop, no dangling symlink (a save
    would fail there only at the end), no file where a folder must be."""
    path = Path(path).absolute()
    parts = [*reversed(path.parents), path]
    for i, part in enumerate(parts):
        try:
            info = os.lstat(part)
        except FileNotFoundError:
            return  # the rest will be created
        except OSError as exc:
            raise PrunekitError(
                f"cannot use '{path}' as output: '{part}' cannot be reached ({exc.strerror}); "
                f"choose another {flag} path"
            ) from None
        if stat.S_ISLNK(info.st_mode):
            try:
                info = os.stat(part)
            except OSError as exc:
                what = "a symlink loop" if exc.errno == errno.ELOOP else "a dangling symlink"
                raise PrunekitError(
                    f"cannot use '{path}' as output: '{part}' is {what} "
                    f"(-> {os.readlink(part)}); remove it or choose another {flag} path"
                ) from None
        if i < len(parts) - 1 and not stat.S_ISDIR(info.st_mode):
            raise PrunekitError(
                f"cannot use '{path}' as output: '{part}' is a file, not a folder; "
                f"choose another {flag} path"
            )


def check_output_file(path: Path, flag: str) -> None:
    """A file an option names can be written (or replaced) there: not a folder, every part of
    the path resolves, the place writable; one line naming `flag`, checked before any work."""
    path = Path(path)
    check_path_resolves(path, flag)
    if path.is_dir():
        raise PrunekitError(f"{flag} '{path}' is a folder; give a file path inside it")
    if path.exists() and not os.access(path, os.W_OK):
        raise PrunekitError(f"{flag} '{path}' is not writable; choose another path")
    try:
        check_writable(path)
    except PrunekitError as exc:
        raise PrunekitError(f"{flag}: {exc}") from None


def check_writable(path: Path) -> None:
    """Create and remove a folder where the output will go: the only test that also holds
    for root on a read-only filesystem."""
    anchor = path.absolute().parent
    while not os.path.lexists(anchor):
        anchor = anchor.parent
    if not anchor.is_dir():
        raise PrunekitError(
            f"cannot write '{path}': '{anchor}' is not a folder (or a broken symlink); "
            "choose another path"
        )
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".prunekit-write-test-", dir=anchor))
    except OSError as exc:
        raise PrunekitError(
            f"cannot write '{path}': '{anchor}' is not writable ({exc.strerror}); "
            "choose another output path"
        ) from None


PARTIAL_MARKER = ".prunekit-partial"  # inside every temporary folder prunekit makes


def _host_ids() -> dict:
    """This boot and PID namespace: a pid means the same process only where both match."""
    ids = {}
    for key, read in (
        ("boot", lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip()),
        ("pidns", lambda: os.readlink("/proc/self/ns/pid")),
    ):
        try:
            ids[key] = read()
        except OSError:
            ids[key] = None
    return ids


def _make_temp_dir(path: Path, kind: str) -> Path:
    """A hidden `.NAME.KIND-PID-XXXX` folder beside `path`, marked as this process's own."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{kind}-{os.getpid()}-", dir=path.parent))
    mark = {"prunekit": kind, "folder": tmp.name, "pid": os.getpid(), **_host_ids()}
    mark["id"] = secrets.token_hex(8)
    (tmp / PARTIAL_MARKER).write_text(json.dumps(mark))
    return tmp


def make_partial_dir(path: Path) -> Path:
    """A marked temporary `.NAME.partial-*` folder beside `path`, for a caller that renames it
    into place itself: `remove_stale_partials(path)` deletes it once this process is gone.
    Call `unmark_partial_dir` on it just before the rename."""
    return _make_temp_dir(Path(path), "partial")


def unmark_partial_dir(tmp: Path) -> None:
    """Drop the marker of a finished `make_partial_dir` folder (it becomes a result)."""
    (Path(tmp) / PARTIAL_MARKER).unlink(missing_ok=True)


def _read_marker(folder: Path, kind: str) -> dict | None:
    """The marker of a folder prunekit made (None for anything else: never ours to delete)."""
    marker = folder / PARTIAL_MARKER
    try:
        if folder.is_symlink() or not folder.is_dir() or marker.is_symlink():
            return None
        mark = json.loads(marker.read_text()[:4096])
    except (OSError, ValueError):
        return None
    if not isinstance(mark, dict) or mark.get("prunekit") != kind:
        return None
    if mark.get("folder") != folder.name or not isinstance(mark.get("pid"), int):
        return None
    return mark


def _owner_gone(mark: dict) -> bool:
    """True only if the process that made the folder is certainly dead."""
    here = _host_ids()
    if mark.get("boot") and here["boot"] and mark["boot"] != here["boot"]:
        return True  # rebooted since
    if mark.get("pidns") != here["pidns"]:
        return False  # another container's pid: cannot tell
    return not _alive(mark["pid"])


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(path: Path, kind: str) -> list[Path]:
    """The marked `.NAME.KIND-*` folders beside `path` whose maker is dead (names compared as
    plain prefixes: glob characters in NAME match only themselves)."""
    prefix = f".{path.name}.{kind}-"
    try:
        names = sorted(e.name for e in os.scandir(path.parent) if e.name.startswith(prefix))
    except OSError:
        return []
    marks = ((path.parent / n, _read_marker(path.parent / n, kind)) for n in names)
    return [folder for folder, mark in marks if mark is not None and _owner_gone(mark)]


def restore_set_aside(path: Path) -> Path | None:
    """Put back an output that a killed run had set aside to replace it, if `path` is empty
    of anything else (the only copy left); removes nothing."""
    path = Path(path)
    if os.path.lexists(path):
        return None
    for holder in _stale(path, "old"):
        previous = holder / "previous"
        if os.path.lexists(previous):
            previous.rename(path)
            print(f"prunekit: restored '{path}', set aside by an interrupted run", file=sys.stderr)
            return path
    return None


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete the temporary folders that killed runs (SIGKILL, power loss) left beside `path`:
    only folders holding prunekit's marker whose maker is dead, never by name alone."""
    path = Path(path)
    removed = [*_stale(path, "partial"), *_stale(path, "old")]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
        print(f"prunekit: removed '{folder}', left by an interrupted run", file=sys.stderr)
    return removed


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
    meanwhile is never replaced without `force` (this run's result is kept beside it). Once
    the result is in place, what killed runs left beside it is removed."""
    path = Path(path)
    check_output_dir(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _sigterm_as_interrupt():
        tmp = _make_temp_dir(path, "partial")
        try:
            yield tmp
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            cause = write_error(exc)
            if cause is not None:
                raise PrunekitError(
                    f"could not write '{path}': {cause.strerror}; nothing was left behind; "
                    "free some space or choose another -o path"
                ) from cause
            raise
        _move_into_place(tmp, path, force)
    remove_stale_partials(path)


def rescue_dir(path: Path) -> Path:
    """Where a result goes when its -o location refuses it: the temp directory (often another disk)."""
    return Path(tempfile.gettempdir()) / f"prunekit-rescued-{Path(path).name}-{os.getpid()}"


def write_output(path: Path, write: Callable[[Path], None], force: bool = False) -> Path:
    """Fill a result folder atomically with `write(folder)`. If the location refuses the write
    (full disk, quota, read-only), the result is written once more to `rescue_dir(path)`, so hours
    of pruning are not lost, and the one error line says where it is."""
    clash = input_in(path)
    if clash is not None:  # found only now (the model loaded after the early checks)
        beside = Path(path).with_name(f"{Path(path).name}.{os.getpid()}")
        with atomic_output_dir(beside) as tmp:
            write(tmp)
        raise PrunekitError(
            f"output '{path}' would replace the model this run read ('{clash}'), so it was left "
            f"as it is; this run's output is in '{beside}'"
        )
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
            kept = _salvage(path, write)
            if kept is None:
                raise exc from cause
            raise PrunekitError(
                f"could not write '{path}' nor '{rescue}': {cause.strerror}; everything but "
                f"the weights (report, config, tokenizer) was saved to '{kept}'; free some "
                "space and run again"
            ) from cause
        raise PrunekitError(
            f"could not write '{path}': {cause.strerror}; the result was saved to '{rescue}' "
            "instead (move it where it belongs)"
        ) from cause


def _salvage(path: Path, write: Callable[[Path], None]) -> Path | None:
    """When no place takes the whole result: `write` once more without the weights (report,
    config, tokenizer: what a failed save can still keep), beside `path` or else in the temp
    directory. Returns where, or None if even that failed."""
    from prunekit.export.checkpoint import weights_skipped

    name = f"{Path(path).name}.no-weights-{os.getpid()}"
    for place in (Path(path).with_name(name), Path(tempfile.gettempdir()) / f"prunekit-{name}"):
        try:
            with weights_skipped(), atomic_output_dir(place, force=True) as tmp:
                write(tmp)
            return place
        except (PrunekitError, OSError):
            continue
    return None


def _move_into_place(tmp: Path, path: Path, force: bool) -> None:
    """Rename the finished `tmp` (its marker dropped) to `path`; an output already there is
    set aside in a marked `.NAME.old-*` folder until the new one is in place."""
    if path.exists() and not force and (not path.is_dir() or any(path.iterdir())):
        kept = path.with_name(f"{path.name}.{os.getpid()}")
        (tmp / PARTIAL_MARKER).unlink()
        tmp.rename(kept)
        raise PrunekitError(
            f"'{path}' was written by another run meanwhile and was left as it is; "
            f"this run's output is in '{kept}'"
        )
    holder = None
    if path.exists():
        holder = _make_temp_dir(path, "old")
        path.rename(holder / "previous")
    (tmp / PARTIAL_MARKER).unlink()
    tmp.rename(path)
    if holder is not None:
        shutil.rmtree(holder, ignore_errors=True)


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
