"""Run untrusted generated code: one subprocess per candidate, with limits, and never hang.

Layers of defence (each covers what the others cannot):

- OS process: a fresh interpreter (`python -I -S`) in its own session/process group, a fresh
  temporary working directory, an environment with nothing inherited (no secrets), and
  rlimits on address space (memory), CPU seconds, file size, open files and core dumps.
- Privileges: when the evaluator runs as root, the candidate runs as `nobody` (uid 65534),
  so the kernel itself refuses writes outside its (chowned) directory and RLIMIT_NPROC
  (which root ignores) caps fork bombs. Otherwise RLIMIT_NPROC is set just above the
  user's current process count.
- Python guard (installed by the bootstrap before the candidate runs): the normal file
  APIs (`open`, `os.open`, `os.remove`, `os.rename`, `os.mkdir`, `shutil.rmtree`, …) refuse
  to write outside the working directory; process creation (`fork`, `subprocess`,
  `os.system`, `exec*`, `spawn*`) and signalling other processes are disabled.
- Supervision: a wall-time limit, after which the whole process group and every
  descendant seen is killed with SIGKILL; output goes to size-capped files, not pipes.

A pass needs the bootstrap to print a per-run random token after the program (candidate
plus tests) returned normally, so `sys.exit(0)` / `os._exit(0)` inside a candidate is a
failure, not a pass. This stops buggy and careless code; it is not a security boundary
against code written to escape it (use a container or VM for that).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

NOBODY = 65534

# Runs in a fresh interpreter. stdin: line 1 = JSON settings, rest = the program.
# The process is a small trusted supervisor: it becomes a child subreaper (and, when the
# evaluator could create one, PID 1 of a new PID namespace), forks the candidate, enforces
# the wall-time limit, then kills and reaps every process the candidate left behind, and
# finally reports how the candidate ended. The candidate drops privileges, sets its
# rlimits, installs the Python guard and runs the program.
BOOTSTRAP = r"""
import sys, os, json, time, signal
_cfg = json.loads(sys.stdin.readline())
_program = sys.stdin.read()
_token = _cfg.pop("token")
_report_fd = os.dup(1)
_devnull = os.open(os.devnull, os.O_RDWR)
os.dup2(_devnull, 0)

def _report(**kw):
    os.write(_report_fd, (_token + " " + json.dumps(kw) + "\n").encode())

try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except Exception:
    pass

