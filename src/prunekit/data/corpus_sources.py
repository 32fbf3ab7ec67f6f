"""Finders of the built-in corpora beyond Python: Java, C++, JavaScript and English prose.

Each finder returns (root, files) like the python one in `corpora.py`. Sources that come packed
(a zip, an R data file) or carry boilerplate are prepared once into a cache folder
(`$PRUNEKIT_HOME/corpora/<name>`, default ~/.cache/prunekit/corpora) and reused; a marker file
records which source the cache was built from, so a changed source is prepared again.

Every source is installed by Debian's or npm's ordinary clients (see scripts/install_corpora.sh).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from prunekit.errors import PrunekitError
from prunekit.models.registry import cache_root
from prunekit.utils import make_partial_dir, remove_stale_partials, unmark_partial_dir

MARKER = ".prunekit-corpus.json"
BUILD_VERSION = 2  # bump when a build function changes, so old caches are rebuilt
INSTALL_SCRIPT = "scripts/install_corpora.sh"


def corpora_home() -> Path:
    return cache_root() / "corpora"


# ---------------------------------------------------------------- preparing a cache once


def strip_licence_header(text: str) -> str:
    """Drop a leading comment block that is a copyright/licence notice.

    OpenJDK and libstdc++ repeat a ~25-line GPL notice at the top of every file; left in, a
    large share of both splits is identical boilerplate that says nothing about the language.
    """
    m = re.match(r"\s*(/\*.*?\*/|(?://[^\n]*\n\s*)+)", text, flags=re.S)
    if m and re.search(r"copyright|licen[cs]e", m.group(1), flags=re.I):
        return text[m.end() :].lstrip("\n")
    return text


def _source_id(path: Path) -> dict:
    st = path.stat()
    return {"source": str(path), "size": st.st_size, "mtime": int(st.st_mtime)}


def _prepared(name: str, source: Path, build: Callable[[Path], None]) -> Path:
    """The cache folder of corpus `name` built from `source` (built now if missing or stale)."""
    root = corpora_home() / name
    want = {**_source_id(source), "build": BUILD_VERSION}
    marker = root / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == want:
                return root
        except (OSError, json.JSONDecodeError):
            pass
    root.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(root)  # what a killed build left (marked as prunekit's, maker dead)
    tmp = make_partial_dir(root)
    try:
        build(tmp)
        (tmp / MARKER).write_text(json.dumps(want))
        unmark_partial_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root


def _listed(root: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.name != MARKER and (suffixes is None or p.suffix in suffixes)
    )


def _first_existing(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


# ---------------------------------------------------------------- Java (OpenJDK 17 src.zip)

JAVA_ZIPS = (
    Path("/usr/lib/jvm/openjdk-17/lib/src.zip"),
    Path("/usr/lib/jvm/java-17-openjdk-amd64/lib/src.zip"),
    Path("/usr/lib/jvm/java-17-openjdk-arm64/lib/src.zip"),
)


def _java_zip() -> Path | None:
    return _first_existing([*JAVA_ZIPS, corpora_home() / "downloads" / "openjdk-17-src.zip"])


def java_sources() -> tuple[Path, list[Path]]:
    """The `java.*` modules of the OpenJDK 17 class library (licence headers removed)."""
    src = _java_zip()
    if src is None:
        return corpora_home() / "java", []

    def build(out: Path) -> None:
        with zipfile.ZipFile(src) as zf:
            for info in zf.infolist():
                name = info.filename
                if not name.endswith(".java") or not name.startswith("java.") or "/" not in name:
                    continue
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                text = zf.read(info).decode("utf-8", errors="replace")
                target.write_text(strip_licence_header(text), encoding="utf-8")

    root = _prepared("java", src, build)
    return root, _listed(root, (".java",))


# ---------------------------------------------------------------- C++ (libstdc++ headers)


def _libstdcxx_dir() -> Path | None:
    base = Path("/usr/include/c++")
    versions = [p for p in base.glob("*") if p.is_dir() and p.name.split(".")[0].isdigit()]
    return (
        max(versions, key=lambda p: [int(x) for x in re.findall(r"\d+", p.name)])
        if versions
        else None
    )


def cpp_sources() -> tuple[Path, list[Path]]:
    """The GNU C++ standard library headers of the newest installed GCC (licence headers removed)."""
    src = _libstdcxx_dir()
    if src is None:
        return corpora_home() / "cpp", []

    def build(out: Path) -> None:
        for path in src.rglob("*"):
            if not path.is_file() or path.suffix in {".gch", ".pch"}:
                continue
            target = out / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            text = path.read_text(encoding="utf-8", errors="replace")
            target.write_text(strip_licence_header(text), encoding="utf-8")

    # the version folder itself is the source id (its mtime changes when headers are replaced)
    root = _prepared("cpp", src, build)
    return root, _listed(root)


# ---------------------------------------------------------------- JavaScript (npm packages)

NPM_PACKAGES = ("lodash@4", "express@4", "eslint@8", "acorn@8")
NPM_MAX_BYTES = 200_000  # larger .js files are bundles that repeat sources found elsewhere
NPM_MAX_LINE = 1_000  # longer lines mean minified / generated code
NPM_SKIP_DIRS = {"test", "tests", "__tests__", "min", ".bin", "umd"}
NPM_SKIP_FILES = {"lodash/core.js"}  # a second copy of ~100 lodash functions


def npm_prefix() -> Path:
    return corpora_home() / "npm"


def _hand_written_js(path: Path) -> bool:
    if path.name.endswith(".min.js") or path.stat().st_size > NPM_MAX_BYTES:
        return False
    text = path.read_text(encoding="utf-8", errors="replace")
    return bool(text.strip()) and max(map(len, text.splitlines()), default=0) <= NPM_MAX_LINE


def javascript_sources() -> tuple[Path, list[Path]]:
    """Hand-written .js files of a few npm packages and their dependencies (no bundles/minified)."""
    root = npm_prefix() / "node_modules"
    if not root.is_dir():
        return root, []
    files = [
        p
        for p in root.rglob("*.js")
        if p.is_file()
        and not NPM_SKIP_DIRS.intersection(p.relative_to(root).parts[:-1])
        and p.relative_to(root).as_posix() not in NPM_SKIP_FILES
        and _hand_written_js(p)
    ]
    return root, files


# ---------------------------------------------------------------- English prose (Jane Austen)

AUSTEN_DATA = Path("/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb")
CHAPTER = re.compile(r"^\s*chapter\s+([ivxlc]+|\d+)\b", re.I)


def _austen_rdb() -> Path | None:
    return _first_existing(
        [AUSTEN_DATA, corpora_home() / "downloads" / "janeaustenr" / "Rdata.rdb"]
    )


def r_string_vectors(rdb: bytes) -> Iterator[list[str]]:
    """The character vectors stored in an R lazy-load database (.rdb), in file order.

    Each entry is a 4-byte length, an optional compression tag, then a zlib stream of an
    XDR-serialised R object; janeaustenr stores one character vector (one line each) per novel.
    """
    pos = 0
    while pos < len(rdb):
        start = pos + 4
        if rdb[start : start + 1] in (b"Z", b"0", b"2", b"X"):
            if rdb[start : start + 1] != b"Z":
                raise PrunekitError("unsupported compression in the janeaustenr data; reinstall it")
            start += 1
        stream = zlib.decompressobj()
        data = stream.decompress(rdb[start:])
        pos = len(rdb) - len(stream.unused_data)
        yield _unserialize_strings(data)


def _unserialize_strings(data: bytes) -> list[str]:
    if data[:2] != b"X\n":
        raise PrunekitError("janeaustenr data is not in R's XDR format; reinstall it")
    version = struct.unpack(">i", data[2:6])[0]
    off = 14
    if version == 3:
        (n,) = struct.unpack(">i", data[off : off + 4])
        off += 4 + n
    flags, length = struct.unpack(">ii", data[off : off + 8])
    off += 8
    if flags & 0xFF != 16:  # STRSXP
        raise PrunekitError("janeaustenr data holds no character vector where one was expected")
    out: list[str] = []
    for _ in range(length):
        _flags, n = struct.unpack(">ii", data[off : off + 8])
        off += 8
        if n < 0:  # NA_character_
            out.append("")
            continue
        out.append(data[off : off + n].decode("utf-8", errors="replace"))
        off += n
    return out


def chapters(lines: list[str]) -> list[tuple[str, str]]:
    """Split a novel (one string per printed line) into (slug, text) per chapter, paragraphs reflowed."""
    parts: list[tuple[str, list[str]]] = []
    for line in lines:
        if CHAPTER.match(line):
            parts.append((line.strip(), []))
        elif parts:
            parts[-1][1].append(line)
    out = []
    for n, (_title, body) in enumerate(parts, 1):
        paragraphs = [" ".join(p.split()) for p in "\n".join(body).split("\n\n")]
        text = "\n\n".join(p for p in paragraphs if p)
        if text:
            out.append((f"chapter-{n:03d}", text + "\n"))
    return out


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def text_sources() -> tuple[Path, list[Path]]:
    """Jane Austen's six novels, one file per chapter (public-domain text via janeaustenr)."""
    src = _austen_rdb()
    if src is None:
        return corpora_home() / "text", []

    def build(out: Path) -> None:
        for lines in r_string_vectors(src.read_bytes()):
            title = _slug(next((line for line in lines if line.strip()), "novel"))
            for slug, text in chapters(lines):
                target = out / "austen" / title / f"{slug}.txt"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")

    root = _prepared("text", src, build)
    return root, _listed(root, (".txt",))


def install_hint(name: str) -> str:
    """The exact command that installs corpus `name` (the repository's script, or by hand)."""
    home = corpora_home()
    by_hand = {
        "java": "apt-get install -y openjdk-17-source",
        "cpp": "apt-get install -y libstdc++-12-dev",
        "javascript": f"npm install --prefix {home / 'npm'} --no-audit --no-fund --ignore-scripts "
        + " ".join(NPM_PACKAGES),
        "text": "apt-get install -y r-cran-janeaustenr",
    }[name]
    return f"bash {INSTALL_SCRIPT} {name}  (or: {by_hand})"
