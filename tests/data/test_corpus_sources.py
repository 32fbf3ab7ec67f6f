import struct
import zlib

import pytest

from prunekit.data import corpus_sources as cs
from prunekit.data.corpora import CORPORA, is_eval_file
from prunekit.submodels.languages import split_documents


def _r_strings(lines: list[str]) -> bytes:
    """An R XDR serialisation (version 3) of a character vector, as janeaustenr stores it."""
    body = b"X\n" + struct.pack(">iii", 3, 0x40201, 0x30500) + struct.pack(">i", 5) + b"UTF-8"
    body += struct.pack(">ii", 16, len(lines))
    for line in lines:
        raw = line.encode()
        body += struct.pack(">ii", 0x40009, len(raw)) + raw
    return struct.pack(">i", len(body)) + b"Z" + zlib.compress(body)


def test_r_lazyload_database_is_read_vector_by_vector():
    a = ["EMMA", "", "CHAPTER I", "Emma Woodhouse, handsome,", "clever, and rich.", "", "Next."]
    b = ["Persuasion", "Chapter 1", "Sir Walter Elliot"]
    vectors = list(cs.r_string_vectors(_r_strings(a) + _r_strings(b)))
    assert vectors == [a, b]


def test_chapters_are_split_and_paragraphs_reflowed():
    lines = ["TITLE", "Chapter 1", "", "One two", "three.", "", "Four.", "CHAPTER II", "Five"]
    assert cs.chapters(lines) == [
        ("chapter-001", "One two three.\n\nFour.\n"),
        ("chapter-002", "Five\n"),
    ]


def test_licence_headers_are_removed_and_code_comments_kept():
    java = "/*\n * Copyright (c) 2003 Oracle\n * GPL v2\n */\n\npackage java.util;\n"
    assert cs.strip_licence_header(java) == "package java.util;\n"
    cpp = "// Copyright (C) 2008 FSF\n// GNU GPL\n\n#pragma once\n"
    assert cs.strip_licence_header(cpp) == "#pragma once\n"
    doc = "/** Returns the size. */\nint size();\n"
    assert cs.strip_licence_header(doc) == doc


def test_user_documents_split_disjointly():
    docs = [f"doc {i}" for i in range(25)]
    calib, held = split_documents(docs, "calib"), split_documents(docs, "eval")
    assert not set(calib) & set(held) and len(held) == 2 and len(calib) + len(held) == 25
    one = "".join(f"line {i}\n" for i in range(100))
    c1, e1 = split_documents([one], "calib")[0], split_documents([one], "eval")[0]
    assert c1 + e1 == one and e1.startswith("line 90")


@pytest.mark.parametrize("name", ["python", "java", "cpp", "javascript", "text"])
def test_builtin_corpus_splits_are_disjoint_by_file(name):
    corpus = CORPORA[name]
    root, files = corpus.find()
    if not files:
        pytest.skip(f"corpus '{name}' not installed here ({corpus.install_hint})")
    calib, held = corpus.files("calib"), corpus.files("eval")
    assert calib and held and not set(calib) & set(held)
    assert all(is_eval_file(f.relative_to(root)) for f in held)
    assert corpus.licence and corpus.description


def test_comma_joined_sources_are_read_one_after_another(tmp_path):
    from prunekit.data.sources import UnionSource, resolve_source
    from prunekit.errors import PrunekitError

    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.txt").write_text("words\n")
    src = resolve_source(f"{tmp_path / 'a.py'},{tmp_path / 'b.txt'}", "calib")
    assert isinstance(src, UnionSource)
    assert list(src.documents()) == ["x = 1\n", "words\n"]
    assert " + " in src.description
    assert resolve_source(f"{tmp_path / 'a.py'},", "calib").name == str(tmp_path / "a.py")
    with pytest.raises(PrunekitError, match="no/such"):
        resolve_source(f"{tmp_path / 'a.py'},no/such", "calib")
    with pytest.raises(PrunekitError, match="names no corpus"):
        resolve_source(",", "calib")
