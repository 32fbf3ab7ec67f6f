"""The sandbox: no candidate can fake a pass, escape, or crash or hang the evaluator.

The attacks live in `sandbox_probes` so that the same list runs here (as the test user) and,
through `setpriv`, as an unprivileged uid with the system python3.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sandbox_probes import NEEDS_NAMESPACES, POSIX, PROBES, TIGHT

from prunekit.errors import PrunekitError
from prunekit.evaluation import sandbox
from prunekit.evaluation.humaneval import data_file
from prunekit.evaluation.sandbox import (
    Check,
    ExecResult,
    Limits,
    run_check,
    run_many,
    run_program,
)

PROBE_SCRIPT = Path(__file__).with_name("sandbox_probes.py")
NOBODY = 65534


def _no_sandbox_processes_left() -> bool:
    """No process on the host still runs the sandbox's supervisor or candidate code."""
    for _ in range(50):
        left = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"sandbox_child.py" in cmd and b"exec(compile(" in cmd:
                left.append(pid)
        if not left:
            return True
        import time

        time.sleep(0.1)
    return False


@pytest.mark.parametrize("name", sorted(PROBES))
def test_probe_holds(name):
    if name in NEEDS_NAMESPACES and not sandbox.sandbox_identity()["namespaces"]:
        pytest.skip("unshare --user is not permitted on this host; the result lists it as missing")
    held, seen = PROBES[name]()
    assert held, seen


def test_probes_hold_as_an_unprivileged_user(tmp_path):
    """The same attacks, run by uid 65534 (no root, no cgroup): everything still holds."""
    python3 = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0:
        pytest.skip("already unprivileged: test_probe_holds covers this uid")
    if shutil.which("setpriv") is None or python3 is None:
        pytest.skip("needs setpriv (util-linux) and a system python3 to switch to uid 65534")
    if subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                       python3, "-c", f"open({str(PROBE_SCRIPT)!r}).read()"],
                      capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip(f"uid {NOBODY} cannot read {PROBE_SCRIPT} (checkout not world-readable)")
    out = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python3,
         str(PROBE_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "PRUNEKIT_ANSWER_KEY": str(data_file())},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert json.loads(results.pop("_identity")[1])["uid"] == NOBODY
    failed = {k: v for k, v in results.items() if not v[0]}
    assert set(results) == set(PROBES) and not failed, failed


def test_passing_and_failing_programs():
    r = run_program("def f():\n    return 1\nassert f() == 1\n", TIGHT)
    assert r.passed and r.verdict == "self-reported"
    r = run_program("assert 1 == 2, 'wrong'", TIGHT)
    assert (r.passed, r.error, r.detail) == (False, "assertion", "wrong")
    r = run_program("def f(:\n", TIGHT)
    assert (r.passed, r.error) == (False, "syntax")
    r = run_program("raise KeyError('x')", TIGHT)
    assert (r.passed, r.error) == (False, "exception") and "KeyError" in r.detail


def test_checks_are_judged_on_returned_values():
    good = Check("def f(x):\n    return x + 1\n", "assert candidate(1) == 2\n", "f")
    wrong = Check("def f(x):\n    return x\n", "assert candidate(1) == 2, 'off by one'\n", "f")
    missing = Check("def g(x):\n    return x\n", "assert candidate(1) == 1\n", "f")
    r_good, r_wrong, r_missing = run_many([good, wrong, missing], TIGHT, workers=2)
    assert (r_good.passed, r_good.verdict) == (True, "judged")
    assert (r_wrong.passed, r_wrong.error, r_wrong.detail) == (False, "assertion", "off by one")
    assert (r_missing.passed, r_missing.error) == (False, "exception")
    assert "KeyError" in r_missing.detail


def test_context_helpers_are_the_trusted_ones():
    """The test uses the context's helper even if the candidate redefines it."""
    check = Check(
        "def helper(x):\n    return 0\ndef f(x):\n    return helper(x)\n",
        "assert candidate(3) == helper(3)\n",
        "f",
        context="def helper(x):\n    return x * 2\n",
    )
    assert not run_check(check, TIGHT).passed


def test_memory_hog_fails_with_memory_error():
    r = run_program("x = bytearray(1 << 30)\n", TIGHT)
    assert (r.passed, r.error) == (False, "memory")


def test_escaped_grandchild_is_killed():
    """A descendant that leaves the session (setsid) and is orphaned is still killed."""
    escape = POSIX + (
        "import time\n"
        "if posix.fork() == 0:\n"
        "    posix.setsid()\n"
        "    if posix.fork() == 0:\n"
        "        while True:\n"
        "            time.sleep(0.05)\n"
        "    posix._exit(0)\n"
        "time.sleep(60)\n"
    )
    r = run_program(escape, TIGHT)
    assert (r.passed, r.error) == (False, "timeout")
    assert r.wall_s < TIGHT.wall_s + 3
    assert _no_sandbox_processes_left()


