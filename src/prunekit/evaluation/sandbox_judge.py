"""The trusted judge: runs a check's tests against the candidate's plain return values.

Started by `sandbox.run_check` as `python -I -S -c <sandbox_wire + this file>` outside the
candidate's sandbox. It executes the trusted context and tests; every call of the function
under test becomes a request to the candidate process, and the answer comes back as plain
data (`sandbox_wire.decode`), so no object of the candidate's ever runs here. The verdict is
this process's stdout line that starts with the run's nonce (given on stdin, which the judge
has consumed before the candidate starts): the candidate has no handle on that pipe. The
judge makes itself non-dumpable first, so that where a candidate shares its uid (no
namespaces, not root) it still cannot read the judge's memory or open its descriptors
through /proc, ptrace or pidfd_getfd.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import sys

with contextlib.suppress(ImportError):  # launched with -I: sandbox_wire's source ran first
    from prunekit.evaluation.sandbox_wire import (
        MAX_ANSWER,
        WireError,
        decode,
        encode,
        read_frame,
        write_frame,
    )


class CandidateError(Exception):
    """The candidate raised something the tests cannot be handed as-is."""


class NoAnswer(Exception):
    """The candidate process stopped answering (exited, killed, or timed out)."""


def _raised(name: str, detail: str) -> BaseException:
    """The builtin exception the candidate raised (tests may expect one), else CandidateError."""
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(detail)
        except Exception:
            pass
    return CandidateError(f"{name}: {detail}")


class Proxy:
    """Stands for the candidate's function: each call is answered by the candidate process."""

    def __init__(self, req_fd: int, resp_fd: int) -> None:
        self.req_fd, self.resp_fd = req_fd, resp_fd

    def __call__(self, *args: object, **kwargs: object) -> object:
        write_frame(self.req_fd, {"args": encode(list(args)), "kwargs": encode(kwargs)})
        answer = read_frame(self.resp_fd, MAX_ANSWER)
        if answer is None:
            raise NoAnswer("the candidate stopped answering")
        if "value" in answer:
            return decode(answer["value"])
        if "raise" in answer:
            name, detail = str(answer["raise"]), str(answer.get("detail", ""))[:300]
            if name in ("StopIteration", "StopAsyncIteration"):
                # as PEP 479 does for generators: raised here it would read as the end of the
                # test's map()/filter()/zip() and let all(map(candidate, ...)) pass unchecked
                raise CandidateError(f"{name} escaped the candidate: {detail}")
            raise _raised(name, detail)
        raise WireError(str(answer.get("detail", "bad answer"))[:300])


def judge(spec: dict) -> dict:
    """The verdict on one candidate: {'passed', 'error', 'detail'}."""
    resp_fd, req_fd = spec["resp_fd"], spec["req_fd"]
    try:
        hello = read_frame(resp_fd, MAX_ANSWER)
    except WireError as exc:
        return _fail("bad_return", str(exc))
    if hello is None:
        return _fail("no_answer", "the candidate ended before it was ready")
    if hello.get("ready") is not True:
        return _fail(str(hello.get("error", "exception")), str(hello.get("detail", ""))[:300])
    if spec["entry_point"] is None:  # a lone program: only its own word says it finished
        return {"passed": True, "error": None, "detail": None, "verdict": "self-reported"}
    proxy = Proxy(req_fd, resp_fd)
    namespace: dict = {"__name__": "__judge__"}
    try:
        exec(compile(spec["context"], "<context>", "exec"), namespace)
    except Exception:
        namespace = {"__name__": "__judge__"}  # tests rarely need the prompt's helpers
    namespace[spec["entry_point"]] = proxy
    namespace["candidate"] = proxy
    try:
        exec(compile(spec["test"], "<test>", "exec"), namespace)
    except NoAnswer as exc:
        return _fail("no_answer", str(exc))
    except WireError as exc:
        return _fail("bad_return", str(exc))
    except CandidateError as exc:
        return _fail("exception", str(exc))
    except AssertionError as exc:
        return _fail("assertion", str(exc)[:200])
    except BaseException as exc:  # noqa: BLE001 - any failure of the tests is a failed check
        return _fail("exception", f"{type(exc).__name__}: {exc}"[:300])
    return {"passed": True, "error": None, "detail": None, "verdict": "judged"}


def _fail(error: str, detail: str) -> dict:
    return {"passed": False, "error": error, "detail": detail, "verdict": "judged"}


def seal() -> bool:
    """PR_SET_DUMPABLE 0: memory, /proc/<pid>/fd and ptrace closed to same-uid processes."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0
    except (ImportError, OSError, AttributeError):
        return False


def set_limits(spec: dict) -> None:
    """Address space and CPU time for the judge itself (answers are capped before decoding;
    these bound what the trusted tests do with them)."""
    import resource

    for kind, value in (
        (resource.RLIMIT_AS, spec.get("memory_mb", 0) << 20),
        (resource.RLIMIT_CPU, spec.get("cpu_s", 0)),
        (resource.RLIMIT_CORE, 0),
    ):
        hard = resource.getrlimit(kind)[1]
        if value or kind == resource.RLIMIT_CORE:
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(kind, (value, value if kind != resource.RLIMIT_CPU else hard))


def main() -> None:
    seal()
    spec = json.loads(sys.stdin.readline())
    set_limits(spec)
    verdict = judge(spec)
    os.close(spec["req_fd"])  # the candidate sees end of input and exits
    sys.stdout.write(f"{spec['nonce']} {json.dumps(verdict)}\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
