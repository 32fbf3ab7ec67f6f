"""Programs in other languages in the sandbox: compile and run stages, judged by the supervisor.

A `ProgramCheck` is a set of source files (the candidate joined with the problem's tests, as
the benchmark assembles them) and the stages that build and run them (`g++`, `javac` + `java`,
`node`, `go test -c` + the test binary). Each stage runs as its own child of the sandbox
supervisor, with the same namespaces, read-only root, uid and cgroup as a Python candidate, and
its own limits (compilers get a compile budget; the program gets the run limits).

How the verdict is obtained in this module (the in-process mode, the fallback for any problem
whose signature has no stubs): the tests run inside the candidate's own
process, so there is no separate judge. The supervisor (outside the candidate's reach: another
user namespace, non-dumpable, its stdout never handed to a stage) reports for each stage how it
ended (`waitpid` status, limits) and the tails of its output files. The evaluator passes a
candidate only if every stage exited 0 within its limits, JavaScript wrote nothing to stderr
(node's `console.assert` only prints), and the last stage's stdout holds the run's marker line:
a random nonce the harness prints after the last test returned, written into the source at
assembly time, after generation. So exiting 0 early fails, and a candidate's own
`main`/`TestMain` is a compile error. Not closed: code that searches its own process or binary
for the nonce and prints it can forge a pass, since it shares the process with the tests. C++,
JavaScript, Go and Java are judged by `sandbox_split` instead: the candidate and the tests in two
sandboxes (this module's `_StagedRun`, with pipe ends passed to the stages), the candidate
answering calls as JSON over a relay, and the verdict the test process's exit status. Output
tails are only ever used to label failures and to find the marker, never to pass a candidate
otherwise.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, replace

from prunekit.evaluation import sandbox_child
from prunekit.evaluation.sandbox import (
    ExecResult,
    Limits,
    _kill,
    _last_json,
    _launcher,
    _namespace_prefix,
    _read_capped,
    _Run,
    _sealed,
    _send,
    _why_it_stopped,
    check_sandbox_can_score,
)

ASSERTION_HINTS = ("AssertionError", "Assertion failed", "--- FAIL", "Assertion `")
DETAIL_CHARS = 300


@dataclass(frozen=True)
class Stage:
    """One command run in the work directory; None limits mean the run limits."""

    name: str
    argv: tuple[str, ...]
    wall_s: float | None = None
    cpu_s: int | None = None
    address_space_mb: int | None = None
    quiet_stderr: bool = False  # any stderr output fails the stage (node's console.assert)


@dataclass(frozen=True)
class ProgramCheck:
    """Files to write, stages to run in order, and the marker the last stage must print."""

    files: tuple[tuple[str, str], ...]
    stages: tuple[Stage, ...]
    marker: str
    env: tuple[tuple[str, str], ...] = ()
    ro_paths: tuple[str, ...] = ()  # host paths the stages need beyond the system folders
    copies: tuple[tuple[str, str], ...] = ()  # (read-only source, name in the work directory)
    file_mb: int = 0  # at least this much work-directory space (a Go build needs ~64 MB)
    nproc: int = 0  # at least this many tasks (a JVM starts ~30 threads)
    entry_point: None = None  # no Python function to serve: the tests run in the program

    def execute(self, limits: Limits) -> ExecResult:
        return run_program_check(self, limits)


def new_marker() -> str:
    """A fresh nonce line for one run (letters and digits only: valid in any source string)."""
    return "PRUNEKIT_TESTS_DONE_" + secrets.token_hex(16)


def stage_limits(stage: Stage, limits: Limits) -> Limits:
    """The limits one stage runs under."""
    return replace(
        limits,
        wall_s=stage.wall_s if stage.wall_s is not None else limits.wall_s,
        cpu_s=stage.cpu_s if stage.cpu_s is not None else limits.cpu_s,
    )


class _StagedRun(_Run):
    """A sandbox whose supervisor runs the check's stages instead of a Python candidate."""

    def __init__(self, check: ProgramCheck, limits: Limits, fds: dict[str, int] | None = None):
        limits = replace(
            limits, file_mb=max(limits.file_mb, check.file_mb), nproc=max(limits.nproc, check.nproc)
        )
        super().__init__(check, limits)  # type: ignore[arg-type]
        self.fds = dict(fds or {})  # pipe ends the stages inherit, named PRUNEKIT_<NAME>_FD

    def settings(self, req_r: int = -1, resp_w: int = -1) -> dict:
        cfg = super().settings(req_r, resp_w)
        check: ProgramCheck = self.check  # type: ignore[assignment]
        cfg["ro_paths"] = [*cfg["ro_paths"], *check.ro_paths] if cfg["namespaces"] else []
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **dict(check.env)}
        env.update({f"PRUNEKIT_{name}_FD": str(fd) for name, fd in self.fds.items()})
        stages = []
        for stage in check.stages:
            lim = stage_limits(stage, self.limits)
            stages.append(
                {
                    "name": stage.name,
                    "argv": list(stage.argv),
                    "env": env,
                    "limits": {
                        "wall_s": lim.wall_s,
                        "cpu_s": lim.cpu_s,
                        "address_space_mb": stage.address_space_mb or self.limits.memory_mb,
                    },
                }
            )
        cfg.update(stages=stages, files=dict(check.files), copies=[list(c) for c in check.copies])
        return cfg

    def total_wall_s(self) -> float:
        """The longest this box can run: every stage to its wall limit."""
        check: ProgramCheck = self.check  # type: ignore[assignment]
        return sum(stage_limits(s, self.limits).wall_s for s in check.stages)

    def launch(self) -> subprocess.Popen:
        """Start the supervisor (its stdout: the report); the stages inherit `self.fds`."""
        box = subprocess.Popen(
            [*_namespace_prefix(), self.ident["interpreter"], "-I", "-S", "-c"]
            + [_launcher(sandbox_child)],
            cwd=self.workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/", "TMPDIR": "/tmp"},
            pass_fds=tuple(self.fds.values()),
            start_new_session=True,
        )
        _send(box, (json.dumps(self.settings()) + "\n").encode())
        return box

    def execute(self) -> ExecResult:
        check: ProgramCheck = self.check  # type: ignore[assignment]
        start = time.monotonic()
        box = self.launch()
        raw = _read_capped({"box": box.stdout}, start + self.total_wall_s() + 15)
        _kill(box)
        box.wait()
        box.stdout.close()
        oom = self.cgroup.oom_killed() if self.cgroup else False
        return judge_stages(
            _last_json(raw["box"]), check, self.limits, oom, time.monotonic() - start
        )


