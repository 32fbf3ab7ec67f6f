"""One place that says how every table in benchmarks/results/ is made, and re-makes them.

    python benchmarks/regenerate.py --list
    python benchmarks/regenerate.py --run all            # or --run NAME [NAME ...]
    python benchmarks/regenerate.py --run all --dry-run  # print the commands only

Each entry runs under `flock /tmp/prunekit-bench.lock` (an entry's steps hold the lock together)
from the repository root, output streamed; the first failure stops the run. Entries that need the
llm-compressor peer venv are skipped with a note when it is missing. Commands are the ones the
result files record (`command` / argv), unless a comment says the command was reconstructed.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LOCK = "/tmp/prunekit-bench.lock"
PEER_PYTHON = "/work/peers-venv/bin/python"


@dataclass(frozen=True)
class Entry:
    """One result table: shell-style steps run in order, the files they write, a rough cost."""

    name: str
    steps: tuple[str, ...]  # a leading `python` / `prunekit` means this venv's
    outputs: tuple[str, ...]  # paths or glob patterns under benchmarks/results/ (dir/ = folder)
    minutes: int  # rough wall time on a shared 2-core CPU machine
    peer: bool = False  # needs the llm-compressor venv at PEER_PYTHON
    note: str = ""

    @property
    def cost(self) -> str:
        return f"~{self.minutes} min on 2 cores"

    @property
    def scripts(self) -> list[str]:
        """The benchmark scripts the steps run."""
        return [s.split()[1] for s in self.steps if s.startswith("python benchmarks/")]


def files(stem: str, *suffixes: str) -> tuple[str, ...]:
    return tuple(stem + s for s in suffixes)


def allocation(name: str, minutes: int, argv: str) -> Entry:
    """An allocation.py run; argv is its JSON's meta.command."""
    outputs = files(name, ".json", ".md", ".png", "_blocks.png", "_neuroal_search.png")
    return Entry(name, (f"python benchmarks/allocation.py {argv}",), outputs, minutes)


Q = "qwen2.5-coder-0.5b"
A32 = "--samples 32 --seq-len 256 --ppl-tokens 8192"
A64 = "--samples 64 --seq-len 512 --ppl-tokens 8192 --sparsities 0.6 --methods wanda"
SPEED = "--prefill 128 --decode 32 --repeats 3 --speed-threads 1"
S2 = "--ppl-tokens 2048 --ppl-seq-len 512 --depth-samples 2 --depth-seq-len 128"

