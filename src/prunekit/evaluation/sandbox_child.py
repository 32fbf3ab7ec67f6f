"""The sandbox's inside: a small supervisor and the candidate process it forks.

Started by `sandbox.run_check` as `python -I -S -c <sandbox_wire + this file>`, usually as
PID 1 of fresh user/PID/network/IPC/mount namespaces (`unshare`). stdin: line 1 = JSON
settings, the rest = the candidate's source. The supervisor builds a minimal read-only root
(system directories and the interpreter only; the work directory writable; private /tmp,
/dev/shm and /proc), joins the cgroup it was given, forks the candidate, enforces the
wall-time and aggregate memory limits, kills every process left, and prints how the
candidate ended (diagnostics only: the verdict is the judge's).

The candidate enters a nested user namespace as an unprivileged uid (no capabilities, the
mounts above locked), sets its rlimits, installs a Python guard against accidental writes
and process creation, runs the source, then answers the judge's calls on two pipes with
plain data. Everything in the candidate process is the candidate's to change; nothing in it
decides a pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time

with contextlib.suppress(ImportError):  # launched with -I: sandbox_wire's source ran first
    from prunekit.evaluation.sandbox_wire import WireError, decode, encode, read_frame, write_frame

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
CLONE_NEWUSER = 0x10000000
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
IPC_RMID = 0
SHM_PATHS = ("/memfd:", "/dev/shm/")  # open files whose pages no process's RSS shows
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
DEVICES = ("null", "zero", "full", "random", "urandom")
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus")
BOX = "/box"  # where the work directory appears inside the sandbox
INSIDE_UID = 65534


def _libc():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return ctypes, libc


def _check(ctypes, rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None):
    ctypes, libc = _libc()
    enc = [s.encode() if s is not None else None for s in (src, dst, fstype, data)]
    _check(ctypes, libc.mount(enc[0], enc[1], enc[2], flags, enc[3]), f"mount {dst}")


def _locked_flags(path: str) -> int:
    """The mount flags a user namespace may not clear on a bind remount of `path`."""
    f = os.statvfs(path).f_flag
    out = 0
    for st_bit, ms_bit in (
        (2, MS_NOSUID),
        (4, MS_NODEV),
        (8, MS_NOEXEC),
        (1024, 1024),
        (2048, 2048),
    ):
        if f & st_bit:
            out |= ms_bit
    if f & 4096:  # ST_RELATIME
        out |= 1 << 21
    return out


def _bind_ro(src: str, dst: str) -> None:
    _mount(src, dst, None, MS_BIND | MS_REC)
    _mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags(src))


def _mkdirs(root: str, path: str) -> str:
    target = root + path
    os.makedirs(target, exist_ok=True)
    return target


def build_root(cfg: dict) -> list[str]:
    """Mount the minimal root at cfg['root'] and pivot into it; the layers made, by name."""
    import platform

    root = cfg["root"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    for path in cfg["ro_paths"]:
        if os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            _bind_ro(path, _mkdirs(root, path))
    for path in cfg.get("hidden_paths", []):  # installed packages: covered, stdlib only
        if os.path.isdir(root + path) and not os.path.islink(root + path):
            flags = MS_NOSUID | MS_NODEV | MS_RDONLY
            _mount("tmpfs", root + path, "tmpfs", flags, "mode=555,size=4k")
    tmp_opts = f"mode=1777,size={cfg['file_mb']}m"
    # the work directory: a tmpfs of the file-size limit, so many files cannot fill a host disk
    _mount("tmpfs", _mkdirs(root, BOX), "tmpfs", MS_NOSUID | MS_NODEV, tmp_opts)
    _mount("tmpfs", _mkdirs(root, "/tmp"), "tmpfs", MS_NOSUID | MS_NODEV, tmp_opts)
    _mount("tmpfs", _mkdirs(root, "/dev"), "tmpfs", MS_NOSUID, "mode=755,size=64k")
    for dev in DEVICES:
        target = f"{root}/dev/{dev}"
        open(target, "w").close()
        _mount(f"/dev/{dev}", target, None, MS_BIND)
    _mount("tmpfs", _mkdirs(root, "/dev/shm"), "tmpfs", MS_NOSUID | MS_NODEV, tmp_opts)
    proc = _mkdirs(root, "/proc")
    try:
        _mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError:
        _mount("/proc", proc, None, MS_BIND | MS_REC)
    for sub in PROC_READ_ONLY:  # the kernel's knobs: file modes alone guard them from a root uid
        if os.path.exists(f"{proc}/{sub}"):
            _bind_ro(f"{proc}/{sub}", f"{proc}/{sub}")
    ctypes, libc = _libc()
    os.chdir(root)
    nr = SYS_PIVOT_ROOT.get(platform.machine())
    if nr is None:
        raise OSError(f"pivot_root: unknown syscall number on {platform.machine()}")
    _check(ctypes, libc.syscall(nr, b".", b"."), "pivot_root")
    _check(ctypes, libc.umount2(b".", MNT_DETACH), "umount old root")
    os.chdir(BOX)
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return ["mount_namespace", "private_tmp", "read_only_root"]


def drop_privileges() -> None:
    """Enter a nested user namespace as an unprivileged uid: no capabilities over any mount,
    process or network namespace made above, and the mounts locked as they are."""
    ctypes, libc = _libc()
    _check(ctypes, libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    try:
        _check(ctypes, libc.unshare(CLONE_NEWUSER), "unshare(user)")
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{INSIDE_UID} 0 1"),
            ("gid_map", f"{INSIDE_UID} 0 1"),
        ):
            with open(f"/proc/self/{name}", "w") as fh:
                fh.write(text)
        os.setresgid(INSIDE_UID, INSIDE_UID, INSIDE_UID)
        os.setresuid(INSIDE_UID, INSIDE_UID, INSIDE_UID)
    except OSError:  # no nested namespace allowed: without capabilities the mounts hold anyway
        pass
    _drop_capabilities(ctypes, libc)


def _drop_capabilities(ctypes, libc) -> None:
    """Empty the bounding, effective, permitted and inheritable sets (the owner of a new user
    namespace starts with every capability in it)."""
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    _check(ctypes, libc.capset(header, data), "capset")


def set_limits(cfg: dict) -> None:
    """Per-process rlimits (the aggregate budget is the cgroup's or the supervisor's)."""
    import resource

    def limit(name: str, value: int, extra: int = 0) -> None:
        kind = getattr(resource, name)
        hard = resource.getrlimit(kind)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
            extra = 0 if value + extra > hard else extra
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(kind, (value, value + extra))

    space = cfg.get("address_space_mb") or cfg["memory_mb"]  # a JVM reserves far more than
    limit("RLIMIT_AS", space << 20)  # it uses: its stages give a larger address space, while
    limit("RLIMIT_DATA", space << 20)  # the aggregate budget stays memory_mb
    limit("RLIMIT_CPU", cfg["cpu_s"], 1)  # SIGXCPU at the soft limit, SIGKILL 1 s later
    limit("RLIMIT_FSIZE", cfg["file_mb"] << 20)
    limit("RLIMIT_NOFILE", 64)
    limit("RLIMIT_CORE", 0)
    if cfg["nproc"]:
        limit("RLIMIT_NPROC", cfg["nproc"])


def install_guard() -> None:
    """Refuse, at the Python level, writes outside the work directory and new processes.
    A convenience for clear error messages, not a boundary: the kernel layers are."""
    import builtins
    import io
    import shutil
    import subprocess

    root = os.path.realpath(os.getcwd())
    realpath, readlink, fspath = os.path.realpath, os.readlink, os.fspath

    def inside(path, dir_fd=None) -> bool:
        if isinstance(path, int):
            return True
        p = os.fsdecode(fspath(path))
        if dir_fd is not None and not os.path.isabs(p):
            p = os.path.join(readlink(f"/proc/self/fd/{dir_fd}"), p)
        p = realpath(p)
        return p == root or p.startswith(root + os.sep)

    def deny(what: str):
        raise PermissionError(f"sandbox: {what} is not allowed")

    orig_open = builtins.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and not inside(file):
            deny(f"writing {file!r}")
        return orig_open(file, mode, *args, **kwargs)

    builtins.open = io.open = guarded_open
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    orig_os_open = os.open

    def guarded_os_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & write_flags and not inside(path, dir_fd):
            deny(f"writing {path!r}")
        return orig_os_open(path, flags, mode, dir_fd=dir_fd)

    os.open = guarded_os_open

    def guard_paths(fn, positions):
        def wrapper(*args, **kwargs):
            dir_fd = kwargs.get("dir_fd", kwargs.get("src_dir_fd"))
            paths = [args[i] for i in positions if i < len(args)]
            paths += [kwargs[k] for k in ("dst", "path") if k in kwargs]
            for p in paths:
                if not inside(p, dir_fd):
                    deny(f"{fn.__name__}({p!r})")
            return fn(*args, **kwargs)

        wrapper.__name__ = fn.__name__
        return wrapper

    for name, pos in (
        *((n, (0,)) for n in ("remove", "unlink", "rmdir", "mkdir", "chmod", "chown", "lchown")),
        *((n, (0,)) for n in ("truncate", "utime", "mkfifo", "mknod", "removedirs")),
        *((n, (0, 1)) for n in ("rename", "replace", "renames", "link")),
        ("symlink", (1,)),
    ):
        if hasattr(os, name):
            setattr(os, name, guard_paths(getattr(os, name), pos))
    for name, pos in (("rmtree", (0,)), ("move", (0, 1)), ("copy", (1,)), ("copy2", (1,))):
        setattr(shutil, name, guard_paths(getattr(shutil, name), pos))
    for name, pos in (("copyfile", (1,)), ("copytree", (1,)), ("chown", (0,))):
        setattr(shutil, name, guard_paths(getattr(shutil, name), pos))

    def blocked(name: str):
        def refuse(*args, **kwargs):
            deny(name)

        return refuse

    for name in (
        "system", "popen", "fork", "forkpty", "vfork", "setsid", "setpgid", "setpgrp",
        "execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe",
        "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
        "posix_spawn", "posix_spawnp", "putenv", "unsetenv", "setuid", "setgid", "seteuid",
        "setegid", "setreuid", "setregid", "chroot", "fchdir", "chdir", "fchmod", "fchown",
        "register_at_fork", "killpg", "plock",
    ):  # fmt: skip
        if hasattr(os, name):
            setattr(os, name, blocked("os." + name))
    orig_kill, me = os.kill, os.getpid()

    def guarded_kill(pid, sig):
        if pid != me:
            deny("signalling other processes")
        return orig_kill(pid, sig)

    os.kill = guarded_kill
    subprocess.Popen = blocked("subprocess")
    for name in ("run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        setattr(subprocess, name, blocked("subprocess"))
    for mod in ("posix", "_posixsubprocess", "ctypes", "_ctypes", "multiprocessing", "resource"):
        sys.modules[mod] = None
    for mod in ("pty", "cffi"):
        sys.modules[mod] = None


def _load_error(exc: BaseException) -> tuple[str, str]:
    """The error kind and detail of an exception that ended the candidate's source."""
    text = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, SyntaxError | ValueError) and getattr(exc, "_compile", False):
        return "syntax", text
    if isinstance(exc, SystemExit):
        return "exit", f"SystemExit({exc.code!r})"
    if isinstance(exc, MemoryError):
        return "memory", "MemoryError"
    if isinstance(exc, AssertionError):
        return "assertion", str(exc)[:200]
    if isinstance(exc, PermissionError) and "sandbox:" in str(exc):
        return "sandbox_violation", text
    return "exception", text