def test_cannot_signal_the_evaluator():
    r = run_program("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", TIGHT)
    assert (r.passed, r.error) == (False, "sandbox_violation")
    r = run_program(POSIX + f"posix.kill({os.getpid()}, 9)\n", TIGHT)
    assert not r.passed  # and this process is still here to check it


def test_huge_output_is_capped():
    r = run_program("while True:\n    print('x' * 10000)\n", TIGHT)
    assert not r.passed and r.error in ("exception", "file_limit")


def test_without_namespaces_the_result_says_so_and_verdicts_hold(monkeypatch):
    monkeypatch.setattr(sandbox, "_namespace_prefix", lambda: ())
    sandbox.sandbox_identity.cache_clear()
    try:
        ident = sandbox.sandbox_identity()
        assert not ident["namespaces"] and any("namespaces" in m for m in ident["missing"])
        good = Check("def f(x):\n    return x + 1\n", "assert candidate(1) == 2\n", "f")
        forged = Check(
            "class A:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return A()\n",
            "assert candidate(1) == 2\n",
            "f",
        )
        r_good, r_forged = run_many([good, forged], TIGHT)
        assert r_good.passed and "mount_namespace" not in r_good.extra["layers"]
        assert not r_forged.passed
    finally:
        sandbox.sandbox_identity.cache_clear()


def _sysv_segments() -> int:
    try:
        return len(Path("/proc/sysvipc/shm").read_text().splitlines()) - 1
    except OSError:
        return 0


@pytest.mark.parametrize("namespaces", [True, False], ids=["namespaces", "fallback"])
def test_shared_memory_counts_in_the_polled_budget(monkeypatch, namespaces):
    """Without a cgroup, memfd and System V memory (in no process's RSS) still count against
    the budget; the fallback, without an IPC namespace, removes the segments left."""
    monkeypatch.setattr(sandbox, "cgroup_support", lambda: None)
    if not namespaces:
        monkeypatch.setattr(sandbox, "_namespace_prefix", lambda: ())
    sandbox.sandbox_identity.cache_clear()
    before = _sysv_segments()
    try:
        assert sandbox.sandbox_identity()["cgroup"] is None
        if namespaces and not sandbox.sandbox_identity()["namespaces"]:
            pytest.skip("unshare --user is not permitted on this host")
        for probe in ("memfd_outside_the_rss", "sysv_segment_outside_the_rss"):
            held, seen = PROBES[probe]()
            assert held, f"{probe}: {seen}"
    finally:
        sandbox.sandbox_identity.cache_clear()
    assert _sysv_segments() <= before


def test_unsafe_mode_is_refused_before_any_work(monkeypatch):
    """Candidates that would run as our own uid: one clear line, unless the user opts in."""
    monkeypatch.setattr(sandbox, "sandbox_identity", lambda: {"same_uid": True})
    monkeypatch.delenv(sandbox.UNSAFE_SAME_UID, raising=False)
    with pytest.raises(PrunekitError, match="PRUNEKIT_UNSAFE_SAME_UID_SANDBOX=1") as err:
        run_many([Check("def f():\n    return 1\n", "assert candidate() == 1\n", "f")])
    assert "\n" not in str(err.value) and "user namespaces" in str(err.value)
    monkeypatch.setenv(sandbox.UNSAFE_SAME_UID, "1")
    sandbox.check_sandbox_can_score()


def _judge_peak_mb(check: Check, limits: Limits) -> tuple[ExecResult, float]:
    """Run `check` with the judge's peak RSS read from its /proc/<pid>/status as it ends."""
    import threading
    import time

    peaks: dict[int, int] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if b"sandbox_judge.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        status = Path(f"/proc/{pid}/status").read_text()
                        hwm = int(status.split("VmHWM:")[1].split()[0])
                        peaks[int(pid)] = max(peaks.get(int(pid), 0), hwm)
                except (OSError, IndexError, ValueError):
                    continue
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_check(check, limits)
    finally:
        done.set()
        watcher.join()
    return result, max(peaks.values(), default=0) / 1024


def test_a_huge_answer_is_refused_before_the_judge_decodes_it():
    """An answer of 900k ints (13 MB, within the 32 MB frame) once cost the judge hundreds of
    MB to decode; now any answer over 1 MB is refused unread."""
    big = Check("def f(x):\n    return list(range(900_000))\n", "assert candidate(1) == 2\n", "f")
    r, peak = _judge_peak_mb(big, Limits(wall_s=10.0, cpu_s=5, memory_mb=512))
    assert (r.passed, r.error) == (False, "bad_return") and "cap" in r.detail
    assert peak < 100, peak


def test_the_judge_has_its_own_memory_limit():
    """Even the trusted tests cannot grow the judge past `judge_memory_mb`."""
    check = Check(
        "def f(x):\n    return x\n", "x = bytearray(1 << 30)\nassert candidate(1) == 1\n", "f"
    )
    r = run_check(check, Limits(wall_s=5.0, cpu_s=2, memory_mb=256, judge_memory_mb=256))
    assert (r.passed, r.error) == (False, "exception") and "MemoryError" in r.detail


def test_limits_default_fit_humaneval():
    assert Limits().wall_s >= 5 and Limits().memory_mb >= 512
