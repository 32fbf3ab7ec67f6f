"""Recovery benchmark: one-shot students vs the same students after `prunekit recover`,
judged by HumanEval pass@1 (full, greedy, chat mode) and held-out Python perplexity, evaluated
in bfloat16 where the CPU computes in it natively, else float32 (each cell records its dtype).

    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/recovery.py --run wanda50:full
    .venv/bin/python benchmarks/recovery.py            # only render what exists

Folders: runs/q-<student> (one-shot) and runs/q-<student>-<recovery> (recovered); every number
is read from their report.json (written by prune/run/recover and `prunekit eval`) and recorded per
cell in benchmarks/results/recovery_qwen2.5-coder-0.5b.json, from which the .md table and the .png
(pass@1 against parameters) are rendered — cells run on an earlier machine stay in the table.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"
OUT = ROOT / "benchmarks" / "results" / "recovery_qwen2.5-coder-0.5b"
RECORD = Path(f"{OUT}.json")  # every evaluated cell; the table is rendered from it
PK = [str(Path(sys.executable).with_name("prunekit"))]
MODEL = "qwen2.5-coder-0.5b"

STUDENTS = {  # name → command that makes runs/q-<name> (dense: the built-in model, linked)
    "dense": [],
    "vocab": ["run", "recipes/vocabulary.yaml"],
    "vocab-wide": ["run", "recipes/vocabulary_wide.yaml"],  # + English, JavaScript, C++
    "seed": ["run", "recipes/seed_structural.yaml"],
    # the seed recipe's depth step alone and its width step alone (which step costs HumanEval?)
    "seed-depth": ["run", "recipes/seed_structural.yaml", "depth"],
    "seed-width": ["run", "recipes/seed_structural.yaml", "width"],
    # layer 6 removed instead: first by KL on the dense model's own sandbox-checked answers
    "depth6": ["run", "recipes/seed_structural.yaml", "depth", {"layers": [6]}],
    "wanda50": ["prune", MODEL, "--method", "wanda", "--sparsity", "0.5", "--calib", "python"],
    "sg24": ["prune", MODEL, "--method", "sparsegpt", "--pattern", "2:4", "--calib", "python"],
}
RECOVERIES = {  # name → `prunekit recover` flags (20 minutes of training each on 2 CPU cores)
    "reconstruct": ["--method", "reconstruct", "--train", "full", "--windows", "64"],
    # only the layers pruning touched (after depth pruning: the layer standing for a removed one)
    "reconstruct-pruned": [
        *("--method", "reconstruct", "--train", "full", "--layers", "pruned", "--windows", "64"),
    ],
    # the same on chat-formatted instruction windows, with a tenth of the default step
    "reconstruct-instruct": [
        *("--method", "reconstruct", "--train", "full", "--layers", "pruned", "--windows", "64"),
        *("--data", "instruct:python", "--lr", "2e-4"),
    ],
    "norms": ["--train", "norms", "--time-budget", "1200"],
    "lora": ["--train", "lora", "--time-budget", "1200"],
    "full": ["--train", "full", "--time-budget", "1200"],
    # the same budget on teacher-answered instructions only (160 asked, the kept ones repeated by
    # epochs; generation and sandbox checks come before the 20 training minutes and are cached)
    "answered": [
        *("--train", "full", "--data", "answered:python", "--instructions", "160"),
        *("--time-budget", "1200"),
    ],
}


def _call(args: list[str]) -> None:
    print("+ prunekit", " ".join(args), flush=True)
    subprocess.run([*PK, *args], check=True, cwd=ROOT)


def _student_args(student: str) -> list[str]:
    """A recipe student runs without the recipe's own evaluation (the eval below does it); a
    third element keeps only that step of the recipe, a fourth replaces that step's options."""
    args = STUDENTS[student]
    if args[0] != "run":
        return args
    import yaml

    recipe = yaml.safe_load((ROOT / args[1]).read_text())
    recipe.pop("evaluate", None)
    if len(args) > 2:
        recipe["steps"] = [s for s in recipe["steps"] if args[2] in s]
    if len(args) > 3:
        recipe["steps"] = [{args[2]: args[3]}]
    RUNS.mkdir(exist_ok=True)
    path = RUNS / f"q-{student}.recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return ["run", str(path)]


def _link_dense(folder: Path) -> None:
    """runs/q-dense: the built-in model's files linked, and a report with its parameter count, so
    the dense model is evaluated by the same command, dtype and machine as every student."""
    from safetensors import safe_open

    from prunekit.models.registry import builtin_dir

    src = builtin_dir(MODEL)
    folder.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name != "report.json":
            (folder / f.name).symlink_to(f)
    total = 0
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as fh:
            total += sum(math.prod(fh.get_slice(k).get_shape()) for k in fh.keys())  # noqa: SIM118
    (folder / "report.json").write_text(
        json.dumps({"command": f"dense: {MODEL} unchanged", "params": {"total": total}})
    )