def serve(cfg: dict, program: str) -> None:
    """Run the source, then answer the judge's calls until it closes the request pipe."""
    req_fd, resp_fd = cfg["req_fd"], cfg["resp_fd"]
    namespace = {"__name__": "__main__"}
    try:
        try:
            code = compile(program, "<candidate>", "exec")
        except (SyntaxError, ValueError) as exc:
            exc._compile = True
            raise
        exec(code, namespace)
        fn = namespace[cfg["entry_point"]] if cfg["entry_point"] else None
        if fn is not None and not callable(fn):
            raise TypeError(f"{cfg['entry_point']} is not callable")
    except BaseException as exc:  # noqa: BLE001 - reported to the judge as a failure kind
        error, detail = _load_error(exc)
        write_frame(resp_fd, {"ready": False, "error": error, "detail": detail})
        os._exit(1)
    write_frame(resp_fd, {"ready": True})
    while fn is not None:
        request = read_frame(req_fd)
        if request is None:
            break
        try:
            value = fn(*decode(request["args"]), **decode(request["kwargs"]))
        except BaseException as exc:  # noqa: BLE001 - the tests decide what a raise means
            write_frame(resp_fd, {"raise": type(exc).__name__, "detail": str(exc)[:300]})
            continue
        try:
            answer = {"value": encode(value)}
        except (WireError, RecursionError) as exc:
            answer = {"error": "bad_return", "detail": str(exc)[:300]}
        write_frame(resp_fd, answer)
    os._exit(0)


