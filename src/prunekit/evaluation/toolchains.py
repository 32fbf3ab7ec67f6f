"""Compilers and runtimes for non-Python candidates: where they are, their versions, and the
sandbox stages that build and run one program (C++ g++, Java javac + java, JavaScript node, Go).

Each toolchain comes from a Debian package (`setup.sh` installs them); a missing one is one
PrunekitError naming the package. Binaries are resolved to their real paths on the host, so
the sandbox (which has /usr but no /etc/alternatives) can run them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from prunekit.errors import PrunekitError
from prunekit.evaluation.sandbox_compiled import ProgramCheck, Stage, versions

COMPILE_WALL_S = 60.0  # compilers are slow on a loaded machine; the run limits stay tight
COMPILE_CPU_S = 60
BIG_ADDRESS_SPACE_MB = 16384  # JVMs and V8 reserve far more address space than they use
GOPATH = "/usr/share/gocode"  # golang-github-stretchr-testify-dev puts testify here
GO_ENV = (
    ("GO111MODULE", "off"),
    ("GOPATH", GOPATH),
    ("CGO_ENABLED", "0"),
    ("GOFLAGS", ""),
    ("GOTELEMETRY", "off"),
)


@dataclass(frozen=True)
class Toolchain:
    """One language's tools: binaries on PATH, the Debian package that provides them."""

    language: str
    display: str
    binaries: tuple[str, ...]
    package: str

    def paths(self) -> dict[str, str]:
        """Real paths of the binaries; a PrunekitError naming the package if one is missing."""
        found = {}
        for name in self.binaries:
            path = shutil.which(name)
            if path is None:
                raise PrunekitError(
                    f"{self.display} evaluation needs '{name}', which is not installed; "
                    f"install it with: apt-get install {self.package} (or run ./setup.sh)"
                )
            found[name] = os.path.realpath(path)
        return found

    def missing(self) -> str | None:
        """Why this toolchain cannot run here, or None (for tests that skip)."""
        try:
            self.paths()
            if self.language == "go" and not (Path(GOPATH) / "src/github.com/stretchr").is_dir():
                raise PrunekitError(
                    "Go evaluation needs testify; install it with: apt-get install "
                    "golang-github-stretchr-testify-dev (or run ./setup.sh)"
                )
        except PrunekitError as exc:
            return str(exc)
        return None

    def identity(self) -> dict:
        """Compiler and runtime versions, for the report."""
        p = self.paths()
        argvs = {
            "cpp": {"g++": [p.get("g++", ""), "--version"]},
            "java": {
                "javac": [p.get("javac", ""), "-version"],
                "java": [p.get("java", ""), "-version"],
            },
            "js": {"node": [p.get("node", ""), "--version"]},
            "go": {"go": [p.get("go", ""), "version"]},
        }[self.language]
        return {"language": self.display, "package": self.package, **versions(argvs)}

    def program(self, files: dict[str, str], marker: str) -> ProgramCheck:
        """The sandbox job that builds and runs `files` (named as `main_file` expects)."""
        return _BUILDERS[self.language](self.paths(), files, marker)


def _compile(argv: list[str], space: int | None = None) -> Stage:
    return Stage("compile", tuple(argv), COMPILE_WALL_S, COMPILE_CPU_S, space or 2048)


def _cpp(p: dict, files: dict, marker: str) -> ProgramCheck:
    flags = ["-std=c++11", "-O0", "-w", "-o", "main", "main.cpp", "-lcrypto"]  # as HumanEval-X
    stages = (_compile([p["g++"], *flags]), Stage("run", ("./main",)))
    return ProgramCheck(tuple(files.items()), stages, marker)


def _java(p: dict, files: dict, marker: str) -> ProgramCheck:
    jvm = ["-Xmx512m", "-Xss16m", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-Xshare:auto"]
    javac = [p["javac"], *(f"-J{f}" for f in (*jvm, "-XX:TieredStopAtLevel=1"))]
    javac += ["-encoding", "UTF-8", "-nowarn", "-d", ".", *files]
    run = Stage(
        "run", (p["java"], *jvm, "-cp", ".", "PrunekitRunner"), None, None, BIG_ADDRESS_SPACE_MB
    )
    home = str(Path(p["java"]).parents[1])
    ro = tuple(x for x in (home, "/etc/java-17-openjdk") if os.path.isdir(x))
    stages = (_compile(javac, BIG_ADDRESS_SPACE_MB), run)
    return ProgramCheck(tuple(files.items()), stages, marker, ro_paths=ro, nproc=256)


def _js(p: dict, files: dict, marker: str) -> ProgramCheck:
    run = Stage("run", (p["node"], "test.js"), None, None, BIG_ADDRESS_SPACE_MB, quiet_stderr=True)
    return ProgramCheck(tuple(files.items()), (run,), marker)


def _go(p: dict, files: dict, marker: str) -> ProgramCheck:
    cache = warm_go_cache(p["go"])
    build = [p["go"], "test", "-c", "-o", "main.test", "main_test.go"]
    env = (*GO_ENV, ("GOCACHE", "{workdir}/gocache"), ("HOME", "{workdir}"))
    stages = (_compile(build, 4096), Stage("run", ("./main.test", "-test.paniconexit0")))
    return ProgramCheck(
        tuple(files.items()),
        stages,
        marker,
        env=env,
        ro_paths=(cache,),
        copies=((cache, "gocache"),),
        file_mb=128,
        nproc=256,
    )


_BUILDERS = {"cpp": _cpp, "java": _java, "js": _js, "go": _go}

GO_WARMUP = """package main

import (
    "bytes"
    "crypto/md5"
    "fmt"
    "math"
    "math/rand"
    "regexp"
    "sort"
    "strconv"
    "strings"
    "testing"
    "time"
    "github.com/stretchr/testify/assert"
)

var _ = []interface{}{bytes.NewBuffer, md5.New, fmt.Sprint, math.Abs, rand.Int, regexp.Compile,
    sort.Ints, strconv.Itoa, strings.Split, time.Now}

func TestWarm(t *testing.T) {
    assert.New(t).Equal(1, 1)
}
"""


@lru_cache(maxsize=1)
def warm_go_cache(go: str) -> str:
    """A Go build cache holding the packages the tests import (testify, the standard library
    used by HumanEval-X), built once per process from trusted code outside the sandbox; each
    sandbox gets a private copy, so no candidate can change another's build."""
    base = "/var/tmp" if os.path.isdir("/var/tmp") else tempfile.gettempdir()
    top = Path(tempfile.mkdtemp(prefix="prunekit-gocache-", dir=base))
    atexit.register(shutil.rmtree, top, True)
    src, cache = top / "src", top / "cache"
    src.mkdir()
    (src / "main_test.go").write_text(GO_WARMUP)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(top), **dict(GO_ENV), "GOCACHE": str(cache)}
    proc = subprocess.run(
        [go, "test", "-c", "-o", str(src / "warm.test"), "main_test.go"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise PrunekitError(f"could not prepare the Go build cache: {proc.stderr.strip()[:300]}")
    for dirpath, _dirs, filenames in os.walk(top):  # readable by the sandbox's uid
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    os.chmod(src / "warm.test", 0o644)
    return str(cache)


TOOLCHAINS = {
    "cpp": Toolchain("cpp", "C++", ("g++",), "g++ libssl-dev libboost-dev"),
    "java": Toolchain("java", "Java", ("javac", "java"), "openjdk-17-jdk-headless"),
    "js": Toolchain("js", "JavaScript", ("node",), "nodejs"),
    "go": Toolchain("go", "Go", ("go",), "golang-go golang-github-stretchr-testify-dev"),
}