# In the order `--run all` takes them: oneshot writes the runs/oneshot/ checkpoints code_eval reads.
ENTRIES: tuple[Entry, ...] = (
    Entry(
        "oneshot",
        (
            f"python benchmarks/oneshot.py --model {Q} --samples 64 --seq-len 512 --ppl-tokens 16384",
        ),
        files(f"oneshot_{Q}_float32", ".json", ".md"),
        60,
        note="also writes the runs/oneshot/<method>-<pattern>/ checkpoints code_eval reads",
    ),
    # Reconstructed: the committed reports are a HumanEval run (this command without
    # --speed-repeats 3) plus a later `--skip-humaneval --speed-repeats 3` speed run (recorded in
    # code_eval/*/report.json) after the peak-RSS fix; one run now does both.
    Entry(
        "code_eval",
        (
            "python benchmarks/code_eval.py --dtype bfloat16 --extra-speed-dtypes float32 "
            f"--speed-repeats 3 --models dense={Q} wanda50=runs/oneshot/wanda-unstructured "
            "sg24=runs/oneshot/sparsegpt-2_4",
        ),
        ("code_eval.json", "code_eval.md", "code_eval.png", "code_eval/"),
        40,
        note="needs oneshot's runs/oneshot/ checkpoints",
    ),
    Entry(
        "code_eval_modes",
        (
            "python benchmarks/code_eval.py --dtype bfloat16 --skip-speed --mode completion "
            f"--out benchmarks/results/code_eval_modes --models dense-completion={Q}",
        ),
        ("code_eval_modes.json", "code_eval_modes.md", "code_eval_modes.png", "code_eval_modes/"),
        5,
    ),
    # Reconstructed from benchmarks/README.md: submodels.json records the prunekit commands the
    # script ran (which these flags produce), not the script's own argv.
    Entry(
        "submodels",
        ("python benchmarks/submodels.py --samples 32 --eval-tokens 8192",),
        ("submodels.json", "submodels.md", "submodels_*.png"),
        45,
    ),
    allocation(f"allocation_{Q}", 80, f"--model {Q} {A32}"),
    allocation(
        f"allocation_{Q}_wanda_coarse",
        15,
        f"--model {Q} {A32} --methods wanda --allocations uniform,neuroal --neuroal-grid coarse "
        "--tag _wanda_coarse",
    ),
    allocation("allocation_smollm2-135m", 25, f"--model smollm2-135m {A32}"),
    allocation(
        "allocation_smollm2-135m_wanda_coarse",
        8,
        f"--model smollm2-135m {A32} --methods wanda --allocations uniform,owl,neuroal "
        "--neuroal-grid coarse --tag _wanda_coarse",
    ),
    allocation(
        "allocation_smollm2-135m_defaults_coarse",
        5,
        f"--model smollm2-135m {A64} --allocations uniform,neuroal --neuroal-grid coarse "
        "--tag _defaults_coarse",
    ),
    allocation(
        "allocation_smollm2-135m_defaults_full",
        8,
        f"--model smollm2-135m {A64} --allocations uniform,neuroal --tag _defaults_full",
    ),
    Entry(  # the scoring run, then the timing phase of the exports it kept (command, speed_command)
        f"structural_{Q}",
        (
            f"python benchmarks/structural.py --model {Q} {S2} --depth-k 2 4 "
            "--criteria cosine,angular,kl --last-token 1 --width-samples 8 --taylor-samples 4 "
            "--width-criteria activation,output,taylor --full-k 0 1 2 --full-keep 0.95 0.9 "
            f"{SPEED} --defer-speed",
            f"python benchmarks/structural.py --model {Q} --speed-only {SPEED}",
        ),
        files(f"structural_{Q}", ".json", ".md", "_depth_*.png", "_tradeoff.png"),
        15,
    ),
    Entry(
        f"structural_{Q}_full-output",
        (
            f"python benchmarks/structural.py --model {Q} --tag {Q}_full-output {S2} "
            "--width-samples 8 --only dense,full --full-k 0 1 2 --full-keep 0.97 0.95 0.9 "
            f"--full-width-criterion output {SPEED} --defer-speed",
            f"python benchmarks/structural.py --model {Q} --tag {Q}_full-output --speed-only "
            f"--keep-exports {SPEED}",
        ),
        (f"structural_{Q}_full-output*",),
        15,
    ),
    Entry(
        "structural_gemma3-270m_vocab",
        ("python benchmarks/structural.py --gemma --ppl-tokens 2048 --ppl-seq-len 512",),
        files("structural_gemma3-270m_vocab", ".json", ".md"),
        3,
    ),
    # Reconstructed from the script's docstring (never run to completion): its defaults, with
    # the peer venv instead of the docstring's /tmp/lcvenv.
    Entry(
        "llmcompressor_reference",
        (f"python benchmarks/llmcompressor_reference.py --lc-python {PEER_PYTHON}",),
        files(f"llmcompressor_{Q}", ".json", ".md"),
        60,
        peer=True,
    ),
    Entry(
        "recovery",
        (
            "python benchmarks/recovery.py --run wanda50 wanda50:full seed seed:full vocab seed-depth",
        ),
        files(f"recovery_{Q}", ".json", ".md", ".png"),
        230,
        note="reuses runs/q-<student>[-<recovery>] folders when present (move them aside for a "
        "fresh result); each cell run replaces its record in the JSON, the table shows every "
        "recorded cell",
    ),
    Entry(
        "repair",
        (
            "python benchmarks/repair.py --run dense depth2 depth1 depth1-repair depth2-repair "
            "depth2-run-repair depth1-layer6 depth4 depth4-repair depth4-run-repair width90 "
            "width90-refit width80 width80-refit saap20 saap20-refit wanda50-python wanda50-instruct "
            "wanda50-answered sg24-python sg24-instruct sg24-answered seed seed-repair",
        ),
        files(f"repair_{Q}", ".json", ".md", ".png"),
        450,
        note="issue 27's table: each cell is a prune + full HumanEval (10-40 min on 2 cores); "
        "reuses runs/r-<cell> folders when present; `--list` shows every cell, the rest can be "
        "added to --run",
    ),
    Entry(
        "humaneval_x",
        (
            "python benchmarks/humaneval_x.py --run dense wanda50-python:cpp,java,python "
            "wanda50-java:cpp,java,python wanda50-cpp:cpp,java,python",
            "python benchmarks/humaneval_x.py --dtype float32 --run wanda50-javascript:js "
            "wanda50-python:js wanda50-java:js wanda50-cpp:js",
            "python benchmarks/humaneval_x.py --run vocab-python vocab-java vocab-cpp "
            "vocab-javascript",
        ),
        (f"humaneval_x_{Q}.json", f"humaneval_x_{Q}.md", f"humaneval_x_{Q}*.png"),
        450,
        note="issue 30: dense in 5 languages and the Python/Java/C++ Wanda 50% cells in C++, "
        "Java, Python (bfloat16, on an avx512_bf16 machine: prune ~4 min, 4-6 min a language); "
        "the JavaScript column pruned and judged in float32 on an AVX2-only machine from a fresh "
        "runs/ (bfloat16 there is 3-4x slower; prune ~7 min, ~10 min a language); each (cell, "
        "language) resumes alone (CELL:lang); the vocabulary rows made and judged in bfloat16 "
        "on an avx512_bf16 EPYC (make 24-117 s, 5-11 min a language; 2 h in all)",
    ),
    Entry(
        "gguf",
        (
            "python benchmarks/gguf_llamacpp.py --run dense:f16 vocab-wide:q8_0 vocab-wide:f16 dense:q8_0",
            "python benchmarks/gguf_llamacpp.py --run dense:transformers vocab-wide:transformers",
            "python benchmarks/gguf_llamacpp.py --parallel 8 --check-parallel dense",
            "python benchmarks/gguf_llamacpp.py --agree dense",
            "python benchmarks/gguf_llamacpp.py --agree vocab-wide",
            "python benchmarks/gguf_llamacpp.py --speed dense:f16 vocab-wide:q8_0 dense:q8_0 "
            "vocab-wide:f16 dense:q4_0 vocab-wide:q4_0 dense:transformers vocab-wide:transformers",
        ),
        (f"gguf_{Q}.json", f"gguf_{Q}.md"),
        80,
        note="issue 29: each cell exports a GGUF and runs full HumanEval + speed in llama.cpp, "
        "one sequence at a time on 2 threads (dense f16 39 min, vocabulary-wide q8_0 29 min on the "
        "AMX Xeon, vocabulary-wide f16 19 min and dense q8_0 18 min on an avx512_bf16 EPYC; the two "
        "transformers cells, bfloat16, 15 min together there); `--list` shows "
        "every cell (q4_0, the seed recipe) and `--agree MODEL` the 20-prompt "
        "greedy check; `--check-parallel` 4 min and `--speed` ~1 min a cell (the seed recipe "
        "itself ~30 min to make) on an AVX2 2-core machine",
    ),
    Entry(
        "saap",
        (
            "python benchmarks/saap.py --targets 0.2,0.35 --export "
            "fused:adaptive:0.2,taylor_vector:uniform:0.2,fused:adaptive:0.35 "
            "--decode-new 32 --decode-repeats 3",
        ),
        files(f"saap_{Q}", ".json", ".md", ".png"),
        27,
    ),
    Entry(
        "saap_stable",
        (
            "python benchmarks/saap.py --targets 0.2,0.35 --importances taylor_vector,fused "
            "--ratios uniform,stable --export fused:stable:0.2 --decode-new 32 --decode-repeats 3 "
            "--tag _stable",
        ),
        files(f"saap_{Q}_stable", ".json", ".md", ".png"),
        13,
    ),
    # prune_speed's plain entry has no committed result yet (its command is the script's docstring)
    Entry(
        "peers",
        (
            "python benchmarks/peers.py --model smollm2-135m --samples 16 --seq-len 256 "
            "--ppl-tokens 16384 --stream pruned,dense",
        ),
        files("peers_smollm2-135m", ".json", ".md"),
        25,
        peer=True,
    ),
    Entry(
        "peers_qwen",
        (
            "python benchmarks/peers.py --model qwen2.5-coder-0.5b --samples 32 --seq-len 256 "
            "--ppl-tokens 16384 --configs wanda:unstructured,sparsegpt:2:4 "
            "--stream pruned,dense",
        ),
        files("peers_qwen2.5-coder-0.5b", ".json", ".md"),
        50,
        peer=True,
    ),
    Entry(
        "prune_speed",
        ("python benchmarks/prune_speed.py --model smollm2-135m --samples 32 --seq-len 256",),
        files("prune_speed_smollm2-135m", ".json", ".md"),
        20,
    ),
    Entry(
        "prune_speed_defaults",
        (
            "python benchmarks/prune_speed.py --model smollm2-135m --samples 64 --seq-len 512 "
            "--sparsity 0.6 --variants wanda,neuroal,neuroal/cached,neuroal/cached-4 --tag defaults",
        ),
        files("prune_speed_smollm2-135m_defaults", ".json", ".md"),
        27,
    ),
    Entry(
        "prune_speed_defaults_4",
        (
            "python benchmarks/prune_speed.py --model smollm2-135m --samples 64 --seq-len 512 "
            "--sparsity 0.6 --variants wanda,neuroal/4 --tag defaults_4",
        ),
        files("prune_speed_smollm2-135m_defaults_4", ".json", ".md"),
        11,
    ),
    Entry(
        "depth_cost",
        (
            "python benchmarks/depth_cost.py --model smollm2-135m --samples 2 --seq-len 128 "
            "--remove 4",
        ),
        files("depth_cost_smollm2-135m", ".json", ".md"),
        5,
    ),
    Entry(
        "mmap_rss",
        ("python benchmarks/mmap_rss.py --model qwen2.5-coder-0.5b",),
        files(f"mmap_rss_{Q}", ".json", ".md"),
        1,
    ),
    # Reconstructed from generation_throughput.md: the committed rows ran one process per
    # (model, generator) with --only new|old, on recipes/seed_structural.yaml's output with
    # model smollm2-135m and 16 × 256 calibration windows (its evaluation is dropped here). The
    # script appends to its JSON, hence the rm; it never writes the .md, which is hand-written.
    Entry(
        "generation_throughput",
        (
            "mkdir -p /tmp/pk",
            "sed -e 's/^model: .*/model: smollm2-135m/' -e 's/samples: 64, seq_len: 512/samples: "
            "16, seq_len: 256/' -e '/^evaluate:/d' recipes/seed_structural.yaml "
            "> /tmp/pk/seed_smollm2.yaml",
            "prunekit run /tmp/pk/seed_smollm2.yaml -o /tmp/pk/s-seed --force",
            "rm -f benchmarks/results/generation_throughput.json",
            "python benchmarks/generation_throughput.py smollm2-135m /tmp/pk/s-seed "
            "--label 'smollm2 dense' --label 'smollm2 seed-structural' --limit 10 "
            "--max-new-tokens 256 --batch-size 8 --dtype bfloat16",
        ),
        ("generation_throughput.json", "generation_throughput.md"),
        25,
        note="rewrites the JSON only: update the hand-written .md's tables from it",
    ),
    # qwen's pair, same settings as the smollm2 quiet-machine rows (HumanEval defaults, 20 problems);
    # the student is recipes/seed_structural.yaml as it stands (its evaluation dropped)
    Entry(
        "generation_throughput_qwen",
        (
            "mkdir -p /tmp/pk",
            "sed -e '/^evaluate:/d' recipes/seed_structural.yaml > /tmp/pk/seed_qwen.yaml",
            "prunekit run /tmp/pk/seed_qwen.yaml -o runs/q-seed --force",
            "rm -f benchmarks/results/generation_throughput_qwen.json",
            "python benchmarks/generation_throughput.py qwen2.5-coder-0.5b runs/q-seed "
            "--label 'qwen dense' --label 'qwen seed-structural' --limit 20 --dtype auto "
            "--only new --out benchmarks/results/generation_throughput_qwen.json",
        ),
        ("generation_throughput_qwen.json",),
        75,
        note="reuse an existing runs/q-seed made by the same recipe by skipping the first three steps",
    ),
    Entry(
        "search",
        (
            "python benchmarks/search.py --hours 1.5 --run seed",
            "python benchmarks/search.py --run spearman --at-most 3",
        ),
        (f"search_{Q}.json", f"search_{Q}.md", f"search_{Q}_seed/"),
        120,
        note="issue 28: 1.5 h of search (3 CPU-hours on 2 cores) at the seed recipe's budget, then "
        "full HumanEval (~8 min, bfloat16 on an avx512_bf16 EPYC; 1 h 37 min in all); the search is "
        "time-bounded, so a rerun on another machine explores a different number of generations; "
        "`--run spearman` judges the plans not judged yet, `--at-most N` a call, ~17 min each "
        "(9 of them regenerating the 64 teacher answers of the plan rebuild); the call above was "
        "stopped after its second plan (the chosen one reused, plan_11 judged) at the session's end; "
        "`--run minus20` is not run yet",
    ),
    # issue 28's one short search, run by hand (README "Search"); the 3-hour cells are search.py's
    Entry(
        "search_minus20_short",
        (
            "prunekit search qwen2.5-coder-0.5b --budget params=0.8 --hours 0.4 --dtype auto "
            "--calib answered:python --calib-samples 32 --seq-len 1024 -o runs/s-minus20-short",
            "prunekit eval runs/s-minus20-short --humaneval --dtype auto",
            "mkdir -p benchmarks/results/search_minus20_short",
            "cp runs/s-minus20-short/report.json runs/s-minus20-short/report.md "
            "runs/s-minus20-short/plan.json runs/s-minus20-short/pareto.png "
            "runs/s-minus20-short/humaneval_problems.jsonl benchmarks/results/search_minus20_short/",
        ),
        ("search_minus20_short/",),
        50,
        note="a 0.4-h search is time-bounded: a rerun on another machine explores a different number of generations",
    ),
)
BY_NAME = {e.name: e for e in ENTRIES}