def candidate_main(cfg: dict, program: str) -> None:
    """In the forked child: drop privileges, limit, guard, run."""
    try:
        os.setpgid(0, 0)
        # the kernel's OOM killer picks the candidate's tree first, never its supervisor
        with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
        if cfg["namespaces"]:
            drop_privileges()
        elif cfg["uid"] is not None:
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
        set_limits(cfg)
        for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
            f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(f, fd)
            os.close(f)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115 - lives with the process
        sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
        os.environ.clear()
        install_guard()
    except BaseException as exc:  # noqa: BLE001
        write_frame(
            cfg["resp_fd"], {"ready": False, "error": "sandbox_error", "detail": str(exc)[:300]}
        )
        os._exit(1)
    serve(cfg, program)


def _own_tree(path: str, uid: int | None) -> None:
    """Give the files the supervisor made to the candidate's uid (the fallback without
    namespaces; inside them the supervisor's uid already maps to the candidate's)."""
    if uid is None:
        return
    os.chown(path, uid, uid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, uid)


def stage_files(cfg: dict) -> None:
    """Write the program's files and copy its read-only seeds (e.g. a warm build cache) into
    the work directory, owned by the candidate."""
    import shutil

    uid = None if cfg["namespaces"] else cfg["uid"]
    for name, text in cfg.get("files", {}).items():
        with open(name, "w", encoding="utf-8") as fh:
            fh.write(text)
        _own_tree(name, uid)
    for src, name in cfg.get("copies", []):
        shutil.copytree(src, name, symlinks=True)
        _own_tree(name, uid)