_child = os.fork()
if _child == 0:
    os.setpgid(0, 0)
    if _cfg["uid"] is not None:
        os.setgroups([])
        os.setgid(_cfg["uid"])
        os.setuid(_cfg["uid"])
    import resource

    def _limit(name, value, extra=0):
        kind = getattr(resource, name)
        hard = resource.getrlimit(kind)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
            extra = 0 if value + extra > hard else extra
        try:
            resource.setrlimit(kind, (value, value + extra))
        except (ValueError, OSError):
            pass

    _limit("RLIMIT_AS", _cfg["memory_mb"] << 20)
    _limit("RLIMIT_DATA", _cfg["memory_mb"] << 20)
    _limit("RLIMIT_CPU", _cfg["cpu_s"], 1)  # SIGXCPU at the soft limit, SIGKILL 1 s later
    _limit("RLIMIT_FSIZE", _cfg["file_mb"] << 20)
    _limit("RLIMIT_NOFILE", 64)
    _limit("RLIMIT_CORE", 0)
    if _cfg["nproc"]:
        _limit("RLIMIT_NPROC", _cfg["nproc"])
    for _fd, _name in ((1, "stdout.txt"), (2, "stderr.txt")):
        _f = os.open(_name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(_f, _fd)
        os.close(_f)
    sys.stdout = open(1, "w", closefd=False, buffering=1)
    sys.stderr = open(2, "w", closefd=False, buffering=1)

    import builtins, io, shutil, subprocess, tempfile, pathlib, types
    os.environ.clear()
    _ROOT = os.path.realpath(os.getcwd())
    _realpath, _readlink, _fspath = os.path.realpath, os.readlink, os.fspath

    def _inside(path, dir_fd=None):
        if isinstance(path, int):
            return True
        p = os.fsdecode(_fspath(path))
        if dir_fd is not None and not os.path.isabs(p):
            p = os.path.join(_readlink("/proc/self/fd/%d" % dir_fd), p)
        p = _realpath(p)
        return p == _ROOT or p.startswith(_ROOT + os.sep)

    def _deny(what):
        raise PermissionError("sandbox: %s is not allowed" % what)

    _orig_open = builtins.open
    def _open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and not _inside(file):
            _deny("writing %r" % (file,))
        return _orig_open(file, mode, *args, **kwargs)
    builtins.open = io.open = _open

    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _orig_os_open = os.open
    def _os_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & _WRITE and not _inside(path, dir_fd):
            _deny("writing %r" % (path,))
        return _orig_os_open(path, flags, mode, dir_fd=dir_fd)
    os.open = _os_open

    def _guard_paths(fn, positions):
        def wrapper(*args, **kwargs):
            dir_fd = kwargs.get("dir_fd", kwargs.get("src_dir_fd"))
            for i in positions:
                if i < len(args) and not _inside(args[i], dir_fd):
                    _deny("%s(%r)" % (fn.__name__, args[i]))
            for key in ("dst", "path"):
                if key in kwargs and not _inside(kwargs[key], dir_fd):
                    _deny("%s(%r)" % (fn.__name__, kwargs[key]))
            return fn(*args, **kwargs)
        wrapper.__name__ = fn.__name__
        return wrapper

    for _name, _pos in (("remove", (0,)), ("unlink", (0,)), ("rmdir", (0,)), ("mkdir", (0,)),
                        ("chmod", (0,)), ("chown", (0,)), ("lchown", (0,)), ("truncate", (0,)),
                        ("utime", (0,)), ("mkfifo", (0,)), ("mknod", (0,)),
                        ("removedirs", (0,)), ("rename", (0, 1)), ("replace", (0, 1)),
                        ("renames", (0, 1)), ("link", (0, 1)), ("symlink", (1,))):
        if hasattr(os, _name):
            setattr(os, _name, _guard_paths(getattr(os, _name), _pos))
    for _name, _pos in (("rmtree", (0,)), ("move", (0, 1)), ("copy", (1,)), ("copy2", (1,)),
                        ("copyfile", (1,)), ("copytree", (1,)), ("chown", (0,))):
        setattr(shutil, _name, _guard_paths(getattr(shutil, _name), _pos))

    def _blocked(name):
        def blocked(*args, **kwargs):
            _deny(name)
        return blocked

    for _name in ("system", "popen", "fork", "forkpty", "vfork", "setsid", "setpgid",
                  "setpgrp", "execv", "execve", "execl", "execle", "execlp", "execlpe",
                  "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv",
                  "spawnve", "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp", "putenv",
                  "unsetenv", "setuid", "setgid", "seteuid", "setegid", "setreuid",
                  "setregid", "chroot", "fchdir", "chdir", "fchmod", "fchown",
                  "register_at_fork", "killpg", "plock"):
        if hasattr(os, _name):
            setattr(os, _name, _blocked("os." + _name))
    _orig_kill, _me = os.kill, os.getpid()
    def _kill(pid, sig):
        if pid != _me:
            _deny("signalling other processes")
        return _orig_kill(pid, sig)
    os.kill = _kill
    subprocess.Popen = _blocked("subprocess")
    for _name in ("run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        setattr(subprocess, _name, _blocked("subprocess"))
    for _mod in ("posix", "_posixsubprocess", "ctypes", "_ctypes", "multiprocessing",
                 "resource", "pty", "cffi"):
        sys.modules[_mod] = None

    _namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        _code = compile(_program, "<candidate>", "exec")
    except (SyntaxError, ValueError) as _exc:
        _report(status="failed", error="syntax", detail="%s: %s" % (type(_exc).__name__, _exc))
        os._exit(1)
    try:
        exec(_code, _namespace)
    except SystemExit as _exc:
        _report(status="failed", error="exit", detail="SystemExit(%r)" % (_exc.code,))
        os._exit(1)
    except MemoryError:
        _report(status="failed", error="memory", detail="MemoryError")
        os._exit(1)
    except AssertionError as _exc:
        _report(status="failed", error="assertion", detail=str(_exc)[:200])
        os._exit(1)
    except PermissionError as _exc:
        _kind = "sandbox_violation" if "sandbox:" in str(_exc) else "exception"
        _report(status="failed", error=_kind, detail=("PermissionError: %s" % _exc)[:300])
        os._exit(1)
    except BaseException as _exc:
        _report(status="failed", error="exception",
                detail=("%s: %s" % (type(_exc).__name__, _exc))[:300])
        os._exit(1)
    _report(status="passed", error=None, detail=None)
    os._exit(0)

# ---- supervisor ----
class _Deadline(Exception):
    pass

def _alarm(signum, frame):
    raise _Deadline()

signal.signal(signal.SIGALRM, _alarm)
signal.setitimer(signal.ITIMER_REAL, _cfg["wall_s"])
_status, _timed_out = None, False
try:
    while True:
        try:
            _pid, _st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if _pid == _child:
            _status = _st
            break
except _Deadline:
    _timed_out = True
signal.setitimer(signal.ITIMER_REAL, 0)
_me = os.getpid()

def _my_children():
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    stat = f.read()
                if int(stat.rsplit(")", 1)[1].split()[1]) == _me:
                    out.append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return out

for _round in range(500):
    try:
        os.killpg(_child, signal.SIGKILL)
    except OSError:
        pass
    if _me == 1:  # init of our own PID namespace: -1 means every process in it but us
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    for _pid in _my_children():
        try:
            os.kill(_pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        while True:
            _pid, _st = os.waitpid(-1, os.WNOHANG)
            if _pid == 0:
                break
            if _pid == _child and _status is None and not _timed_out:
                _status = _st
    except ChildProcessError:
        break
    time.sleep(0.002)
if _timed_out:
    _report(kind="end", timed_out=True, signal=None, code=None)
elif _status is None:
    _report(kind="end", timed_out=False, signal=None, code=None)
elif os.WIFSIGNALED(_status):
    _report(kind="end", timed_out=False, signal=os.WTERMSIG(_status), code=None)
else:
    _report(kind="end", timed_out=False, signal=None, code=os.WEXITSTATUS(_status))
os._exit(0)
"""


@dataclass(frozen=True)
class Limits:
    """Per-candidate limits; the defaults fit HumanEval's tests with a wide margin."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    file_mb: int = 16
    nproc: int = 64


@dataclass
class ExecResult:
    """The outcome of one candidate: `passed`, and if not, an error kind and short detail."""

    passed: bool
    error: str | None = None
    detail: str | None = None
    wall_s: float = 0.0
    returncode: int | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("extra")
        return out


def _world_executable(path: str) -> bool:
    """True if a non-owner can execute `path` (every parent directory searchable by others)."""
    real = Path(os.path.realpath(path))
    try:
        if not real.stat().st_mode & stat.S_IXOTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in real.parents)
    except OSError:
        return False


@lru_cache(maxsize=4)
def _interpreter_for(drop_to: int | None) -> str | None:
    """An interpreter the sandbox user can run: ours, else the system python3 (probed once)."""
    candidates = [sys.executable, getattr(sys, "_base_executable", sys.executable)]
    candidates += [p for p in (shutil.which("python3"), "/usr/bin/python3") if p]
    seen: set[str] = set()
    for cand in candidates:
        if cand in seen or not os.path.exists(cand):
            continue
        seen.add(cand)
        if drop_to is not None and not _world_executable(cand):
            continue
        try:
            probe = subprocess.run(
                [cand, "-I", "-S", "-c", "import json, resource; print('ok')"],
                capture_output=True,
                timeout=30,
                cwd="/",
                env={"PATH": "/usr/bin:/bin"},
                user=drop_to,
                group=drop_to,
                extra_groups=[] if drop_to is not None else None,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == b"ok":
            return cand
    return None


def _user_process_count() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1 + max(0, len(os.listdir(f"/proc/{entry.name}/task")) - 1)
            except OSError:
                continue
    return count


@lru_cache(maxsize=1)
def _pid_namespace_prefix() -> tuple[str, ...]:
    """`unshare` arguments that give each candidate its own PID namespace, if allowed here."""
    exe = shutil.which("unshare")
    if exe is None or os.geteuid() != 0:
        return ()
    args = (exe, "--pid", "--fork", "--kill-child")
    try:
        ok = subprocess.run([*args, "/bin/true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return args if ok else ()


@lru_cache(maxsize=1)
def sandbox_identity() -> dict:
    """How candidates run here: interpreter, user, privilege drop, PID namespace."""
    drop = NOBODY if os.geteuid() == 0 else None
    interp = _interpreter_for(drop) if drop is not None else None
    if interp is None:
        drop = None
        interp = _interpreter_for(None)
    if interp is None:
        raise RuntimeError("no Python interpreter usable for the sandbox was found")
    return {
        "interpreter": interp,
        "uid": NOBODY if drop is not None else os.getuid(),
        "privileges_dropped": drop is not None,
        "pid_namespace": bool(_pid_namespace_prefix()),
    }


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def _outcome(candidate: dict | None, end: dict | None, wall: float, limits: Limits) -> ExecResult:
    """Combine the candidate's own report and the supervisor's account of how it ended."""
    if end is None:
        return ExecResult(False, "sandbox_error", "the supervisor did not report", wall)
    if end["timed_out"]:
        return ExecResult(False, "timeout", f"wall-time limit {limits.wall_s:g}s", wall)
    sig, code = end["signal"], end["code"]
    if sig is not None:
        name = _signal_name(sig)
        if sig == signal.SIGXCPU or (
            sig == signal.SIGKILL and candidate is None and wall >= limits.cpu_s
        ):
            return ExecResult(False, "cpu_limit", f"killed by {name} (CPU-time limit)", wall, -sig)
        if sig == signal.SIGXFSZ:
            return ExecResult(
                False, "file_limit", f"killed by {name} (file-size limit)", wall, -sig
            )
        return ExecResult(False, "killed", f"killed by signal {name}", wall, -sig)
    if candidate is not None:
        passed = candidate["status"] == "passed" and code == 0
        return ExecResult(passed, candidate["error"], candidate["detail"], wall, code)
    return ExecResult(
        False, "exit", f"exited with status {code} before finishing its tests", wall, code
    )


def run_program(program: str, limits: Limits = Limits()) -> ExecResult:
    """Execute `program` (candidate + tests) in the sandbox; pass iff it returns normally."""
    ident = sandbox_identity()
    drop = NOBODY if ident["privileges_dropped"] else None
    token = secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="prunekit-sandbox-")
    if drop is not None:
        os.chown(workdir, drop, drop)
    nproc = limits.nproc if drop is not None else _user_process_count() + limits.nproc
    settings = {
        "token": token,
        "uid": drop,
        "wall_s": limits.wall_s,
        "cpu_s": limits.cpu_s,
        "memory_mb": limits.memory_mb,
        "file_mb": limits.file_mb,
        "nproc": nproc,
    }
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [*_pid_namespace_prefix(), ident["interpreter"], "-I", "-S", "-c", BOOTSTRAP]
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        try:
            out, _ = proc.communicate(
                (json.dumps(settings) + "\n" + program).encode(), timeout=limits.wall_s + 5
            )
        except subprocess.TimeoutExpired:  # the supervisor itself is stuck: last resort
            _kill_tree(proc)
            try:
                out, _ = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:
                for pipe in (proc.stdout, proc.stdin):
                    if pipe:
                        pipe.close()
                proc.wait()
                out = b""
        wall = time.perf_counter() - start
        candidate = end = None
        for line in out.decode(errors="replace").splitlines():
            if line.startswith(token + " "):
                info = json.loads(line[len(token) + 1 :])
                if info.get("kind") == "end":
                    end = info
                else:
                    candidate = info
        return _outcome(candidate, end, wall, limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the supervisor's session and every descendant still visible."""
    import psutil

    try:
        pids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.Error:
        pids = []
    for pid in [proc.pid, *pids]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_many(
    programs: Sequence[str],
    limits: Limits = Limits(),
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[ExecResult]:
    """Run programs concurrently (each in its own sandbox); results in input order."""
    from concurrent.futures import as_completed

    sandbox_identity()  # probe once, before the threads start
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    results: list[ExecResult | None] = [None] * len(programs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(run_program, p, limits): i for i, p in enumerate(programs)}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if progress:
                progress(1)
    return [r for r in results if r is not None]