def _detail(text: str) -> str:
    return " ".join(text.split())[:DETAIL_CHARS]


def judge_stages(
    report: dict | None, check: ProgramCheck, limits: Limits, oom: bool, wall: float
) -> ExecResult:
    """The verdict from the supervisor's account: every stage exited 0 within its limits,
    no stderr where a stage must be quiet, and the last stage printed the marker line."""
    if not report or not isinstance(report.get("stages"), list):
        return ExecResult(False, "sandbox_error", "the supervisor did not report", wall)
    extra = {k: report.get(k) for k in ("layers", "missing")}
    if report.get("setup_error"):
        return ExecResult(False, "sandbox_error", _detail(report["setup_error"]), wall, extra=extra)
    ends = report["stages"]
    for spec, end in zip(check.stages, ends):
        extra[f"{spec.name}_peak_rss_mb"] = end.get("peak_rss_mb")
        stopped = end.get("ended") is not None or end.get("signal") is not None
        out, err = str(end.get("stdout", "")), str(end.get("stderr", ""))
        if stopped or end.get("code") != 0:
            error, detail, code = _why_it_stopped(end, oom, stage_limits(spec, limits))
            if spec.name == "compile":
                why = _detail(err or out) if error == "exit" else detail
                return ExecResult(False, "compile", why, wall, code, "exit-status", extra)
            if error in ("exit", "killed") and (
                end.get("signal") == signal.SIGABRT or any(h in err + out for h in ASSERTION_HINTS)
            ):
                error = "assertion"
            if error in ("exit", "killed", "assertion"):
                detail = _detail(err or out) or detail
            return ExecResult(False, error, detail, wall, code, "exit-status", extra)
        if spec.quiet_stderr and err.strip():
            kind = "assertion" if "Assertion failed" in err else "stderr"
            return ExecResult(False, kind, _detail(err), wall, 0, "exit-status", extra)
    if len(ends) != len(check.stages):
        return ExecResult(False, "sandbox_error", "a stage did not report", wall, extra=extra)
    if check.marker not in str(ends[-1].get("stdout", "")).splitlines():
        detail = "the program exited 0 before its tests finished (no end marker)"
        return ExecResult(False, "no_marker", detail, wall, 0, "exit-status", extra)
    return ExecResult(True, None, None, wall, 0, "exit-status", extra)


def run_program_check(check: ProgramCheck, limits: Limits | None = None) -> ExecResult:
    """Compile and run `check` in the sandbox; pass iff `judge_stages` says so."""
    check_sandbox_can_score()
    run = _StagedRun(check, limits or Limits())
    try:
        with _sealed(run.ident["same_uid"]):
            return run.execute()
    finally:
        run.close()


def versions(argvs: dict[str, list[str]]) -> dict[str, str]:
    """The first output line of each version command (for the report)."""
    out = {}
    for name, argv in argvs.items():
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            text = (proc.stdout or proc.stderr).strip().splitlines()
            out[name] = text[0] if text else "unknown"
        except (OSError, subprocess.SubprocessError):
            out[name] = "unknown"
    return out