def stage_main(cfg: dict, stage: dict) -> None:
    """In the forked child: drop privileges, set this stage's limits, send its output to
    files in the work directory, and exec the stage's command (a compiler or the program)."""
    try:
        os.setpgid(0, 0)
        with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
        if cfg["namespaces"]:
            drop_privileges()
        elif cfg["uid"] is not None:
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
        set_limits({**cfg, **stage["limits"]})
        for fd, name in ((1, stage["name"] + ".out"), (2, stage["name"] + ".err")):
            f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(f, fd)
            os.close(f)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        argv, here = stage["argv"], os.getcwd()
        os.execve(argv[0], argv, {k: v.replace("{workdir}", here) for k, v in stage["env"].items()})
    except BaseException as exc:  # noqa: BLE001 - the exec failed: a sandbox error, not a pass
        with contextlib.suppress(OSError):
            os.write(2, f"prunekit sandbox: cannot start {stage['argv'][0]}: {exc}\n".encode())
        os._exit(127)


TAIL_BYTES = 4096


def _tail(name: str) -> str:
    """The last TAIL_BYTES of a stage's output file; '' unless it is a regular file (the
    candidate may have replaced it with a link or a FIFO)."""
    import stat

    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return ""
        os.lseek(fd, max(0, st.st_size - TAIL_BYTES), os.SEEK_SET)
        return os.read(fd, TAIL_BYTES).decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def run_stages(cfg: dict, layers: list[str], problems: list[str]) -> dict:
    """Run each stage (compile..., run) as its own limited child, in order, until one fails;
    the report holds how each ended and its output tails (the evaluator decides the verdict)."""
    with contextlib.suppress(OSError, AttributeError):  # descendants cannot read this process
        ctypes, libc = _libc()
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
    try:
        stage_files(cfg)
    except OSError as exc:
        problems.append(f"files: {exc}")
        return {"stages": [], "layers": layers, "missing": problems, "setup_error": str(exc)}
    done = []
    for stage in cfg["stages"]:
        child = os.fork()
        if child == 0:
            stage_main(cfg, stage)
        info = supervise({**cfg, **stage["limits"]}, child)
        end = _end_report(info, layers, problems)
        end.update(name=stage["name"], stdout=_tail(stage["name"] + ".out"))
        end["stderr"] = _tail(stage["name"] + ".err")
        done.append(end)
        if end["ended"] is not None or end["signal"] is not None or end["code"] != 0:
            break
    return {"stages": done, "layers": layers, "missing": problems}


