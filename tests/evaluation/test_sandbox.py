"""The sandbox: hostile candidates fail on their own and never crash or hang the evaluator."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from prunekit.evaluation import sandbox
from prunekit.evaluation.sandbox import Limits, run_many, run_program

TIGHT = Limits(wall_s=1.5, cpu_s=1, memory_mb=256, file_mb=1, nproc=32)

# a guard bypass: the posix module object is still reachable through the garbage collector
POSIX = (
    "import gc\n"
    "posix = [m for m in gc.get_objects()\n"
    "         if type(m).__name__ == 'module' and m.__name__ == 'posix'][0]\n"
)


def _no_sandbox_processes_left() -> bool:
    import psutil

    uid = sandbox.sandbox_identity()["uid"]
    me = os.getpid()
    for _ in range(50):
        left = [
            p
            for p in psutil.process_iter(["uids", "status", "cmdline", "pid"])
            if p.info["uids"]
            and p.info["uids"].real == uid
            and p.info["pid"] != me
            and p.info["status"] != psutil.STATUS_ZOMBIE
            and "-I" in (p.info["cmdline"] or [])
            and "-S" in (p.info["cmdline"] or [])
        ]
        if not left:
            return True
        time.sleep(0.1)
    return False


def test_passing_and_failing_programs():
    assert run_program("def f():\n    return 1\nassert f() == 1\n", TIGHT).passed
    r = run_program("assert 1 == 2, 'wrong'", TIGHT)
    assert (r.passed, r.error, r.detail) == (False, "assertion", "wrong")
    r = run_program("def f(:\n", TIGHT)
    assert (r.passed, r.error) == (False, "syntax")
    r = run_program("raise KeyError('x')", TIGHT)
    assert (r.passed, r.error) == (False, "exception") and "KeyError" in r.detail


def test_infinite_loop_hits_cpu_limit():
    start = time.perf_counter()
    r = run_program("while True:\n    pass\n", TIGHT)
    assert not r.passed and r.error in ("cpu_limit", "timeout")
    assert time.perf_counter() - start < TIGHT.wall_s + 3


def test_sleeping_candidate_hits_wall_limit():
    start = time.perf_counter()
    r = run_program("import time\ntime.sleep(60)\n", TIGHT)
    assert (r.passed, r.error) == (False, "timeout")
    assert time.perf_counter() - start < TIGHT.wall_s + 3


def test_fork_through_os_is_refused():
    r = run_program("import os\nwhile True:\n    os.fork()\n", TIGHT)
    assert (r.passed, r.error) == (False, "sandbox_violation")
    r = run_program("import subprocess\nsubprocess.run(['true'])\n", TIGHT)
    assert (r.passed, r.error) == (False, "sandbox_violation")


def test_fork_bomb_bypassing_the_guard_is_contained():
    bomb = (
        POSIX + "while True:\n    try:\n        posix.fork()\n    except OSError:\n        pass\n"
    )
    start = time.perf_counter()
    r = run_program(bomb, TIGHT)
    assert not r.passed and r.error in ("timeout", "cpu_limit", "killed")
    assert time.perf_counter() - start < TIGHT.wall_s + 3
    assert _no_sandbox_processes_left()


@pytest.mark.parametrize("pid_namespace", [True, False])
def test_escaped_grandchild_is_killed(monkeypatch, pid_namespace):
    """A descendant that leaves the session (setsid) and is orphaned is still killed."""
    if not pid_namespace:
        monkeypatch.setattr(sandbox, "_pid_namespace_prefix", lambda: ())
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
    start = time.perf_counter()
    r = run_program(escape, TIGHT)
    assert (r.passed, r.error) == (False, "timeout")
    assert time.perf_counter() - start < TIGHT.wall_s + 3
    assert _no_sandbox_processes_left()


def test_memory_hog_fails_with_memory_error():
    r = run_program("x = bytearray(1 << 30)\n", TIGHT)
    assert (r.passed, r.error) == (False, "memory")
    r = run_program("x = []\nwhile True:\n    x.append(' ' * 10**6)\n", TIGHT)
    assert not r.passed and r.error in ("memory", "killed", "cpu_limit")


def test_candidate_killing_itself():
    r = run_program("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", TIGHT)
    assert (r.passed, r.error) == (False, "killed") and "SIGKILL" in r.detail
    r = run_program("import os\nos.abort()\n", TIGHT)
    assert (r.passed, r.error) == (False, "killed")


def test_cannot_signal_the_evaluator():
    r = run_program("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", TIGHT)
    assert (r.passed, r.error) == (False, "sandbox_violation")
    r = run_program(f"import os\nos.kill({os.getpid()}, 9)\n", TIGHT)
    assert not r.passed


def test_exit_before_tests_is_not_a_pass():
    for prog in ("import sys\nsys.exit(0)\nassert False\n", "import os\nos._exit(0)\n"):
        r = run_program(prog, TIGHT)
        assert (r.passed, r.error) == (False, "exit")


def test_no_writes_outside_the_working_directory(tmp_path):
    targets = [
        Path(tempfile.gettempdir()) / f"prunekit-escape-{uuid.uuid4().hex}",  # world-writable
        tmp_path / "escape.txt",
    ]
    for target in targets:
        for code in (
            f"open({str(target)!r}, 'w').write('x')",
            f"import pathlib\npathlib.Path({str(target)!r}).write_text('x')",
            f"import os\nfd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)\n",
            f"import os\nos.symlink({str(target)!r}, 'link')\nopen('link', 'w').write('x')",
            f"import shutil\nopen('f', 'w').write('x')\nshutil.copy('f', {str(target)!r})",
            f"import os\nopen('f', 'w').write('x')\nos.rename('f', {str(target)!r})",
        ):
            r = run_program(code, TIGHT)
            assert not r.passed, code
            assert r.error == "sandbox_violation", (code, r)
            assert not target.exists() and not target.is_symlink()
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    r = run_program(f"import os\nos.remove({str(victim)!r})\n", TIGHT)
    assert not r.passed and victim.read_text() == "precious"
    # writing inside its own directory is fine, and the directory is removed afterwards
    r = run_program("import os\nopen('a.txt', 'w').write('x')\nprint(os.getcwd())\n", TIGHT)
    assert r.passed


def test_environment_holds_no_secrets(monkeypatch):
    monkeypatch.setenv("PRUNEKIT_TEST_SECRET", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter3")
    r = run_program(
        "import os\n"
        "assert 'PRUNEKIT_TEST_SECRET' not in os.environ\n"
        "assert 'AWS_SECRET_ACCESS_KEY' not in os.environ\n"
        "assert not any('hunter' in v for v in os.environ.values())\n"
        "try:\n"
        "    raw = open('/proc/self/environ', 'rb').read()\n"
        "except OSError:\n"
        "    raw = b''\n"
        "assert b'hunter' not in raw\n",
        TIGHT,
    )
    assert r.passed, r


def test_huge_output_is_capped():
    r = run_program("while True:\n    print('x' * 10000)\n", TIGHT)
    assert not r.passed and r.error in ("exception", "file_limit")


def test_run_many_keeps_order_and_survives_hostiles():
    programs = ["assert True", "while True: pass", "assert False", "import os\nos.abort()"]
    results = run_many(programs, TIGHT, workers=2)
    assert [r.passed for r in results] == [True, False, False, False]
    assert results[2].error == "assertion"