def run_cell(student: str, recovery: str | None) -> None:
    """Make the student if missing, recover it if asked, then evaluate whatever lacks HumanEval."""
    base = RUNS / f"q-{student}"
    if not base.exists() and student == "dense":
        _link_dense(base)
    elif not base.exists():
        _call([*_student_args(student), "-o", str(base)])
    target = base if recovery is None else RUNS / f"q-{student}-{recovery}"
    if not target.exists():
        _call(["recover", str(base), *RECOVERIES[recovery], "-o", str(target)])
    if "humaneval" not in _report(target).get("evaluation", {}):
        _call(
            [
                "eval",
                str(target),
                "--humaneval",
                "--dtype",
                "auto",  # bfloat16 only where the CPU computes in it (emulated it is ~7× slower)
                "--ppl",
                "python",
                "--ppl-tokens",
                "16384",
            ]
        )


def _report(folder: Path) -> dict:
    path = folder / "report.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _params(rep: dict, folder: Path) -> tuple[int | None, int | None]:
    """Total and non-embedding parameters (the latter from config.json where the report lacks it)."""
    p = rep.get("params", {})
    total, non_emb = p.get("total"), p.get("non_embedding")
    cfg_path = folder / "config.json"
    if total and non_emb is None and cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        tied = cfg.get("tie_word_embeddings", False)
        non_emb = total - cfg["vocab_size"] * cfg["hidden_size"] * (1 if tied else 2)
    return total, non_emb


def _nonzero(folder: Path) -> tuple[int, int]:
    """Non-zero parameters in the checkpoint, total and outside the embedding / output head
    (what unstructured pruning actually removes; read from the safetensors themselves)."""
    from safetensors import safe_open

    total = embed = 0
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                n = int(f.get_tensor(name).count_nonzero())
                total += n
                embed += n if ("embed_tokens" in name or "lm_head" in name) else 0
    return total, total - embed


def _solved(folder: Path) -> dict[str, bool] | None:
    path = folder / "humaneval_problems.jsonl"
    if not path.is_file():
        return None
    return {r["task_id"]: r["passed"] for r in map(json.loads, path.read_text().splitlines())}


def _load() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {"cells": {}}


def record(student: str, recovery: str | None) -> None:
    """Store one evaluated cell (numbers and per-problem outcomes) in the results JSON, so the
    table survives a fresh machine without runs/ and later cells can still be paired with it."""
    folder = RUNS / (f"q-{student}" if recovery is None else f"q-{student}-{recovery}")
    rep = _report(folder)
    he = rep.get("evaluation", {}).get("humaneval")
    if not he:
        return
    total, non_emb = _params(rep, folder)
    nz_total, nz_non_emb = _nonzero(folder)
    rec = rep.get("recovery", {})
    ppl = rep.get("evaluation", {}).get("perplexity", {}).get("python")
    data = _load()
    name = student if recovery is None else f"{student}:{recovery}"
    data["cells"][name] = {
        "command": f"benchmarks/recovery.py --run {name}",
        "params_total": total,
        "params_non_embedding": non_emb,
        "nonzero_total": nz_total,
        "nonzero_non_embedding": nz_non_emb,
        "training": rec.get("training") or None,
        "zeros_kept": rec.get("masks", {}).get("pruned_weights_still_zero"),
        "ppl_python": ppl["ppl"] if ppl else None,
        "humaneval": {k: he.get(k) for k in ("pass@1", "problems", "limited", "mode", "dtype")},
        "solved": _solved(folder),
        "machine": rep.get("machine"),
    }
    RECORD.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def paired(one_shot: dict | None, recovered: dict, own: bool = True) -> str:
    """Problems gained / lost against a reference cell (the one-shot student, or with `own=False`
    the dense model) and the exact two-sided McNemar p."""
    from math import comb

    if own and "paired_vs_one_shot" in recovered:  # imported from a table whose runs/ are gone
        return recovered["paired_vs_one_shot"]
    a, b = (one_shot or {}).get("solved"), recovered.get("solved")
    if not a or not b or a.keys() != b.keys():
        return "—"
    gained = sum(b[k] and not a[k] for k in a)
    lost = sum(a[k] and not b[k] for k in a)
    n = gained + lost
    p = min(1.0, 2 * sum(comb(n, i) for i in range(min(gained, lost) + 1)) / 2**n) if n else 1.0
    return f"+{gained} / −{lost} (p = {p:.2f})"


def _num(v: int | None) -> str:
    return f"{v:,}" if v else "—"


def _keys(cells: dict) -> list[tuple[str, str | None]]:
    """(student, recovery) of every recorded cell: the benchmark's own in order, then cells kept
    from code since changed, stored as `STUDENT@NOTE[:RECOVERY]` (shown as `STUDENT (NOTE)`)."""
    ours = [(s, r) for s in STUDENTS for r in [None, *RECOVERIES]]
    named = {s if r is None else f"{s}:{r}" for s, r in ours}
    old = sorted(k for k in cells if k not in named)
    return ours + [(k.partition(":")[0], k.partition(":")[2] or None) for k in old]


def _same_dtype(ref: dict | None, c: dict) -> dict | None:
    """The reference cell when its generation ran in the same dtype (else pairing is unfair)."""
    return ref if ref and ref["humaneval"].get("dtype") == c["humaneval"].get("dtype") else None


