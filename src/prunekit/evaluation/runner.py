"""The generic code-evaluation runner: prompts, batched generation, extraction, sandboxed
execution, pass@k and per-problem rows, for any registered `CodeBenchmark`."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from prunekit.errors import PrunekitError

MODES = ("completion", "chat")


@dataclass
class RunSettings:
    """How one benchmark run generates and executes."""

    mode: str | None = None  # None/'auto': chat if the tokenizer has a chat template
    samples: int = 1
    temperature: float = 0.0
    limit: int | None = None
    max_new_tokens: int = 512
    batch_size: int = 8
    limits: object = None  # sandbox.Limits (default limits when None)
    workers: int | None = None
    seed: int = 0
    device: object = "cpu"
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        """One PrunekitError line for a bad setting."""
        from prunekit.evaluation.sandbox import check_workers

        if self.samples < 1:
            raise PrunekitError(f"--samples must be at least 1, got {self.samples}")
        if self.samples > 1 and self.temperature <= 0:
            raise PrunekitError(
                "--samples N > 1 needs sampling: pass --temperature T > 0 (e.g. 0.8)"
            )
        if self.temperature < 0:
            raise PrunekitError(f"--temperature must be >= 0, got {self.temperature}")
        if self.max_new_tokens < 1:
            raise PrunekitError(f"--max-new-tokens must be positive, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise PrunekitError(f"--gen-batch-size must be positive, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise PrunekitError(f"--limit must be a positive number of problems, got {self.limit}")
        check_workers(self.workers)


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


def truncate_at_stops(text: str, stops: tuple[str, ...]) -> str:
    """Cut `text` at the earliest stop sequence (the stop itself is dropped)."""
    cut = len(text)
    for stop in stops:
        i = text.find(stop)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def check_results_file(path: Path) -> None:
    """The per-problem results file can be written (checked before any generation)."""
    from prunekit.utils import check_output_file

    check_output_file(path, "--humaneval-jsonl")


def write_results(path: Path, rows: list[dict], rescue_prefix: str = "prunekit-humaneval-") -> Path:
    """Write the per-problem rows to `path` (whole or not at all); if that location fails now
    (disk full, read-only), to the temp directory instead, saying where. Returns the file used."""
    import json

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
        fd, rescue = tempfile.mkstemp(prefix=rescue_prefix, suffix=".jsonl")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(
            f"prunekit: could not write '{path}' ({exc.strerror}); the per-problem results are "
            f"in '{rescue}' instead",
            file=sys.stderr,
        )
        return Path(rescue)


def _rows(problems, results, completions, gens, samples: int) -> tuple[list, list, Counter]:
    """Per-problem rows, (n, c) counts and outcome kinds."""
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
    return rows, counts, kinds


def run_benchmark(
    bench,
    model,
    tokenizer,
    settings: RunSettings,
    *,
    jsonl_path: Path | None = None,
    model_name: str = "the model",
) -> dict:
    """Generate, execute in the sandbox, score pass@k; write per-problem rows to `jsonl_path`."""
    from tqdm.auto import tqdm

    from prunekit.evaluation import generation, sandbox
    from prunekit.evaluation.passk import ks_for, mean_pass_at_k

    settings.validate()
    limits = settings.limits or sandbox.Limits()
    mode = resolve_mode(settings.mode, tokenizer, model_name)
    bench.preflight()
    problems = bench.load(settings.limit)
    sandbox.check_sandbox_can_score()  # before generating: the completions could not be scored
    if jsonl_path is not None:
        check_results_file(Path(jsonl_path))
    start = time.perf_counter()
    prompts = [bench.prompt(p, mode, tokenizer) for p in problems]
    stops = bench.stops(mode)
    samples = settings.samples
    gens, gen_stats = generation.generate_batched(
        model,
        tokenizer,
        prompts,
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
        num_samples=samples,
        temperature=settings.temperature,
        stops=stops,
        add_special_tokens=(mode == "completion"),
        device=settings.device,
        seed=settings.seed,
        progress=settings.progress,
        desc=f"{bench.title} generate",
    )
    completions = [[bench.completion(g.text, mode) for g in per] for per in gens]
    checks = [bench.check(p, c, mode) for p, per in zip(problems, completions) for c in per]
    exec_start = time.perf_counter()
    with tqdm(
        total=len(checks),
        desc=f"{bench.title} execute",
        unit="prog",
        disable=not settings.progress,
    ) as bar:
        results = sandbox.run_many(checks, limits, workers=settings.workers, progress=bar.update)
    exec_s = time.perf_counter() - exec_start
    rows, counts, kinds = _rows(problems, results, completions, gens, samples)
    problems_file = None
    if jsonl_path is not None:
        written = write_results(Path(jsonl_path), rows)
        problems_file = written.name if written == Path(jsonl_path) else str(written)
    pass_at = {f"pass@{k}": round(mean_pass_at_k(counts, k), 6) for k in ks_for(samples)}
    temperature = settings.temperature
    return {
        "benchmark": bench.title,
        "mode": mode,
        "problems": len(problems),
        "limited": settings.limit is not None and len(problems) < bench.size,
        "limit": settings.limit,
        "samples": samples,
        "temperature": temperature,
        "decoding": "greedy" if temperature == 0 else f"sampling (T={temperature}, top_p=0.95)",
        **pass_at,
        "solved": sum(c > 0 for _, c in counts),
        "outcomes": dict(sorted(kinds.items())),
        "stop_sequences": list(stops),
        "prompt": bench.prompt_label(mode),
        **gen_stats,
        "execution_s": round(exec_s, 3),
        "wall_s": round(time.perf_counter() - start, 3),
        "sandbox": {
            **sandbox.sandbox_identity(),
            "wall_s": limits.wall_s,
            "cpu_s": limits.cpu_s,
            "memory_mb": limits.memory_mb,
        },
        "problems_file": problems_file,  # a full path when it had to go elsewhere
        **bench.identity(),
    }