def _processes() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) != os.getpid()]


def _descendants() -> list[int]:
    """Every process whose parent chain reaches this one (the fallback without a PID namespace)."""
    parents = {}
    for pid in _processes():
        try:
            with open(f"/proc/{pid}/stat") as f:
                parents[pid] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    me, out = os.getpid(), []
    for pid in parents:
        p, seen = pid, 0
        while p in parents and seen < 64:
            p, seen = parents[p], seen + 1
            if p == me:
                out.append(pid)
                break
    return out


def _rss_mb(pids: list[int]) -> float:
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total / (1 << 20)


def _open_shm(pids: list[int]) -> dict[tuple[int, int], int]:
    """Bytes allocated to each memfd or /dev/shm file open in the tree, by (device, inode)."""
    out = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                if os.readlink(path).startswith(SHM_PATHS):
                    st = os.stat(path)
                    out[(st.st_dev, st.st_ino)] = st.st_blocks * 512
            except OSError:
                continue
    return out


def _sysv_segments(creators: set[int] | None) -> list[tuple[int, int]]:
    """(id, resident bytes) of the System V shared memory segments made by `creators` (all
    where None: a private IPC namespace)."""
    out = []
    try:
        with open("/proc/sysvipc/shm") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        try:
            if creators is None or int(fields[4]) in creators:
                out.append((int(fields[1]), int(fields[14])))
        except (IndexError, ValueError):
            continue
    return out