def rows() -> list[list[str]]:
    cells = _load()["cells"]
    out = []
    for student, recovery in _keys(cells):
        c = cells.get(student if recovery is None else f"{student}:{recovery}")
        if not c:
            continue
        tr, he, ppl = c["training"], c["humaneval"], c["ppl_python"]
        name, _, note = student.partition("@")
        dense = _same_dtype(cells.get("dense"), c)
        out.append(
            [
                f"{name} ({note})" if note else name,
                recovery or "none (one-shot)",
                _num(c["params_total"]),
                _num(c["params_non_embedding"]),
                _num(c["nonzero_total"]),
                _num(c["nonzero_non_embedding"]),
                f"{tr['tokens']:,}" if tr else "—",
                f"{tr['wall_s']:.0f} / {tr['cpu_s']:.0f}" if tr else "—",
                f"{tr['tokens_per_s']}" if tr else "—",
                "—" if c["zeros_kept"] is None else str(c["zeros_kept"]),
                f"{ppl:.3f}" if ppl else "—",
                f"{he['pass@1']:.1%} ({he['problems']}{' limited' if he.get('limited') else ''}"
                f", {he.get('dtype') or '?'})",
                "—" if student == "dense" or not dense else paired(dense, c, own=False),
                "—" if recovery is None else paired(cells.get(student), c),
            ]
        )
    return out


HEAD = [
    "student",
    "recovery",
    "params total",
    "params non-embedding",
    "non-zero total",
    "non-zero non-embedding",
    "tokens trained",
    "train wall / CPU (s)",
    "train tok/s",
    "zeros kept",
    "Python ppl",
    "HumanEval pass@1",
    "vs dense, same dtype: gained / lost (McNemar)",
    "vs one-shot: problems gained / lost (McNemar)",
]


def render() -> None:
    table = rows()
    lines = [
        f"# Recovery on {MODEL} (HumanEval pass@1, full 164, greedy, chat mode)",
        "",
        "Generated by `benchmarks/recovery.py` from the cells recorded in "
        f"`{RECORD.name}` (each cell's command, machine and per-problem outcomes are there). "
        "The dense row is the unpruned model evaluated by the same command; earlier dense "
        "reference: 54.9% (benchmarks/results/code_eval.md, bfloat16). The pass@1 cell names "
        "the dtype generation ran in (bfloat16 where the CPU computes in it, else float32; greedy "
        "outputs can differ between the two, so students are paired with the dense row of their "
        "own dtype only). A student shown as `NAME (NOTE)` was made by code since changed.",
        "",
        "| " + " | ".join(HEAD) + " |",
        "|" + "---|" * len(HEAD),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    Path(f"{OUT}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(table)


def plot(table: list[list[str]]) -> None:
    """pass@1 against parameters (total and non-embedding), an arrow from each one-shot student to its
    recovered cells, with 97% and 80% of dense."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    he = HEAD.index("HumanEval pass@1")
    points = [r for r in table if r[he] != "—" and r[2] != "—"]
    refs = {"bfloat16 (code_eval.md)": 54.9}  # the earlier dense reference, and this table's own
    refs |= {
        r[he].split(", ")[1].rstrip(")"): float(r[he].split("%")[0])
        for r in points
        if r[0] == "dense"
    }
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, col, label in (
        (axes[0], 4, "non-zero parameters (total)"),
        (axes[1], 5, "non-zero non-embedding parameters"),
    ):
        one_shot = {}  # student → its one-shot point: recovered cells get an arrow from it
        for r in points:
            x, y = int(r[col].replace(",", "")), float(r[he].split("%")[0])
            ax.scatter(x, y, marker="o" if r[1].startswith("none") else "^")
            ax.annotate(f"{r[0]} / {r[1].split()[0]}", (x, y), fontsize=7)
            if r[1].startswith("none"):
                one_shot[r[0]] = (x, y)
            elif r[0] in one_shot:
                ax.annotate("", (x, y), one_shot[r[0]], arrowprops={"arrowstyle": "->", "lw": 0.8})
        for (dtype, ref), style in zip(refs.items(), ("--", ":")):
            ax.axhline(0.97 * ref, ls=style, lw=0.8, color="grey", label=f"97% of dense, {dtype}")
        ax.axhline(
            0.8 * refs["bfloat16 (code_eval.md)"],
            ls="-.",
            lw=0.8,
            color="red",
            label="80% of dense",
        )
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("HumanEval pass@1 (%)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(Path(f"{OUT}.png"), dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--run", nargs="*", default=[], help="cells STUDENT[:RECOVERY], e.g. wanda50:full seed"
    )
    args = ap.parse_args()
    for cell in args.run:
        student, _, recovery = cell.partition(":")
        if student not in STUDENTS or (recovery and recovery not in RECOVERIES):
            sys.exit(
                f"unknown cell '{cell}'; students {list(STUDENTS)}, recoveries {list(RECOVERIES)}"
            )
        run_cell(student, recovery or None)
        record(student, recovery or None)
    render()


if __name__ == "__main__":
    main()