def resolve(step: str) -> str:
    """The step with a leading `python` / `prunekit` replaced by this venv's."""
    head, _, rest = step.partition(" ")
    exe = {"python": sys.executable, "prunekit": str(Path(sys.executable).with_name("prunekit"))}
    return f"{shlex.quote(exe[head])} {rest}" if head in exe else step


def command(entry: Entry) -> list[str]:
    """The entry's steps as one command under the bench lock."""
    steps = [resolve(s) for s in entry.steps]
    if len(steps) == 1 and not any(c in steps[0] for c in "<>|&;"):
        return ["flock", LOCK, *shlex.split(steps[0])]
    return ["flock", LOCK, "sh", "-c", " && ".join(steps)]


def print_list() -> None:
    rows = [("name", "cost", "outputs", "command")]
    for e in ENTRIES:
        rows.append((e.name + (" [peer venv]" if e.peer else ""), e.cost, " ".join(e.outputs), ""))
        rows += [("", "", "", f"$ {s}") for s in e.steps]
        if e.note:
            rows.append(("", "", "", f"note: {e.note}"))
    w = [max(len(r[i]) for r in rows) for i in range(2)]
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2] or r[3]}".rstrip())
        if r[2] and r[3]:
            print(f"{'':<{w[0] + w[1] + 4}}{r[3]}")
    total = sum(e.minutes for e in ENTRIES)
    print(f"\n{len(ENTRIES)} entries; --run all takes about {total / 60:.0f} h (estimate, 2 cores)")