def _host_shm_files(cfg: dict, since: float) -> dict[tuple[int, int], int]:
    """Files the candidate's uid made in the host's /dev/shm since `since` (no namespaces)."""
    out = {}
    uid = cfg["uid"] if cfg["uid"] is not None else os.getuid()
    try:
        entries = list(os.scandir("/dev/shm"))
    except OSError:
        return out
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if st.st_uid == uid and st.st_ctime >= since:
            out[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return out


class Budget:
    """The tree's memory as the supervisor polls it: resident memory plus the shared memory
    held outside any process's RSS (memfd, /dev/shm, System V segments), each object once."""

    def __init__(self, cfg: dict) -> None:
        self.cfg, self.creators = cfg, set()
        self.since = time.time() - 1

    def used_mb(self, pids: list[int]) -> float:
        shared = _open_shm(pids)
        if not self.cfg["namespaces"]:
            shared.update(_host_shm_files(self.cfg, self.since))
        sysv = _sysv_segments(None if self.cfg["namespaces"] else self.creators)
        extra = sum(shared.values()) + sum(size for _, size in sysv)
        return _rss_mb(pids) + extra / (1 << 20)

    def release(self) -> None:
        """Remove the System V segments the tree made (a private IPC namespace frees its own)."""
        if self.cfg["namespaces"]:
            return
        ctypes, libc = _libc()
        for shmid, _ in _sysv_segments(self.creators):
            libc.shmctl(shmid, IPC_RMID, None)


def supervise(cfg: dict, child: int) -> dict:
    """Wait for the candidate within the wall limit and the aggregate memory budget; then kill
    and reap every process left; how it ended, for the report."""
    pid1 = os.getpid() == 1
    tree = _processes if pid1 else _descendants
    deadline = time.monotonic() + cfg["wall_s"]
    status, ended, most, peak_mb = None, None, 0, 0.0
    budget = Budget(cfg)
    poll = 0
    while ended is None:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == child:
            status = st
            break
        if pid:
            continue
        if time.monotonic() > deadline:
            ended = "timeout"
        poll += 1
        # past half the budget the tree is read every turn, 1 ms apart: the overshoot a poller
        # allows is what the tree allocates between two reads
        near = peak_mb > cfg["memory_mb"] / 2
        if near or poll % 4 == 0:
            pids = tree()
            most = max(most, len(pids))
            budget.creators.update(pids)
            if cfg["aggregate_memory"]:
                peak_mb = max(peak_mb, budget.used_mb(pids))
                if peak_mb > cfg["memory_mb"]:
                    ended = "memory"
        time.sleep(0.001 if near else 0.002 if poll < 50 else 0.01)
    _kill_all(tree, child)
    budget.release()
    return {"ended": ended, "status": status, "processes": most, "peak_rss_mb": round(peak_mb, 1)}


def _kill_all(tree, child: int) -> None:
    for _ in range(500):
        for pid in [child, *tree()]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            if not tree():
                return
        time.sleep(0.002)


def _end_report(info: dict, layers: list[str], problems: list[str]) -> dict:
    status = info["status"]
    out = {
        "ended": info["ended"],
        "signal": None,
        "code": None,
        "layers": layers,
        "missing": problems,
    }
    out.update(processes=info["processes"], peak_rss_mb=info["peak_rss_mb"])
    if status is not None and info["ended"] is None:
        if os.WIFSIGNALED(status):
            out["signal"] = os.WTERMSIG(status)
        else:
            out["code"] = os.WEXITSTATUS(status)
    return out


def main() -> None:
    cfg = json.loads(sys.stdin.readline())
    program = sys.stdin.read()
    layers, problems = list(cfg["layers"]), []
    for path in cfg["cgroup_procs"]:  # before the root changes: the cgroup fs is not inside
        try:
            with open(path, "w") as fh:
                fh.write("0")
        except OSError as exc:
            problems.append(f"cgroup {path}: {exc}")
    if cfg["cgroup_procs"] and not problems:
        layers.append("cgroup")
    if cfg["namespaces"]:
        try:
            layers += build_root(cfg)
        except OSError as exc:  # keep going with what is left; the report says so
            problems.append(f"read-only root: {exc}")
            os.chdir(cfg["workdir"])
    if os.getpid() != 1:  # without a PID namespace: orphans (setsid, double fork) come here
        with contextlib.suppress(OSError, AttributeError):
            ctypes, libc = _libc()
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if cfg.get("stages"):  # a compiled-language program: the verdict is this supervisor's
        report = run_stages(cfg, layers, problems)
        sys.stdout.write(json.dumps(report) + "\n")
        sys.stdout.flush()
        os._exit(0)
    child = os.fork()
    if child == 0:
        candidate_main(cfg, program)
    os.close(cfg["req_fd"])
    os.close(cfg["resp_fd"])
    info = supervise(cfg, child)
    sys.stdout.write(json.dumps(_end_report(info, layers, problems)) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
