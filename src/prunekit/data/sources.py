"""Turn a data argument (built-in corpus name, file, folder, .jsonl) into documents of text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prunekit.data.corpora import CORPORA, get_corpus
from prunekit.errors import PrunekitError

TEXT_SUFFIXES = {
    ".py",
    ".java",
    ".c",
    ".cc",
    ".cpp",
    ".cxx",
    ".h",
    ".hpp",
    ".hh",
    ".js",
    ".mjs",
    ".ts",
    ".txt",
    ".md",
    ".rst",
    ".go",
    ".rs",
    ".rb",
    ".sh",
    ".json",
    ".yaml",
    ".yml",
    ".toml",
    "",
}


class Source(Protocol):
    """Documents for one role, with what the report says about them."""

    name: str
    description: str
    licence: str

    def documents(self, tokenizer=None) -> Iterator[str]: ...


@dataclass(frozen=True)
class TextSource:
    """Documents for one role (calibration or evaluation) with a description for the report."""

    name: str
    files: tuple[Path, ...]
    description: str
    licence: str

    def documents(self, tokenizer=None) -> Iterator[str]:
        """The text of every file (`tokenizer` is unused: plain text needs no rendering)."""
        for path in self.files:
            if path.suffix == ".jsonl":
                yield from _jsonl_texts(path)
            else:
                text = path.read_text(encoding="utf-8", errors="replace")
                if text.strip():
                    yield text


def jsonl_rows(path: Path, needs: str) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) of every non-blank line; a line that is not JSON gets one
    error line naming it and what each line `needs`."""
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError:
                raise PrunekitError(
                    f"{path}:{n} is not valid JSON; each line needs {needs}"
                ) from None


def _jsonl_texts(path: Path) -> Iterator[str]:
    for n, row in jsonl_rows(path, 'a {"text": ...} object'):
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str):
            raise PrunekitError(f"{path}:{n} has no string field 'text'; each line needs one")
        yield text


def binary_problem(path: Path, probe: int = 1 << 16) -> str | None:
    """Why the start of `path` is not UTF-8 text (a NUL byte or undecodable bytes), else None;
    binary files in a folder are skipped, a binary file given by name is refused."""
    try:
        with path.open("rb") as fh:
            head = fh.read(probe)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    nul = head.find(b"\0")
    if nul >= 0:
        return f"binary data: a NUL byte at offset {nul}"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the probe's end
            return f"not UTF-8 at byte {exc.start}"
    return None


INSTRUCT = "instruct:"
ANSWERED = "answered:"  # the same instructions answered by the model (calibration/sets.py)


@dataclass(frozen=True)
class InstructionSource:
    """Code instructions made from a corpus's Python functions (signature + docstring → the
    function), rendered in the model's chat format as HumanEval's chat mode sees them; any that
    share a long n-gram with HumanEval are dropped. For calibrating what coding needs."""

    name: str
    corpus: TextSource
    description: str
    licence: str

    def documents(self, tokenizer=None) -> Iterator[str]:
        """Every clean instruction as one document (see `clean_texts`)."""
        yield from self.clean_texts(tokenizer)[0]

    def clean_texts(self, tokenizer=None) -> tuple[list[str], int]:
        """The instructions as text (chat text where the tokenizer has a chat template, else the
        function itself: its signature and docstring are the prompt) without those that share a
        13-gram with HumanEval, and how many of those were dropped."""
        from prunekit.data.decontam import decontaminate
        from prunekit.data.instruct import chat_messages, corpus_functions

        found = corpus_functions(self.corpus.files)
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            texts = [tokenizer.apply_chat_template(chat_messages(i), tokenize=False) for i in found]
        else:
            texts = [i.response for i in found]
        keep, removed = decontaminate(texts)
        return [texts[i] for i in keep], removed


@dataclass(frozen=True)
class UnionSource:
    """Several sources read one after another (e.g. `python,text` for a vocabulary that also
    knows the English words of docstrings and problem statements)."""

    name: str
    parts: tuple[Source, ...]
    description: str
    licence: str

    def documents(self, tokenizer=None) -> Iterator[str]:
        for part in self.parts:
            yield from part.documents(tokenizer)


def resolve_source(spec: str, split: str) -> Source:
    """A built-in corpus name (its `split` part), `instruct:CORPUS` (code instructions from that
    corpus's split), a user path (used whole), or several of these joined by commas."""
    if "," in spec and not Path(spec).expanduser().exists():
        parts = tuple(resolve_source(p.strip(), split) for p in spec.split(",") if p.strip())
        if not parts:
            raise PrunekitError(f"data '{spec}' names no corpus; give e.g. python or python,text")
        if len(parts) == 1:
            return parts[0]
        return UnionSource(
            spec,
            parts,
            " + ".join(p.description for p in parts),
            "; ".join(dict.fromkeys(p.licence for p in parts)),
        )
    if spec.startswith(INSTRUCT):
        corpus = resolve_source(spec[len(INSTRUCT) :], split)
        if not any(p.suffix == ".py" for p in corpus.files):
            raise PrunekitError(
                f"'{spec}' needs Python files to make instructions from; name a corpus with "
                ".py files (instruct:python)"
            )
        return InstructionSource(
            spec,
            corpus,
            f"code instructions (chat format) from {corpus.description}",
            corpus.licence,
        )
    if spec in CORPORA:
        corpus = get_corpus(spec)
        files = corpus.files(split)
        return TextSource(
            spec,
            tuple(files),
            f"{corpus.description} [{split} split, {len(files)} files]",
            corpus.licence,
        )
    path = Path(spec).expanduser()
    if not path.exists():
        raise PrunekitError(
            f"data '{spec}' is neither a built-in corpus ({', '.join(sorted(CORPORA))}) nor an existing path"
        )
    if path.is_file():
        problem = binary_problem(path)
        if problem:
            raise PrunekitError(
                f"'{spec}' is not a text file ({problem}); give source code, .txt or .jsonl files"
            )
        files = [path]
    else:
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and (p.suffix in TEXT_SUFFIXES or p.suffix == ".jsonl")
            and not p.name.startswith(".")
            and not binary_problem(p)
        )
    if not files:
        raise PrunekitError(
            f"'{spec}' holds no text files; add .py/.txt/.jsonl files or choose another path"
        )
    return TextSource(
        str(path), tuple(files), f"user data {path} ({len(files)} files)", "user-supplied"
    )
