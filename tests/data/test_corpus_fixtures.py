"""The java / cpp / javascript / text corpora end to end on small synthetic samples of their
sources, so CI (where the real sources are not installed) runs discovery, preparation, filters and
the by-file split; test_corpus_sources.py checks the real corpora where they are installed."""

from __future__ import annotations

import zipfile

import pytest
from test_corpus_sources import _r_strings

from prunekit.data import corpus_sources as cs
from prunekit.data.corpora import CORPORA, is_eval_file
from prunekit.errors import PrunekitError

LICENCE = "/*\n * Copyright (c) 2003 Oracle and/or its affiliates.\n * GPL v2\n */\n\n"
FILES = 40  # ≥ 1 held-out file in each split for these names (checked below)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """PRUNEKIT_HOME in tmp_path, with the system locations of every source hidden."""
    monkeypatch.setenv("PRUNEKIT_HOME", str(tmp_path))
    monkeypatch.setattr(cs, "JAVA_ZIPS", ())
    monkeypatch.setattr(cs, "AUSTEN_DATA", tmp_path / "no-such-file")
    monkeypatch.setattr(cs, "_libstdcxx_dir", lambda: None)
    return tmp_path / "corpora"


def java_zip(home):
    path = home / "downloads" / "openjdk-17-src.zip"
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(FILES):
            body = f"package java.util;\n\npublic class C{i} {{ int x = {i}; }}\n"
            zf.writestr(f"java.base/java/util/C{i}.java", LICENCE + body)
        zf.writestr("jdk.internal.vm/jdk/internal/X.java", "class X {}\n")  # not java.*
        zf.writestr("java.base/java/util/notes.txt", "not java\n")


def cpp_headers(tmp_path, monkeypatch):
    src = tmp_path / "usr-include-c++" / "12"
    for i in range(FILES):
        (src / "bits").mkdir(parents=True, exist_ok=True)
        (src / "bits" / f"h{i}.h").write_text(
            f"// Copyright (C) 2008 FSF\n\n#pragma once\nint f{i}();\n"
        )
    (src / "bits" / "stdc++.h.gch").write_text("precompiled")
    monkeypatch.setattr(cs, "_libstdcxx_dir", lambda: src)


def npm_tree(home):
    root = home / "npm" / "node_modules"
    for i in range(FILES):
        (root / "pkg").mkdir(parents=True, exist_ok=True)
        (root / "pkg" / f"m{i}.js").write_text(
            f"module.exports = function f{i}() {{ return {i}; }};\n"
        )
    skipped = {
        "pkg/dist.min.js": "x=1;\n",
        "pkg/test/t.js": "test();\n",
        "pkg/bundle.js": "var a=1;" * 200 + "\n",  # one line over NPM_MAX_LINE: minified
        "lodash/core.js": "module.exports = {};\n",
        "pkg/empty.js": "\n",
    }
    for rel, text in skipped.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def austen_rdb(home):
    novels = []
    for title in ("Sense and Sensibility", "Emma"):
        lines = [title.upper(), ""]
        for c in range(1, FILES // 2 + 1):
            lines += [f"CHAPTER {c}", "", f"{title}, chapter {c},", "reflowed.", ""]
        novels.append(_r_strings(lines))
    path = home / "downloads" / "janeaustenr" / "Rdata.rdb"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(novels))


def check_splits(name):
    corpus = CORPORA[name]
    root, files = corpus.find()
    calib, held = corpus.files("calib"), corpus.files("eval")
    assert calib and held and not set(calib) & set(held)
    assert len(calib) + len(held) == len(files)
    assert all(is_eval_file(f.relative_to(root)) for f in held)
    assert not any(is_eval_file(f.relative_to(root)) for f in calib)
    return root, files


def test_java_is_prepared_from_the_src_zip_without_licence_headers(home):
    java_zip(home)
    root, files = check_splits("java")
    assert len(files) == FILES and all(f.suffix == ".java" for f in files)
    assert all(f.read_text().startswith("package java.util;") for f in files)
    marker = (root / cs.MARKER).read_text()
    assert check_splits("java")[0] == root and (root / cs.MARKER).read_text() == marker  # reused


def test_cpp_headers_are_prepared_without_licence_headers(home, tmp_path, monkeypatch):
    cpp_headers(tmp_path, monkeypatch)
    _, files = check_splits("cpp")
    assert len(files) == FILES and all(f.read_text().startswith("#pragma once") for f in files)


def test_javascript_keeps_only_hand_written_files(home):
    npm_tree(home)
    root, files = check_splits("javascript")
    assert sorted(f.relative_to(root).as_posix() for f in files) == sorted(
        f"pkg/m{i}.js" for i in range(FILES)
    )


def test_text_is_one_file_per_chapter_of_each_novel(home):
    austen_rdb(home)
    root, files = check_splits("text")
    assert len(files) == FILES
    novels = {f.relative_to(root).parts[1] for f in files}
    assert novels == {"sense-and-sensibility", "emma"}
    first = root / "austen" / "emma" / "chapter-001.txt"
    assert first.read_text() == "Emma, chapter 1, reflowed.\n"


def test_missing_sources_name_the_install_command(home):
    for name in ("java", "cpp", "javascript", "text"):
        assert CORPORA[name].find()[1] == []
        with pytest.raises(PrunekitError, match="install_corpora.sh"):
            CORPORA[name].files("calib")
