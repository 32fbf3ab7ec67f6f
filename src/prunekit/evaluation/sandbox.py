"""Run untrusted generated code and decide, outside its reach, whether it passed its tests.

API: `run_check(Check(candidate, test, entry_point, context), limits) -> ExecResult` (and
`run_many` for a list): `passed` is True only if the trusted `test` source completed. Use it
for any verdict on generated code. `run_program(source)` runs one self-contained program; its
`passed` only means the program said it reached its end (`verdict == "self-reported"`), which
a hostile program can fake: fine for trusted code, never for a score.

Threat model: the candidate is arbitrary Python written to get a pass, to read what it
should not (the answer key, the evaluator's environment and files), to damage the host, or
to exhaust it. Three processes:

- the evaluator (this module) starts the other two, reads a few capped lines from each,
  and never runs candidate code;
- the judge (`sandbox_judge`, trusted, outside the sandbox) executes the tests. Each call of
  the function under test is sent to the candidate, and the answer comes back as plain data
  (`sandbox_wire`: exact builtin values rebuilt on the judge's side), so the tests compare
  ordinary values: no object with a forged `__eq__`, no reporting function, token or exit
  code of the candidate's can turn a failure into a pass. The verdict is the judge's stdout;
- the candidate (`sandbox_child`) runs the source and answers calls. It runs in new user,
  PID, network (no interface up, loopback included), IPC, UTS and mount namespaces, under a
  minimal read-only root (system directories and the interpreter; the work directory is the
  only writable host path; private /tmp, /dev/shm and /proc; no home, /etc, site-packages or
  answer key), as an unprivileged uid of a nested user namespace with no capabilities, with
  an empty environment, rlimits per process (address space, CPU seconds, file size, open
  files, processes) and an aggregate memory and process budget for its whole tree (a cgroup
  where this user may create one, otherwise the supervisor polls the tree's resident memory
  and the process limit is per uid of the nested namespace). A wall-time limit kills the whole
  tree. A Python-level guard turns accidental writes and process creation into clear errors.

Where a layer is unavailable (no user namespaces, no cgroup), the evaluation still runs with
what is left, and `sandbox_identity()['missing']` (and each result's `extra`) says which. The
fallback without namespaces is the older one: `nobody` when the evaluator is root, rlimits and
the Python guard; it does not hide the host's files and processes, so prefer a kernel with
unprivileged user namespaces (or a container) for hostile code. Without namespaces and without
root the candidate would run as the evaluator's own uid, able to rewrite the user's files (the
code the next run executes included): `run_check` refuses to score in that mode unless
PRUNEKIT_UNSAFE_SAME_UID_SANDBOX=1 says the code is trusted. There, the judge and the
evaluator are non-dumpable while candidates run (their memory, descriptors and the nonce closed
to a same-uid process) and the supervisor is a subreaper (every descendant is killed), but
no verdict is guaranteed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from prunekit.errors import PrunekitError
from prunekit.evaluation import sandbox_child, sandbox_judge, sandbox_wire
from prunekit.evaluation.sandbox_cgroup import Cgroup, cgroup_support

NOBODY = 65534
REPORT_CAP = 1 << 16  # bytes read from the supervisor's and the judge's stdout
NAMESPACE_ARGS = ("--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount-proc")
NAMESPACE_ARGS += ("--net", "--ipc", "--uts", "--mount")
BASE_LAYERS = ["user_namespace", "pid_namespace", "network_namespace", "ipc_namespace"]
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
UNSAFE_SAME_UID = "PRUNEKIT_UNSAFE_SAME_UID_SANDBOX"  # =1: score code run as our own uid anyway
PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4


@dataclass(frozen=True)
class Limits:
    """Per-candidate limits; the defaults fit HumanEval's tests with a wide margin."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    file_mb: int = 16
    nproc: int = 64
    judge_memory_mb: int = 512  # the trusted judge's address space (answers are capped at 1 MB)
    judge_cpu_s: int = 30


@dataclass(frozen=True)
class Check:
    """Untrusted `candidate` source defining `entry_point`, judged by trusted `test` source that
    calls `candidate` (or `entry_point`) and asserts; `context` is trusted helper code the test
    may use (e.g. the HumanEval prompt's helper functions)."""

    candidate: str
    test: str
    entry_point: str | None
    context: str = ""


