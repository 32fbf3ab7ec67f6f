"""Code-instruction samples made offline from a corpus: a function's signature and docstring become
"write this function"; the answer is the corpus's own function, or the teacher's if it runs."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prunekit.evaluation.humaneval import CHAT_INSTRUCTION, CHAT_RESPONSE_PREFIX

MIN_BODY_LINES, MAX_BODY_LINES = 2, 40


@dataclass(frozen=True)
class Instruction:
    """One sample: the problem (signature + docstring, like a HumanEval prompt) and an answer."""

    prompt: str
    response: str
    source: str  # provenance: file and function name


def _header_and_doc(lines: list[str], fn: ast.FunctionDef, doc: ast.Expr) -> str:
    start = (fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno) - 1
    return "\n".join(lines[start : doc.end_lineno])


def functions(text: str, origin: str = "") -> list[Instruction]:
    """Top-level public functions with a docstring and a short body, as corpus-answered samples."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.splitlines()
    out = []
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name.startswith("_"):
            continue
        if not (fn.body and isinstance(fn.body[0], ast.Expr) and ast.get_docstring(fn)):
            continue
        body = fn.end_lineno - fn.body[0].end_lineno
        if not MIN_BODY_LINES <= body <= MAX_BODY_LINES:
            continue
        start = (fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno) - 1
        prompt = _header_and_doc(lines, fn, fn.body[0])
        solution = "\n".join(lines[start : fn.end_lineno])
        out.append(Instruction(prompt, solution, f"{origin}:{fn.name}"))
    return out


def corpus_functions(files: Iterable[Path]) -> list[Instruction]:
    """`functions` of every Python file, in file order."""
    found: list[Instruction] = []
    for path in files:
        if path.suffix == ".py":
            found += functions(path.read_text(encoding="utf-8", errors="replace"), str(path))
    return found


def chat_messages(sample: Instruction) -> list[dict]:
    """The sample in the same chat format the HumanEval evaluation uses (instruction + fenced reply)."""
    return [
        {"role": "user", "content": CHAT_INSTRUCTION.format(prompt=sample.prompt.strip())},
        {"role": "assistant", "content": CHAT_RESPONSE_PREFIX + sample.response.rstrip() + "\n```"},
    ]