def run(names: list[str], dry_run: bool) -> int:
    entries = list(ENTRIES) if names == ["all"] else [BY_NAME[n] for n in names]
    for i, e in enumerate(entries):
        cmd = shlex.join(command(e))
        missing_peer = e.peer and not Path(PEER_PYTHON).exists()
        if dry_run:
            print(cmd + (f"  # would be skipped: {PEER_PYTHON} missing" if missing_peer else ""))
            continue
        if missing_peer:
            print(f"regenerate: skipping {e.name}: {PEER_PYTHON} missing", flush=True)
            continue
        print(f"regenerate: {e.name} ({e.cost}): {cmd}", flush=True)
        rc = subprocess.run(command(e), cwd=ROOT).returncode
        if rc != 0:
            rest = ", ".join(x.name for x in entries[i + 1 :]) or "none"
            print(f"regenerate: {e.name} failed (exit {rc}); stopped; not run: {rest}", flush=True)
            return rc
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print every entry (the default)")
    ap.add_argument("--run", nargs="+", metavar="NAME", help="entries to run, or 'all'")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args()
    if not args.run:
        print_list()
        return 0
    unknown = [n for n in args.run if n not in BY_NAME] if args.run != ["all"] else []
    if unknown:
        ap.error(f"unknown entries {unknown}; choose 'all' or from: {', '.join(BY_NAME)}")
    return run(args.run, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