@dataclass
class ExecResult:
    """The outcome of one candidate: `passed`, and if not, an error kind and short detail."""

    passed: bool
    error: str | None = None
    detail: str | None = None
    wall_s: float = 0.0
    returncode: int | None = None
    verdict: str = "judged"
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("extra")
        return out


@lru_cache(maxsize=4)
def _launcher(module) -> str:
    """`-c` source that runs sandbox_wire and then `module` (both stdlib-only) as __main__;
    read once, so that a candidate that can write prunekit's files cannot change later judges."""
    parts = [Path(m.__file__).read_text(encoding="utf-8") for m in (sandbox_wire, module)]
    return "".join(
        f"exec(compile({src!r}, {name!r}, 'exec'))\n"
        for src, name in zip(parts, ("sandbox_wire.py", Path(module.__file__).name))
    )


def _world_executable(path: str) -> bool:
    """True if a non-owner can execute `path` (every parent directory searchable by others)."""
    real = Path(os.path.realpath(path))
    try:
        if not real.stat().st_mode & stat.S_IXOTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in real.parents)
    except OSError:
        return False


def _probe(cmd: list[str], drop_to: int | None = None) -> bool:
    try:
        probe = subprocess.run(
            cmd,
            capture_output=True,
            timeout=30,
            cwd="/",
            env={"PATH": "/usr/bin:/bin"},
            user=drop_to,
            group=drop_to,
            extra_groups=[] if drop_to is not None else None,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0 and probe.stdout.strip() == b"ok"


@lru_cache(maxsize=4)
def _interpreter_for(drop_to: int | None) -> str | None:
    """An interpreter the sandbox user can run: ours, else the system python3 (probed once)."""
    candidates = [sys.executable, getattr(sys, "_base_executable", sys.executable)]
    candidates += [p for p in (shutil.which("python3"), "/usr/bin/python3") if p]
    for cand in dict.fromkeys(candidates):
        if not os.path.exists(cand) or (drop_to is not None and not _world_executable(cand)):
            continue
        if _probe([cand, "-I", "-S", "-c", "import json, resource; print('ok')"], drop_to):
            return cand
    return None


def _interpreter_paths(interp: str) -> list[str]:
    """Host paths the interpreter needs inside the minimal root (its binary and stdlib)."""
    out = subprocess.run(
        [
            interp,
            "-I",
            "-S",
            "-c",
            "import sys, json; print(json.dumps([sys.base_prefix, sys.base_exec_prefix]))",
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    paths = json.loads(out.stdout)
    paths.append(str(Path(os.path.realpath(interp)).parent))
    kept: list[str] = []
    for p in sorted(set(paths)):  # parents sort first; a path under a kept one is covered
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in (*SYSTEM_PATHS, *kept)):
            kept.append(p)
    return kept


SITE_PATTERNS = (
    "lib/python3*/site-packages",
    "lib/python3*/dist-packages",
    "lib/python3/dist-packages",
    "local/lib/python3*/site-packages",
    "local/lib/python3*/dist-packages",
)


def _hidden_paths(ro_paths: list[str]) -> list[str]:
    """Installed-package folders inside the mounted system and interpreter paths (real paths,
    no symlinks): the sandbox covers each with an empty read-only tmpfs, so a candidate sees the
    standard library only, not the packages (or an answer key) installed beside it."""
    found: set[str] = set()
    for base in ro_paths:
        for root in (Path(base), Path(base) / ".."):  # /usr and a prefix's own lib/
            for pattern in SITE_PATTERNS:
                for hit in root.glob(pattern):
                    real = os.path.realpath(hit)
                    inside = any(
                        real == b or real.startswith(b.rstrip("/") + "/") for b in ro_paths
                    )
                    if inside and os.path.isdir(real):
                        found.add(real)
    return sorted(found)


@lru_cache(maxsize=1)
def _namespace_prefix() -> tuple[str, ...]:
    """`unshare` arguments for fresh user/PID/network/IPC/UTS/mount namespaces, if allowed."""
    exe = shutil.which("unshare")
    if exe is None:
        return ()
    args = (exe, *NAMESPACE_ARGS)
    return args if _probe([*args, "/bin/sh", "-c", "echo ok"]) else ()


@lru_cache(maxsize=1)
def sandbox_identity() -> dict:
    """How candidates run here: interpreter, namespaces, cgroup, and the layers missing."""
    namespaces = bool(_namespace_prefix())
    drop = NOBODY if os.geteuid() == 0 and not namespaces else None
    interp = _interpreter_for(drop) if drop is not None else None
    if interp is None:
        drop = None
        interp = _interpreter_for(None)
    if interp is None:
        raise RuntimeError("no Python interpreter usable for the sandbox was found")
    cgroup = cgroup_support()
    same_uid = not namespaces and drop is None
    ro_paths = [*SYSTEM_PATHS, *_interpreter_paths(interp)] if namespaces else []
    missing = (
        []
        if namespaces
        else ["namespaces (unshare --user failed: host files, processes and network visible)"]
    )
    if same_uid:
        missing.append("separate uid (candidates run as the evaluator's uid: verdicts forgeable)")
    if cgroup is None:
        missing.append(
            "cgroup (aggregate memory polled by the supervisor; processes limited per uid)"
        )
    return {
        "interpreter": interp,
        "uid": NOBODY if drop is not None else os.getuid(),
        "privileges_dropped": drop is not None or namespaces,
        "same_uid": same_uid,
        "namespaces": namespaces,
        "pid_namespace": namespaces,
        "cgroup": cgroup,
        "missing": missing,
        "ro_paths": ro_paths,
        "hidden_paths": _hidden_paths(ro_paths) if namespaces else [],
    }


def check_sandbox_can_score() -> None:
    """Raise a one-line PrunekitError where candidates would run as this process's own uid
    (no user namespaces, not root) and the user has not said the code is trusted."""
    if sandbox_identity()["same_uid"] and os.environ.get(UNSAFE_SAME_UID) != "1":
        raise PrunekitError(
            "refusing to run untrusted generated code: without user namespaces and without root "
            "it would run as your own uid and could forge its verdict or change your files; "
            "enable unprivileged user namespaces (e.g. sysctl kernel.unprivileged_userns_clone=1) "
            f"or run as root (candidates then run as nobody), or set {UNSAFE_SAME_UID}=1 "
            "to score trusted code anyway"
        )


_seal_lock = threading.Lock()
_seal_state = {"users": 0, "before": 1}


def _prctl(option: int, value: int = 0) -> int:
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


@contextlib.contextmanager
def _sealed(active: bool):
    """While candidates run as this uid, make this process non-dumpable: its memory (the
    nonces) and descriptors (the judges' pipes) closed to same-uid processes; restored after."""
    if not active:
        yield
        return
    with _seal_lock:
        if _seal_state["users"] == 0:
            _seal_state["before"] = _prctl(PR_GET_DUMPABLE)
            _prctl(PR_SET_DUMPABLE, 0)
        _seal_state["users"] += 1
    try:
        yield
    finally:
        with _seal_lock:
            _seal_state["users"] -= 1
            if _seal_state["users"] == 0 and _seal_state["before"] > 0:
                _prctl(PR_SET_DUMPABLE, 1)


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def _why_it_stopped(end: dict | None, oom: bool, limits: Limits) -> tuple[str, str, int | None]:
    """Error kind, detail and return code from the supervisor's account of the candidate."""
    if oom or (end is not None and end["ended"] == "memory"):  # before timeout: a tree that
        return "memory", f"the process tree exceeded {limits.memory_mb} MB", None  # lost one
    if end is None:
        return "sandbox_error", "the supervisor did not report", None
    if end["ended"] == "timeout":
        return "timeout", f"wall-time limit {limits.wall_s:g}s", None
    sig, code = end["signal"], end["code"]
    if sig is not None:
        name = _signal_name(sig)
        if sig == signal.SIGXCPU:
            return "cpu_limit", f"killed by {name} (CPU-time limit {limits.cpu_s}s)", -sig
        if sig == signal.SIGXFSZ:
            return "file_limit", f"killed by {name} (file-size limit)", -sig
        return "killed", f"killed by signal {name}", -sig
    return "exit", f"exited with status {code} before finishing its tests", code


def _outcome(
    verdict: dict | None, end: dict | None, oom: bool, wall: float, limits: Limits
) -> ExecResult:
    """The judge's verdict, with the failure kind taken from the supervisor where the
    candidate simply stopped answering."""
    extra = {k: end[k] for k in ("layers", "missing", "processes", "peak_rss_mb")} if end else {}
    if verdict is None:
        return ExecResult(False, "sandbox_error", "the judge did not report", wall, extra=extra)
    code = end["code"] if end else None
    if verdict["passed"]:
        return ExecResult(True, None, None, wall, code, verdict["verdict"], extra)
    if verdict["error"] in ("no_answer", "exit") or (
        verdict["error"] == "sandbox_error" and end and end["signal"]
    ):
        error, detail, code = _why_it_stopped(end, oom, limits)
        if verdict["error"] == "exit" and error == "exit":
            detail = verdict["detail"]
    else:
        error, detail = verdict["error"], verdict["detail"]
        if error == "memory" or oom:
            error = "memory"
    return ExecResult(False, error, detail, wall, code, verdict["verdict"], extra)


def _read_capped(pipes: dict, deadline: float) -> dict:
    """Read each pipe to its end (at most REPORT_CAP bytes kept) or until `deadline`."""
    out = {key: b"" for key in pipes}
    sel = selectors.DefaultSelector()
    for key, pipe in pipes.items():
        sel.register(pipe, selectors.EVENT_READ, key)
    while sel.get_map():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        for sk, _ in sel.select(timeout=remaining):
            chunk = os.read(sk.fileobj.fileno(), 1 << 16)
            if not chunk:
                sel.unregister(sk.fileobj)
            elif len(out[sk.data]) < REPORT_CAP:
                out[sk.data] += chunk[: REPORT_CAP - len(out[sk.data])]
    sel.close()
    return out


def _last_json(raw: bytes) -> dict | None:
    lines = raw.decode(errors="replace").strip().splitlines()
    try:
        value = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _verdict(raw: bytes, nonce: str) -> dict | None:
    """The first stdout line of the judge that carries this run's nonce."""
    for line in raw.decode(errors="replace").splitlines():
        if line.startswith(nonce + " "):
            value = _last_json(line[len(nonce) + 1 :].encode())
            if value is not None and isinstance(value.get("passed"), bool):
                return value
    return None


def _send(proc: subprocess.Popen, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        proc.stdin.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        proc.stdin.close()


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL a process and its session (the supervisor's PID namespace dies with it)."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()


class _Run:
    """One candidate's sandbox: work directory, cgroup, channel pipes, two processes."""

    def __init__(self, check: Check, limits: Limits) -> None:
        self.check, self.limits = check, limits
        self.ident = sandbox_identity()
        self.base = Path(tempfile.mkdtemp(prefix="prunekit-sandbox-"))
        self.workdir, self.root = self.base / "work", self.base / "root"
        self.workdir.mkdir()
        self.root.mkdir()
        if self.ident["uid"] != os.getuid():
            os.chown(self.workdir, NOBODY, NOBODY)
        self.cgroup = Cgroup.create(limits) if self.ident["cgroup"] else None

    def settings(self, req_r: int, resp_w: int) -> dict:
        lim, ident = self.limits, self.ident
        drop = NOBODY if ident["uid"] != os.getuid() else None
        nproc = (
            lim.nproc
            if (drop is not None or ident["namespaces"])
            else _user_process_count() + lim.nproc
        )
        return {
            "namespaces": ident["namespaces"],
            "uid": drop,
            "root": str(self.root),
            "workdir": str(self.workdir),
            "ro_paths": ident["ro_paths"],
            "hidden_paths": ident.get("hidden_paths", []),
            "layers": BASE_LAYERS if ident["namespaces"] else [],
            "cgroup_procs": self.cgroup.procs_files if self.cgroup else [],
            "aggregate_memory": self.cgroup is None,
            "entry_point": self.check.entry_point,
            "req_fd": req_r,
            "resp_fd": resp_w,
            "wall_s": lim.wall_s,
            "cpu_s": lim.cpu_s,
            "memory_mb": lim.memory_mb,
            "file_mb": lim.file_mb,
            "nproc": nproc,
        }

    def execute(self) -> ExecResult:
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        interp = self.ident["interpreter"]
        start = time.monotonic()
        common = dict(
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        procs: list[subprocess.Popen] = []
        nonce = secrets.token_hex(16)
        try:
            judge = subprocess.Popen(
                [interp, "-I", "-S", "-c", _launcher(sandbox_judge)],
                cwd="/",
                pass_fds=(req_w, resp_r),
                **common,
            )
            procs.append(judge)
            spec = {
                "nonce": nonce,
                "context": self.check.context,
                "test": self.check.test,
                "entry_point": self.check.entry_point,
                "req_fd": req_w,
                "resp_fd": resp_r,
                "memory_mb": self.limits.judge_memory_mb,
                "cpu_s": self.limits.judge_cpu_s,
            }
            _send(judge, (json.dumps(spec) + "\n").encode())  # before any candidate exists
            box = subprocess.Popen(
                [*_namespace_prefix(), interp, "-I", "-S", "-c", _launcher(sandbox_child)],
                cwd=self.workdir,
                pass_fds=(req_r, resp_w),
                **{**common, "env": {**env, "HOME": "/", "TMPDIR": "/tmp", "OMP_NUM_THREADS": "1"}},
            )
            procs.append(box)
        finally:
            for fd in (req_r, req_w, resp_r, resp_w):
                os.close(fd)
        _send(
            box, (json.dumps(self.settings(req_r, resp_w)) + "\n" + self.check.candidate).encode()
        )
        raw = _read_capped(
            {"judge": judge.stdout, "box": box.stdout}, start + self.limits.wall_s + 10
        )
        for proc in procs:
            _kill(proc)
            proc.wait()
            proc.stdout.close()
        wall = time.monotonic() - start
        oom = self.cgroup.oom_killed() if self.cgroup else False
        end = _last_json(raw["box"])
        if end is not None and self.cgroup:
            end["peak_rss_mb"] = self.cgroup.peak_mb()
        return _outcome(_verdict(raw["judge"], nonce), end, oom, wall, self.limits)

    def close(self) -> None:
        if self.cgroup:
            self.cgroup.destroy()
        remove_tree(self.base)


def remove_tree(top: Path) -> None:
    """Delete a sandbox's folder whatever modes the candidate left (a chmod-000 folder stops
    rmtree for a non-root owner): folders are made searchable top-down first."""
    shutil.rmtree(top, ignore_errors=True)
    if not os.path.lexists(top):
        return
    with contextlib.suppress(OSError):
        os.chmod(top, 0o700)
    for dirpath, dirnames, _ in os.walk(top):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.chmod(path, 0o700)
    shutil.rmtree(top, ignore_errors=True)


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


def run_check(check: Check, limits: Limits = Limits()) -> ExecResult:
    """Run `check.candidate` in the sandbox and `check.test` in the judge; pass iff the tests
    completed on the candidate's plain-data answers."""
    if check.entry_point is not None:
        check_sandbox_can_score()
    run = _Run(check, limits)
    try:
        with _sealed(run.ident["same_uid"]):
            return run.execute()
    finally:
        run.close()


def run_program(program: str, limits: Limits = Limits()) -> ExecResult:
    """Run a self-contained program; `passed` = it reported reaching its end (self-reported:
    for trusted code and diagnostics; use `run_check` to score untrusted code)."""
    return run_check(Check(program, "", None), limits)


def _run_one(check, limits: Limits) -> ExecResult:
    """A Python `Check` in the judge's sandbox; anything else (a compiled-language
    `sandbox_compiled.ProgramCheck`) by its own `execute`."""
    return run_check(check, limits) if isinstance(check, Check) else check.execute(limits)


def check_workers(workers: int | None) -> None:
    """None (the default count) or a whole number >= 1, else one line naming --exec-workers."""
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise PrunekitError(f"--exec-workers must be at least 1, got {workers}")


def run_many(
    items: Sequence,
    limits: Limits = Limits(),
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[ExecResult]:
    """Run checks (Python `Check`s, self-contained programs, or `ProgramCheck`s of compiled
    languages) concurrently, each in its own sandbox; results in input order."""
    check_workers(workers)
    sandbox_identity()  # probe once, before the threads start
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    checks = [Check(c, "", None) if isinstance(c, str) else c for c in items]
    if any(not isinstance(c, Check) or c.entry_point is not None for c in checks):
        check_sandbox_can_score()  # one error before any work, not one per check
    results: list[ExecResult | None] = [None] * len(checks)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_run_one, c, limits): i for i, c in enumerate(checks)}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if progress:
                progress(1)
    return [r for r in results if r is not None]
