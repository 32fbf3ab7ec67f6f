"""Compiled-language candidates judged by a separate test process: two sandboxes and a relay.

A `SplitCheck` is two `ProgramCheck`s. The candidate program (the candidate's code and a
generated server stub) answers calls; the test program (the problem's tests, with a generated
client stub in place of the function under test) makes them. Each is built and run in its own
sandbox (its own supervisor, namespaces, read-only root, work directory, uid and cgroup), so the
candidate cannot see, signal, trace or write anything of the test process. This process (the
evaluator, trusted) relays between them over four pipes, one JSON line per frame: the tests send
`[args...]`, the candidate answers `{"value": v}`, `{"raise": text}` or `{"bad": text}` (a
result it could not encode). Every frame is parsed and re-serialised here, so the test process
only ever parses well-formed JSON of bounded size, and decodes it into the declared types.

Verdict: the test program's run stage exited 0 and printed its end marker (a nonce in the test
program, which runs no candidate code), as the tests' supervisor saw it. The candidate's exit
status and output never pass anything: if it stops answering, the tests get `{"gone": ...}` and
the client stub exits with GONE_EXIT; an answer that does not fit the declared type exits with
BAD_EXIT. The wall-time limit counts from the moment both programs are up (the candidate's
ready line and the first call), so one side's compile does not eat the other's run time.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import time
from dataclasses import dataclass, replace

from prunekit.evaluation.sandbox import (
    ExecResult,
    Limits,
    _kill,
    _last_json,
    _sealed,
    _why_it_stopped,
    check_sandbox_can_score,
)
from prunekit.evaluation.sandbox_compiled import (
    ASSERTION_HINTS,
    ProgramCheck,
    _detail,
    _StagedRun,
    stage_limits,
)

VERDICT = "split-process"  # ExecResult.verdict of a split run
READY = b'{"ready":true}'
GONE_EXIT = 70  # the client stub: the candidate stopped answering
BAD_EXIT = 71  # the client stub: an answer that does not fit the declared type
MAX_FRAME = 8 << 20  # bytes in one frame (a line) either way
REPORT_CAP = 1 << 16
AFTER_TESTS_S = 5.0  # how long the candidate may take to exit once the tests are done


@dataclass(frozen=True)
class SplitCheck:
    """A candidate program serving calls and a test program making them (see module doc)."""

    candidate: ProgramCheck
    tests: ProgramCheck
    entry_point: None = None  # no Python function to serve

    def execute(self, limits: Limits) -> ExecResult:
        return run_split_check(self, limits)


def _stretched(check: ProgramCheck, limits: Limits, wait_s: float) -> ProgramCheck:
    """The check with its run stage allowed `wait_s` more wall time (waiting for the other
    program to compile); the relay enforces the run limit itself from when both are up."""
    stages = tuple(
        replace(s, wall_s=stage_limits(s, limits).wall_s + wait_s) if s.name == "run" else s
        for s in check.stages
    )
    return replace(check, stages=stages)


def _compile_s(check: ProgramCheck, limits: Limits) -> float:
    return sum(stage_limits(s, limits).wall_s for s in check.stages if s.name != "run")


def canonical_frame(line: bytes, keys: tuple[str, ...] | None) -> bytes:
    """One frame parsed and re-serialised: a JSON list (a call) where `keys` is None, else a
    one-key object with a key in `keys`; ValueError if it is anything else."""
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise ValueError(f"not JSON ({type(exc).__name__})") from None
    if keys is None and not isinstance(value, list):
        raise ValueError("a call is not a JSON list")
    if keys is not None and not (
        isinstance(value, dict) and len(value) == 1 and next(iter(value)) in keys
    ):
        raise ValueError("an answer is not one of " + "/".join(keys))
    if (
        isinstance(value, dict)
        and "value" not in value
        and not isinstance(next(iter(value.values())), str)
    ):
        raise ValueError("an error answer without a message")
    try:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"
    except (RecursionError, ValueError) as exc:
        raise ValueError(str(exc)) from None


class _Relay:
    """The evaluator's side of the two pipes pairs: frames between the boxes, the run clock."""

    def __init__(self, fds: dict[str, int], boxes: dict, wall_s: float, hard_deadline: float):
        self.fds, self.boxes, self.wall_s = fds, boxes, wall_s
        self.hard_deadline = hard_deadline
        self.sel = selectors.DefaultSelector()
        self.inbuf = {"call": b"", "ans": b""}
        self.outbuf = {"reply": b"", "req": b""}
        self.reports = {name: b"" for name in boxes}
        self.open_reports = set(boxes)
        self.queue: list[bytes] = []
        self.ready_t = self.first_t = None
        self.waiting = False  # a call went to the candidate, its answer has not come back
        self.gone = False  # the candidate's answer pipe closed, or it broke the protocol
        self.info: dict = {"calls": 0, "timeout": False, "raised": None, "protocol": None}
        self.after_tests: float | None = None

    # -- plumbing -------------------------------------------------------------------------
    def _watch(self) -> None:
        for name in ("call", "ans"):
            self.sel.register(self.fds[name], selectors.EVENT_READ, name)
        for name, box in self.boxes.items():
            os.set_blocking(box.stdout.fileno(), False)
            self.sel.register(box.stdout.fileno(), selectors.EVENT_READ, "box:" + name)
        for name in ("reply", "req"):
            os.set_blocking(self.fds[name], False)

    def _close(self, name: str) -> None:
        fd = self.fds.pop(name, None)
        if fd is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(fd)
        os.close(fd)
        self.outbuf.pop(name, None)

    def _queue_write(self, name: str, data: bytes) -> None:
        if name in self.fds and name in self.outbuf:
            self.outbuf[name] += data
            self._flush(name)

    def _flush(self, name: str) -> None:
        fd = self.fds.get(name)
        if fd is None:
            return
        try:
            while self.outbuf[name]:
                n = os.write(fd, self.outbuf[name][: 1 << 16])
                self.outbuf[name] = self.outbuf[name][n:]
        except BlockingIOError:
            pass
        except OSError:  # the reader is gone
            self._close(name)
            return
        want = selectors.EVENT_WRITE if self.outbuf[name] else 0
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(fd)
        if want:
            self.sel.register(fd, want, name)

    # -- frames ---------------------------------------------------------------------------
    def _to_tests(self, frame: bytes) -> None:
        self._queue_write("reply", frame)

    def _give_up_on_candidate(self, why: str | None = None) -> None:
        if why and not self.info["protocol"]:
            self.info["protocol"] = why
        self.gone = True
        self._close("req")
        if "ans" in self.fds:
            self._close("ans")
        if self.waiting or self.queue:
            self._to_tests(b'{"gone":"the candidate stopped answering"}\n')
        self.waiting, self.queue = False, []

    def _forward_next(self) -> None:
        if self.gone or self.waiting or not self.queue or self.ready_t is None:
            return
        self.waiting = True
        self.info["calls"] += 1
        self._queue_write("req", self.queue.pop(0))

    def _on_call(self, line: bytes) -> None:
        if self.first_t is None:
            self.first_t = time.monotonic()
        try:
            frame = canonical_frame(line, None)
        except ValueError as exc:  # the test program is ours: a harness bug, not a verdict
            self.info["protocol"] = f"the test program sent a bad call: {exc}"
            self._to_tests(b'{"gone":"bad call"}\n')
            return
        if self.gone:
            self._to_tests(b'{"gone":"the candidate stopped answering"}\n')
            return
        self.queue.append(frame)
        self._forward_next()

    def _on_answer(self, line: bytes) -> None:
        if self.ready_t is None:
            if line.strip() != READY:
                self._give_up_on_candidate("the candidate wrote to its answer pipe before its stub")
                return
            self.ready_t = time.monotonic()
            self._forward_next()
            return
        if not self.waiting:
            self._give_up_on_candidate("the candidate answered a call that was not made")
            return
        try:
            frame = canonical_frame(line, ("value", "raise", "bad"))
        except ValueError as exc:
            self._give_up_on_candidate(f"the candidate sent a malformed answer: {exc}")
            return
        if frame.startswith(b'{"raise"'):
            self.info["raised"] = json.loads(frame)["raise"][:300]
        self.waiting = False
        self._to_tests(frame)
        self._forward_next()

    def _lines(self, name: str, chunk: bytes):
        self.inbuf[name] += chunk
        while b"\n" in self.inbuf[name]:
            line, self.inbuf[name] = self.inbuf[name].split(b"\n", 1)
            yield line
        if len(self.inbuf[name]) > MAX_FRAME:
            self.inbuf[name] = b""
            yield None

    def _read(self, name: str) -> None:
        try:
            chunk = os.read(self.fds[name], 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(name)
            if name == "ans" and not self.gone:
                self._give_up_on_candidate()
            return
        for line in self._lines(name, chunk):
            if name == "call" and line is None:
                self.info["protocol"] = f"the test program sent a call over {MAX_FRAME} bytes"
                self._to_tests(b'{"gone":"bad call"}\n')
            elif name == "call":
                self._on_call(line)
            elif line is None:
                self._give_up_on_candidate(f"the candidate sent a frame over {MAX_FRAME} bytes")
            else:
                self._on_answer(line)
            if name == "ans" and self.gone:
                return

    def _read_report(self, name: str) -> None:
        box = self.boxes[name]
        try:
            chunk = os.read(box.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            if len(self.reports[name]) < REPORT_CAP:
                self.reports[name] += chunk[: REPORT_CAP - len(self.reports[name])]
            return
        self.sel.unregister(box.stdout.fileno())
        self.open_reports.discard(name)
        if name == "tests":  # done: the candidate reads end-of-file and exits
            self._close("req")
            if self.ready_t is not None:  # else let it finish its start (a compile to report)
                self.after_tests = time.monotonic() + AFTER_TESTS_S
        elif self.ready_t is None and "tests" in self.open_reports:
            _kill(self.boxes["tests"])  # it never came up (compile error): nothing to judge

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> dict:
        self._watch()
        while self.open_reports:
            now = time.monotonic()
            deadline = self.hard_deadline
            if self.ready_t is not None and self.first_t is not None:
                run_deadline = max(self.ready_t, self.first_t) + self.wall_s
                if now > run_deadline and "tests" in self.open_reports:
                    self.info["timeout"] = True
                    break
                deadline = min(deadline, run_deadline)
            if self.after_tests is not None:
                if now > self.after_tests:
                    break
                deadline = min(deadline, self.after_tests)
            if now > self.hard_deadline:
                self.info["timeout"] = True
                break
            for key, events in self.sel.select(timeout=max(0.0, deadline - now) + 0.01):
                name = key.data
                if name.startswith("box:"):
                    self._read_report(name[4:])
                elif events & selectors.EVENT_WRITE:
                    self._flush(name)
                elif name in self.fds:
                    self._read(name)
        for box in self.boxes.values():
            _kill(box)
        for name in list(self.fds):
            self._close(name)
        self.sel.close()
        self.info.update(ready=self.ready_t is not None, reports=self.reports)
        return self.info


def _failed(end: dict) -> bool:
    return end.get("ended") is not None or end.get("signal") is not None or end.get("code") != 0


def _stages(report: dict | None) -> dict | None:
    if not report or not isinstance(report.get("stages"), list) or report.get("setup_error"):
        return None
    return {s.get("name"): s for s in report["stages"] if isinstance(s, dict)}


def _candidate_failure(end: dict | None, oom: bool, limits: Limits) -> tuple[str, str]:
    """Why the candidate stopped answering, from its supervisor's account."""
    if end is None:
        return "sandbox_error", "the candidate program did not start"
    if not _failed(end):
        return "exit", "the candidate exited (status 0) before answering every call"
    error, detail, _ = _why_it_stopped(end, oom, limits)
    if error in ("exit", "killed"):
        detail = _detail(str(end.get("stderr", ""))) or detail
    return error, detail


def judge_split(
    reports: dict, relay: dict, check: SplitCheck, limits: Limits, ooms: dict, wall: float
) -> ExecResult:
    """The verdict: the test program's run exited 0 and printed its marker (see module doc);
    for a failure, the kind from whichever side explains it."""
    extra = {"verdict_mode": "split", "calls": relay["calls"]}
    cand, tests = _stages(reports.get("candidate")), _stages(reports.get("tests"))

    def fail(error: str, detail: str, code: int | None = None) -> ExecResult:
        return ExecResult(False, error, detail, wall, code, VERDICT, extra)

    for name, stages in (("candidate", cand), ("tests", tests)):
        rep = reports.get(name) or {}
        extra[f"{name}_layers"], extra[f"{name}_missing"] = rep.get("layers"), rep.get("missing")
        for stage in (stages or {}).values():
            extra[f"{name}_{stage.get('name')}_peak_rss_mb"] = stage.get("peak_rss_mb")
    extra["layers"], extra["missing"] = extra["candidate_layers"], extra["candidate_missing"]
    compile_end = (cand or {}).get("compile")
    if compile_end is not None and _failed(compile_end):
        spec = next(s for s in check.candidate.stages if s.name == "compile")
        error, detail, _ = _why_it_stopped(compile_end, False, stage_limits(spec, limits))
        err = str(compile_end.get("stderr", "")) or str(compile_end.get("stdout", ""))
        return fail("compile", _detail(err) if error == "exit" else detail)
    if relay["timeout"]:
        return fail("timeout", f"wall-time limit {limits.wall_s:g}s")
    tc = (tests or {}).get("compile")
    if tc is not None and _failed(tc):
        return fail("sandbox_error", "the test program did not compile: " + _detail(tc["stderr"]))
    if not relay["ready"]:  # the candidate program never came up
        if cand is None:
            why = (reports.get("candidate") or {}).get("setup_error") or "did not report"
            return fail("sandbox_error", "the candidate's supervisor: " + _detail(str(why)))
        return fail(*_candidate_failure(cand.get("run"), ooms.get("candidate", False), limits))
    if tests is None:
        why = (reports.get("tests") or {}).get("setup_error") or "did not report"
        return fail("sandbox_error", "the tests' supervisor: " + _detail(str(why)))
    run = tests.get("run")
    if run is None:
        return fail("sandbox_error", "the test program did not run")
    out, err = str(run.get("stdout", "")), str(run.get("stderr", ""))
    spec = next(s for s in check.tests.stages if s.name == "run")
    if not _failed(run):
        if spec.quiet_stderr and err.strip():
            kind = "assertion" if "Assertion failed" in err else "stderr"
            return fail(kind, _detail(err), 0)
        if check.tests.marker in out.splitlines():
            return ExecResult(True, None, None, wall, 0, VERDICT, extra)
        return fail("no_marker", "the test program ended before its last test", 0)
    code = run.get("code")
    if run.get("ended") is None and run.get("signal") is None and code == GONE_EXIT:
        if relay["protocol"]:
            return fail("bad_return", relay["protocol"], code)
        end = (cand or {}).get("run")
        return fail(*_candidate_failure(end, ooms.get("candidate", False), limits))
    if run.get("ended") is None and run.get("signal") is None and code == BAD_EXIT:
        return fail("bad_return", _detail(err) or "an answer of the wrong type", code)
    if relay["raised"] is not None:
        return fail("exception", relay["raised"], code)
    error, detail, code = _why_it_stopped(run, ooms.get("tests", False), stage_limits(spec, limits))
    if error in ("exit", "killed") and (
        run.get("signal") == signal.SIGABRT or any(h in err + out for h in ASSERTION_HINTS)
    ):
        error = "assertion"
    if error in ("exit", "killed", "assertion"):
        detail = _detail(err or out) or detail
    return fail(error, detail, code)


def run_split_check(check: SplitCheck, limits: Limits | None = None) -> ExecResult:
    """Build and run both programs in their own sandboxes, relay the calls, and judge."""
    check_sandbox_can_score()
    limits = limits or Limits()
    cand_check = _stretched(check.candidate, limits, _compile_s(check.tests, limits))
    test_check = _stretched(check.tests, limits, _compile_s(check.candidate, limits))
    req_r, req_w = os.pipe()  # evaluator -> candidate
    ans_r, ans_w = os.pipe()  # candidate -> evaluator
    call_r, call_w = os.pipe()  # tests -> evaluator
    reply_r, reply_w = os.pipe()  # evaluator -> tests
    theirs = [req_r, ans_w, call_w, reply_r]  # closed here once the boxes hold them
    ours = {"req": req_w, "ans": ans_r, "call": call_r, "reply": reply_w}  # the relay's
    runs: dict[str, _StagedRun] = {}
    boxes: dict = {}
    start = time.monotonic()
    try:
        runs["candidate"] = _StagedRun(cand_check, limits, {"IN": req_r, "OUT": ans_w})
        runs["tests"] = _StagedRun(test_check, limits, {"IN": reply_r, "OUT": call_w})
        with _sealed(runs["tests"].ident["same_uid"]):
            for name in ("tests", "candidate"):
                boxes[name] = runs[name].launch()
            for fd in theirs:
                os.close(fd)
            theirs = []
            hard = start + max(r.total_wall_s() for r in runs.values()) + 15
            fds, ours = ours, {}
            relay = _Relay(fds, boxes, limits.wall_s, hard).run()
            reports = {}
            for name, box in boxes.items():
                box.wait()
                rest = b""
                with contextlib.suppress(OSError, TypeError):
                    rest = box.stdout.read() or b""
                box.stdout.close()
                reports[name] = _last_json(relay["reports"][name] + rest)
            ooms = {n: bool(r.cgroup and r.cgroup.oom_killed()) for n, r in runs.items()}
            return judge_split(reports, relay, check, limits, ooms, time.monotonic() - start)
    finally:
        for fd in [*theirs, *ours.values()]:
            with contextlib.suppress(OSError):
                os.close(fd)
        for box in boxes.values():
            _kill(box)
            with contextlib.suppress(Exception):
                box.wait(timeout=5)
        for run in runs.values():
            run.close()
