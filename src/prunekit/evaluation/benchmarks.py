"""Code benchmarks: the interface one implements, and the registry the CLI chooses from.

A benchmark says how to load its problems, what the model sees (per mode), where a
generation stops, what of it is the completion, and what the sandbox runs (`check`); the
generic runner (`evaluation.runner.run_benchmark`) does the rest: generation, execution,
pass@k and per-problem rows. Adding a benchmark = one module with a `CodeBenchmark` subclass
and one line in `REGISTRY` (imported only when chosen, so listing names stays cheap).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from prunekit.config.registry import Registry
from prunekit.errors import PrunekitError


class CodeBenchmark(ABC):
    """One code benchmark: problems with a `task_id`, prompts, stops, extraction, checks."""

    name: str = ""  # the registry name, e.g. "humaneval-x:java"
    title: str = ""  # the report's "benchmark" value, e.g. "HumanEval-X Java"
    size: int = 164  # problems in the full benchmark (a smaller run is "limited")

    @abstractmethod
    def load(self, limit: int | None = None) -> list:
        """The problems in order; `limit` keeps the first K."""

    @abstractmethod
    def prompt(self, problem, mode: str, tokenizer) -> str:
        """The text the model continues in `mode` ('completion' or 'chat')."""

    @abstractmethod
    def stops(self, mode: str) -> tuple[str, ...]:
        """Sequences that end a generation (checked while decoding)."""

    @abstractmethod
    def completion(self, text: str, mode: str) -> str:
        """The code to test, from one generated text."""

    @abstractmethod
    def check(self, problem, completion: str, mode: str):
        """What the sandbox runs: a `sandbox.Check` or a `sandbox_compiled.ProgramCheck`."""

    def prompt_label(self, mode: str) -> str:
        """One line for the report: how prompts are built in `mode`."""
        return mode

    def preflight(self) -> None:
        """Fail fast (before the model loads or generates): data present, tools installed."""
        return None

    def identity(self) -> dict:
        """Extra report fields (language, toolchain versions, how the verdict is obtained)."""
        return {}

    @property
    def problems_file(self) -> str:
        """The default per-problem results file name beside a report."""
        return self.name.replace(":", "-") + "_problems.jsonl"

    @property
    def report_key(self) -> str:
        """The key of this benchmark's section in report['evaluation']."""
        return self.name


@dataclass(frozen=True)
class Entry:
    """Where a registered benchmark lives: module, class, and constructor arguments."""

    module: str
    cls: str
    kwargs: dict = field(default_factory=dict)


HX = "prunekit.evaluation.humaneval_x"
REGISTRY: Registry[Entry] = Registry.of(
    "benchmark",
    {
        "humaneval": Entry("prunekit.evaluation.humaneval", "HumanEvalBenchmark"),
        "humaneval-x:cpp": Entry(HX, "HumanEvalX", {"language": "cpp"}),
        "humaneval-x:java": Entry(HX, "HumanEvalX", {"language": "java"}),
        "humaneval-x:js": Entry(HX, "HumanEvalX", {"language": "js"}),
        "humaneval-x:go": Entry(HX, "HumanEvalX", {"language": "go"}),
        "humaneval-x:python": Entry(HX, "HumanEvalX", {"language": "python"}),
    },
)
# a family name stands for all its members (e.g. every HumanEval-X language)
GROUPS: dict[str, tuple[str, ...]] = {
    "humaneval-x": tuple(n for n in REGISTRY if n.startswith("humaneval-x:")),
}
ALIASES = {"c++": "cpp", "javascript": "js", "py": "python"}


def benchmark_names() -> list[str]:
    """Every name `--benchmark` accepts: registered benchmarks and family names."""
    return [*REGISTRY, *GROUPS]


def _canonical(name: str) -> str:
    family, sep, member = name.strip().lower().partition(":")
    return f"{family}:{ALIASES.get(member, member)}" if sep else family


def expand(names: list[str]) -> list[str]:
    """Registered names for `names` (families expanded, duplicates dropped, order kept); an
    unknown name is one PrunekitError listing the valid ones."""
    out: list[str] = []
    for raw in names:
        name = _canonical(raw)
        if name in GROUPS:
            out.extend(GROUPS[name])
        elif name in REGISTRY:
            out.append(name)
        else:
            raise PrunekitError(
                f"unknown benchmark '{raw}'; choose one of: {', '.join(benchmark_names())}"
            )
    return list(dict.fromkeys(out))


def get_benchmark(name: str) -> CodeBenchmark:
    """The benchmark registered as `name` (aliases such as humaneval-x:c++ accepted)."""
    (one,) = expand([name]) if _canonical(name) not in GROUPS else (None,)
    if one is None:
        raise PrunekitError(
            f"'{name}' names several benchmarks ({', '.join(GROUPS[_canonical(name)])}); choose one"
        )
    entry = REGISTRY[one]
    cls = getattr(importlib.import_module(entry.module), entry.cls)
    return cls(**entry.kwargs)
