"""The code-evaluation part of `prunekit eval`: pass@k by execution on the registered code
benchmarks (`--benchmark humaneval`, `--benchmark humaneval-x:java`, ...), and speed.

`eval_cmd` calls `register_args(parser)` and `run(args, loaded, device, out_dir)`; the
returned sections are merged into `report["evaluation"]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from prunekit.errors import PrunekitError

UNSAFE_SAME_UID = "PRUNEKIT_UNSAFE_SAME_UID_SANDBOX"  # as prunekit.evaluation.sandbox names it
PROBLEMS_FILE = "humaneval_problems.jsonl"


def register_args(parser: argparse.ArgumentParser) -> None:
    from prunekit.evaluation.benchmarks import benchmark_names

    g = parser.add_argument_group("code evaluation (pass@k by execution) and speed")
    g.add_argument(
        "--benchmark",
        action="append",
        default=None,
        metavar="NAME",
        help="run a code benchmark and execute its code in a sandbox; repeatable; one of: "
        f"{', '.join(benchmark_names())} (humaneval-x = all its languages)",
    )
    g.add_argument(
        "--humaneval",
        action="store_true",
        help="run HumanEval (164 problems): the same as --benchmark humaneval",
    )
    g.add_argument(
        "--mode",
        default="auto",
        choices=["auto", "chat", "completion"],
        help="prompt mode: chat (instruct models) or completion (base models); "
        "auto = chat if the tokenizer has a chat template",
    )
    g.add_argument(
        "--samples",
        type=int,
        default=1,
        help="samples per problem (pass@k for k <= N; needs --temperature > 0)",
    )
    g.add_argument(
        "--temperature", type=float, default=0.0, help="sampling temperature; 0 = greedy (default)"
    )
    g.add_argument("--limit", type=int, default=None, help="run only the first K problems")
    g.add_argument(
        "--max-new-tokens",
        type=int,
        default=512,
        help="generation budget per completion (default 512)",
    )
    g.add_argument(
        "--gen-batch-size",
        type=int,
        default=16,
        help="sequences decoded together; a finished one is replaced at once (default 16)",
    )
    g.add_argument(
        "--exec-timeout",
        type=float,
        default=10.0,
        help="wall-time limit per candidate in seconds (default 10)",
    )
    g.add_argument(
        "--exec-memory-mb",
        type=int,
        default=1024,
        help="address-space limit per candidate (default 1024 MiB)",
    )
    g.add_argument(
        "--exec-workers",
        type=int,
        default=None,
        help="candidates executed in parallel (default: min(4, cores))",
    )
    g.add_argument(
        "--unsafe-same-uid-sandbox",
        action="store_true",
        help="score generated code even where it would run as your own uid (not root, no user "
        "namespaces): it could then forge its verdict or change your files, so only for code "
        f"you trust; sets {UNSAFE_SAME_UID}=1 for this run (the README's sandbox section says "
        "what each mode guarantees)",
    )
    g.add_argument(
        "--humaneval-jsonl",
        "--problems-jsonl",
        dest="humaneval_jsonl",
        type=Path,
        default=None,
        help=f"where to write per-problem results of the one benchmark run (default: "
        f"{PROBLEMS_FILE}, or <benchmark>_problems.jsonl, beside the report, or a temporary "
        "file when there is no report)",
    )
    g.add_argument(
        "--speed",
        action="store_true",
        help="measure prefill/decode throughput, memory, size and FLOPs per token",
    )
    g.add_argument("--speed-prompt-len", type=int, default=256, help="prefill length (default 256)")
    g.add_argument(
        "--speed-decode-steps",
        type=int,
        default=32,
        help="timed decode steps per repetition (default 32)",
    )
    g.add_argument(
        "--speed-batch",
        type=int,
        default=8,
        help="the larger decode batch (batch 1 is always measured; default 8)",
    )
    g.add_argument(
        "--speed-repeats",
        type=int,
        default=5,
        help="timed repetitions after one warm-up; the median is reported (default 5)",
    )
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def check_args(args: argparse.Namespace) -> None:
    """Validate the code-evaluation flags (cheap; eval_cmd may call it before loading)."""
    if args.limit is not None and args.limit < 1:
        raise PrunekitError(f"--limit must be a positive number of problems, got {args.limit}")
    if args.samples < 1:
        raise PrunekitError(f"--samples must be at least 1, got {args.samples}")
    if args.temperature < 0:
        raise PrunekitError(f"--temperature must be >= 0, got {args.temperature}")
    if args.samples > 1 and args.temperature == 0:
        raise PrunekitError("--samples N > 1 needs sampling: add --temperature T (e.g. 0.8)")
    for name in (
        "max_new_tokens",
        "gen_batch_size",
        "speed_prompt_len",
        "speed_decode_steps",
        "speed_batch",
        "speed_repeats",
    ):
        if getattr(args, name) < 1:
            raise PrunekitError(f"--{name.replace('_', '-')} must be positive")
    if args.exec_timeout <= 0 or args.exec_memory_mb < 64:
        raise PrunekitError("--exec-timeout must be > 0 and --exec-memory-mb at least 64")
    if args.exec_workers is not None and args.exec_workers < 1:
        raise PrunekitError(f"--exec-workers must be at least 1, got {args.exec_workers}")
    names = benchmark_keys(args)
    if names:
        from prunekit.evaluation.benchmarks import get_benchmark
        from prunekit.evaluation.runner import check_results_file
        from prunekit.evaluation.sandbox import check_sandbox_can_score

        if args.humaneval_jsonl is not None and len(names) > 1:
            raise PrunekitError(
                f"--humaneval-jsonl names one file but {len(names)} benchmarks were asked for "
                f"({', '.join(names)}); drop it (each writes <benchmark>_problems.jsonl)"
            )
        for name in names:
            get_benchmark(name).preflight()  # data present, compilers installed
        with unsafe_same_uid(getattr(args, "unsafe_same_uid_sandbox", False)):
            check_sandbox_can_score()
        if args.humaneval_jsonl is not None:
            check_results_file(Path(args.humaneval_jsonl))


def benchmark_keys(args: argparse.Namespace) -> list[str]:
    """The registered benchmarks asked for (--humaneval is --benchmark humaneval), in order;
    an unknown name is one PrunekitError listing the valid ones."""
    from prunekit.evaluation.benchmarks import expand

    names = ["humaneval"] if getattr(args, "humaneval", False) else []
    return expand(names + list(getattr(args, "benchmark", None) or []))


@contextlib.contextmanager
def unsafe_same_uid(enabled: bool) -> Iterator[None]:
    """With `enabled` (--unsafe-same-uid-sandbox), PRUNEKIT_UNSAFE_SAME_UID_SANDBOX=1 within the
    block only, restored after."""
    if not enabled:
        yield
        return
    before = os.environ.get(UNSAFE_SAME_UID)
    os.environ[UNSAFE_SAME_UID] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(UNSAFE_SAME_UID, None)
        else:
            os.environ[UNSAFE_SAME_UID] = before


def _jsonl_path(args: argparse.Namespace, out_dir: Path | None, bench) -> Path:
    if args.humaneval_jsonl is not None:
        return Path(args.humaneval_jsonl)
    if out_dir is not None:
        return Path(out_dir) / bench.problems_file
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(args.model)).strip("_")[-60:] or "model"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kind = bench.name.replace(":", "-")
    return Path(tempfile.gettempdir()) / f"prunekit-{kind}-{slug}-{stamp}.jsonl"


def run_settings(args: argparse.Namespace, device, **extra):
    """The generation and sandbox settings the code-evaluation flags ask for (eval, submodels)."""
    from prunekit.evaluation.runner import RunSettings
    from prunekit.evaluation.sandbox import Limits

    limits = Limits(
        wall_s=args.exec_timeout,
        cpu_s=max(1, int(round(args.exec_timeout))),
        memory_mb=args.exec_memory_mb,
    )
    return RunSettings(
        mode=args.mode,
        limit=args.limit,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.gen_batch_size,
        limits=limits,
        workers=args.exec_workers,
        device=device,
        progress=not args.no_progress,
        **extra,
    )


def _run_one(args: argparse.Namespace, bench, loaded, device, out_dir: Path | None) -> tuple:
    """One benchmark: its report section, its energy, and where its rows went."""
    from prunekit.evaluation.energy import EnergyMeter
    from prunekit.evaluation.runner import run_benchmark

    bench.load(limit=1)  # fail fast (install hint) before any generation
    settings = run_settings(args, device, samples=args.samples, temperature=args.temperature)
    jsonl = _jsonl_path(args, out_dir, bench)
    with (
        unsafe_same_uid(getattr(args, "unsafe_same_uid_sandbox", False)),
        EnergyMeter(device=str(device)) as meter,
    ):
        result = run_benchmark(
            bench,
            loaded.model,
            loaded.tokenizer,
            settings,
            jsonl_path=jsonl,
            model_name=f"model '{args.model}'",
        )
    moved = result["problems_file"] != jsonl.name  # the location failed: written elsewhere
    if moved:
        jsonl = Path(result["problems_file"])
    if out_dir is None or args.humaneval_jsonl is not None or moved:
        result["problems_file"] = str(jsonl.resolve())
    energy = {"scope": f"{bench.title} run (generation + execution)", **meter.result}
    return result, energy, jsonl


def run(args: argparse.Namespace, loaded, device, out_dir: Path | None) -> dict:
    """Run what was asked (code benchmarks, speed); return report sections (empty if none)."""
    names = benchmark_keys(args)
    want_speed = getattr(args, "speed", False)
    if not (names or want_speed):
        return {}
    check_args(args)
    progress = not args.no_progress
    sections: dict = {}
    for name in names:
        from prunekit.evaluation.benchmarks import get_benchmark

        bench = get_benchmark(name)
        result, energy, jsonl = _run_one(args, bench, loaded, device, out_dir)
        sections[bench.report_key] = result
        if name == "humaneval":
            sections["energy"] = energy  # where HumanEval's energy has always been
        else:
            result["energy"] = energy
        _print_humaneval(result, energy, jsonl)
    if want_speed:
        from prunekit.evaluation.speed import measure_speed

        sections["speed"] = measure_speed(
            loaded.model,
            device,
            spec=str(args.model),
            prompt_len=args.speed_prompt_len,
            decode_steps=args.speed_decode_steps,
            batch_sizes=(1, args.speed_batch),
            repeats=args.speed_repeats,
            progress=progress,
        )
        _print_speed(sections["speed"])
    return sections


def _print_humaneval(he: dict, energy: dict, jsonl: Path) -> None:
    scope = (
        f"first {he['problems']} problems (limited)"
        if he["limited"]
        else f"{he['problems']} problems"
    )
    ks = ", ".join(f"{k} {v * 100:.1f}%" for k, v in he.items() if k.startswith("pass@"))
    title = he["benchmark"]
    print(f"{title} [{he['mode']}, {he['decoding']}, {scope}]: {ks} ({he['solved']} solved)")
    print(
        f"  generated {he['generated_tokens']} tokens in {he['generation_s']:.1f}s "
        f"({he['tokens_per_s']} tok/s); execution {he['execution_s']:.1f}s; "
        f"total {he['wall_s']:.1f}s"
    )
    label = (
        "measured"
        if energy.get("measured")
        else ("estimate" if energy.get("measured") is False else energy.get("method"))
    )
    print(
        f"  energy ({label}, {energy['method']}): {energy['energy_j'] / 1000:.2f} kJ, "
        f"{energy['co2_kg'] * 1000:.2f} g CO2"
    )
    if he.get("toolchain"):
        tools = ", ".join(
            f"{v}" for k, v in he["toolchain"].items() if k not in ("language", "package")
        )
        print(f"  toolchain: {tools}")
    print(f"  per-problem results: {jsonl}")


def _print_speed(sp: dict) -> None:
    d = sp["decode"]
    dec = ", ".join(
        f"batch {v['batch']} {v['tokens_per_s']} tok/s"
        for k, v in d.items()
        if k.startswith("batch_")
    )
    print(
        f"speed [{sp['device']}, {sp['dtype']}, median of {sp['repeats']}]: prefill "
        f"{sp['prefill']['tokens_per_s']} tok/s @ {sp['prefill']['prompt_len']} tokens; "
        f"decode {dec}"
    )
    size = sp["disk"]["bytes"]
    size_txt = f"{size / 2**20:.1f} MiB on disk" if size else "size on disk unknown"
    print(
        f"  params {sp['params']['total']:,} (non-zero {sp['params']['nonzero']:,}); "
        f"{size_txt}; peak RSS {sp['memory']['peak_rss_mb']:.0f} MiB; "
        f"{sp['flops_per_token']['dense'] / 1e9:.2f} GFLOP/token"
    )
