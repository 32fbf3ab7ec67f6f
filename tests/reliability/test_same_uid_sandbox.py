"""The sandbox's weakest mode: no user namespaces and no root, so candidates run as the
evaluator's own uid. Scoring is refused there unless the user opts in; with the opt-in, the
attack of the review (the nonce read from the judge's memory, a "passed" line written to its
stdout through /proc) finds every door closed, and nothing a candidate starts outlives it.

Each test runs a script as uid 65534 with the system python3, the kernel's namespaces hidden
from prunekit (as on a host that forbids them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
NOBODY = 65534

PRELUDE = textwrap.dedent(
    f"""
    import json, os, sys, time
    sys.path.insert(0, {str(SRC)!r})
    from prunekit.errors import PrunekitError
    from prunekit.evaluation import sandbox
    from prunekit.evaluation.sandbox import Check, Limits, run_check, run_many, run_program
    sandbox._namespace_prefix = lambda: ()  # as on a kernel without unprivileged namespaces
    LIMITS = Limits(wall_s=5.0, cpu_s=3, memory_mb=256, file_mb=1, nproc=16)
    assert sandbox.sandbox_identity()["same_uid"], sandbox.sandbox_identity()
    """
)
# The candidate's side of the attack: every process running the judge or the evaluator.
POSIX = (
    "import gc, re\n"
    "posix = [m for m in gc.get_objects()\n"
    "         if type(m).__name__ == 'module' and m.__name__ == 'posix'][0]\n"
)
FORGED = '{"passed": true, "error": null, "detail": null, "verdict": "judged"}'
ATTACK = POSIX + textwrap.dedent(
    f"""
    def _stat(pid):
        with open(f'/proc/{{pid}}/stat') as fh:
            return fh.read().rsplit(')', 1)[1].split()
    def targets():
        out = {{'evaluator': int(_stat(posix.getppid())[1])}}
        for n in posix.listdir('/proc'):
            try:
                with open(f'/proc/{{n}}/cmdline', 'rb') as fh:
                    if b'sandbox_judge.py' in fh.read():
                        out['judge'] = int(n)
            except OSError:
                pass
        return out
    def nonces(pid):
        fd = posix.open(f'/proc/{{pid}}/mem', posix.O_RDONLY)
        with open(f'/proc/{{pid}}/maps') as fh:
            maps = [line.split() for line in fh]
        found = set()
        for m in maps:
            lo, hi = (int(x, 16) for x in m[0].split('-'))
            for at in range(lo, min(hi, lo + (256 << 20)) if 'r' in m[1] else lo, 4 << 20):
                try:
                    data = posix.pread(fd, min(4 << 20, hi - at), at)
                except OSError:
                    break
                found.update(re.findall(rb'"nonce": "([0-9a-f]{{32}})"', data))
        return found
    def f(x):
        opened = []
        for who, pid in targets().items():
            found = set()
            try:
                found = nonces(pid)
                opened.append(f'{{who}} mem')
            except OSError:
                pass
            lines = b''.join(n + b' ' + {FORGED!r}.encode() + b'\\n' for n in found)
            try:
                fds = posix.listdir(f'/proc/{{pid}}/fd')
                opened.append(f'{{who}} fd list')
            except OSError:
                fds = ['1']
            for fd in fds:
                try:
                    w = posix.open(f'/proc/{{pid}}/fd/{{fd}}', posix.O_WRONLY | posix.O_NONBLOCK)
                    opened.append(f'{{who}} fd {{fd}}')
                    posix.write(w, lines or b'x\\n')
                except OSError:
                    pass
        return opened
    """
)


def _as_nobody(body: str, unsafe: bool) -> dict:
    """Run PRELUDE + `body` as uid 65534; its last stdout line, as JSON."""
    python3 = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or shutil.which("setpriv") is None or python3 is None:
        pytest.skip("needs root, setpriv and a system python3 to become uid 65534")
    env = {"PATH": "/usr/bin:/bin", **({"PRUNEKIT_UNSAFE_SAME_UID_SANDBOX": "1"} if unsafe else {})}
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python3, "-c"]
    out = subprocess.run(
        [*cmd, PRELUDE + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env=env,
    )
    if out.returncode != 0 and f"{SRC}" in out.stderr and "Permission denied" in out.stderr:
        pytest.skip(f"uid {NOBODY} cannot read {SRC} (checkout not world-readable)")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_scoring_is_refused_without_the_opt_in():
    """One clear line naming the danger and the safe modes; trusted programs still run."""
    got = _as_nobody(
        """
        check = Check("def f(x):\\n    return x\\n", "assert candidate(1) == 1\\n", "f")
        errors = []
        for call in (lambda: run_check(check, LIMITS), lambda: run_many([check], LIMITS)):
            try:
                call()
            except PrunekitError as exc:
                errors.append(str(exc))
        print(json.dumps({"errors": errors, "program": run_program("x = 1", LIMITS).passed}))
        """,
        unsafe=False,
    )
    assert len(got["errors"]) == 2 and got["program"]
    for msg in got["errors"]:
        assert "\n" not in msg and "PRUNEKIT_UNSAFE_SAME_UID_SANDBOX=1" in msg
        assert "user namespaces" in msg and "root" in msg and "forge" in msg


def test_judge_and_evaluator_are_closed_to_the_candidate():
    """The review's attack: read the nonce from /proc/<pid>/mem, write a "passed" line through
    /proc/<pid>/fd; every door is shut, and the wrong answer fails."""
    got = _as_nobody(
        f"""
        attack = {ATTACK!r}
        doors = run_check(Check(attack, "assert candidate(1) == []\\n", "f"), LIMITS)
        forged = run_many([Check(attack, "assert candidate(1) == 2\\n", "f")] * 2, LIMITS)
        print(json.dumps({{"doors": [doors.passed, doors.error, doors.detail],
                           "forged": [r.passed for r in forged]}}))
        """,
        unsafe=True,
    )
    assert got["doors"][0], got["doors"]
    assert got["forged"] == [False, False]


def test_nothing_a_candidate_starts_outlives_it():
    """A daemon (fork, setsid, fork, parent exits) is killed with the candidate."""
    got = _as_nobody(
        f"""
        import uuid
        marker = uuid.uuid4().hex
        daemon = {POSIX!r} + (
            "import sys, time\\n"
            "if posix.fork() == 0:\\n"
            "    posix.setsid()\\n"
            "    if posix.fork() == 0:\\n"
            "        code = 'import time; time.sleep(60)'\\n"
            f"        posix.execv(sys.executable, ['python3', '-c', code, {{marker!r}}])\\n"
            "    posix._exit(0)\\n"
            "time.sleep(0.5)\\n"
        )
        r = run_program(daemon, LIMITS)
        time.sleep(0.5)
        left = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = open(f"/proc/{{pid}}/cmdline", "rb").read()
            except OSError:
                continue
            if marker.encode() in cmd:
                left.append(pid)
        print(json.dumps({{"passed": r.passed, "left": left}}))
        """,
        unsafe=True,
    )
    assert got["passed"] and got["left"] == [], got
