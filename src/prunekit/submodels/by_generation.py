"""The language sub-model matrix judged by generation: pass@1 of each model (rows: dense and one
sub-model per calibration language) on each code benchmark (columns: e.g. every HumanEval-X
language), from the per-problem rows the generic runner writes, with paired tests of the
diagonal (calibrated on L, judged on L) against every other calibration judged on L.

The claim "the sub-model calibrated on L is the best on L" is *held* for L only if the diagonal
solves more problems than each other calibration does on L and each exact two-sided McNemar test
gives p < alpha; the claim's p-value is the largest of those (an intersection-union test: every
comparison must reject on its own, so no multiplicity correction is needed).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from prunekit.errors import PrunekitError
from prunekit.evaluation.paired import count, mcnemar_exact, outcomes, read_rows

ALPHA = 0.05
DENSE = "dense"
# the language a benchmark without a `family:language` name is in
BENCHMARK_LANGUAGE = {"humaneval": "python"}

Cells = dict[str, dict[str, list[dict]]]  # row (dense / calibration) -> benchmark -> rows


def benchmark_language(benchmark: str) -> str:
    """'humaneval-x:js' -> 'js'; 'humaneval' -> 'python'."""
    family, _, member = benchmark.partition(":")
    return member or BENCHMARK_LANGUAGE.get(family, family)


def diagonal_row(benchmark: str, rows: list[str]) -> str | None:
    """The calibration row in the benchmark's language (javascript is js, c++ is cpp), if any."""
    from prunekit.evaluation.benchmarks import ALIASES

    lang = benchmark_language(benchmark)
    found = [r for r in rows if r != DENSE and ALIASES.get(r.lower(), r.lower()) == lang]
    return found[0] if found else None


def parse_benchmarks(text: str) -> list[str]:
    """'humaneval-x' or 'humaneval-x:cpp,java,js' (a bare name after `family:x` is that family's)
    -> registered benchmark names; an unknown one is one PrunekitError listing the valid ones."""
    from prunekit.evaluation.benchmarks import GROUPS, REGISTRY, expand

    names, family = [], None
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        if ":" in item:
            family = item.partition(":")[0]
        elif family and item not in REGISTRY and item not in GROUPS:
            item = f"{family}:{item}"
        names.append(item)
    if not names:
        raise PrunekitError("--benchmark is empty; give e.g. humaneval-x or humaneval-x:cpp,java")
    return expand(names)


def _cell(rows: list[dict] | None, bench: str) -> dict | None:
    if not rows:
        return None
    out = outcomes(rows, bench)
    solved = sum(out.values())
    return {"pass@1": solved / len(out), "solved": solved, "problems": len(out)}


def _compare(diag: dict[str, bool], other: dict[str, bool]) -> dict:
    c = count(diag, other)
    if c["unpaired"]:
        raise PrunekitError(
            f"cells judged on different problems ({c['unpaired']} unpaired); judge every "
            "sub-model on the same problems (same --limit)"
        )
    return {
        "pairs": c["pairs"],
        "diagonal_only": c["only_a"],
        "other_only": c["only_b"],
        "p_value": round(mcnemar_exact(c["only_a"], c["only_b"]), 6),
    }


def diagonal_tests(cells: Cells, benchmarks: list[str], alpha: float = ALPHA) -> list[dict]:
    """Per benchmark with a diagonal cell: the paired test against each off-diagonal cell."""
    rows = [r for r in cells if r != DENSE]
    out = []
    for bench in benchmarks:
        diag = diagonal_row(bench, rows)
        if diag is None or not cells[diag].get(bench):
            continue
        mine = outcomes(cells[diag][bench], bench)
        against = {}
        for other in rows:
            if other != diag and cells[other].get(bench):
                against[other] = _compare(mine, outcomes(cells[other][bench], bench))
        if DENSE in cells and cells[DENSE].get(bench):
            vs_dense = _compare(mine, outcomes(cells[DENSE][bench], bench))
        else:
            vs_dense = None
        out.append(_verdict(bench, diag, mine, against, vs_dense, alpha))
    return out


def _verdict(bench, diag, mine, against, vs_dense, alpha) -> dict:
    rec = {
        "benchmark": bench,
        "language": benchmark_language(bench),
        "calibration": diag,
        "pass@1": sum(mine.values()) / len(mine),
        "against": against,
        "vs_dense": vs_dense,
        "alpha": alpha,
    }
    if not against:
        return {**rec, "verdict": "untested", "held": None, "p_value": None, "why": "no other cell"}
    worse = [o for o, c in against.items() if c["diagonal_only"] <= c["other_only"]]
    weak = [o for o, c in against.items() if c["p_value"] >= alpha]
    p = max(c["p_value"] for c in against.values())
    if worse:
        why = "not better than " + ", ".join(worse)
    elif weak:
        why = f"better than every other calibration, not significantly than {', '.join(weak)}"
    else:
        why = f"significantly better than every other calibration (p < {alpha:g} each)"
    held = not worse and not weak
    return {
        **rec,
        "verdict": "held" if held else "not held",
        "held": held,
        "p_value": p,
        "why": why,
    }


def build_matrix(cells: Cells, sparsity: float | None = None, alpha: float = ALPHA) -> dict:
    """The JSON record: pass@1/solved/problems per (row, benchmark), the diagonal tests.
    A cell not (yet) judged is None; rows keep the order of `cells`."""
    benchmarks = list(dict.fromkeys(b for per in cells.values() for b in per))
    if not benchmarks:
        raise PrunekitError("no judged cells: nothing to tabulate")
    table = {r: {b: _cell(cells[r].get(b), b) for b in benchmarks} for r in cells}
    return {
        "sparsity": sparsity,
        "rows": list(cells),
        "benchmarks": benchmarks,
        "cells": table,
        "diagonal": diagonal_tests(cells, benchmarks, alpha),
        "alpha": alpha,
    }


def _pct(cell: dict | None) -> str:
    return (
        "—"
        if cell is None
        else f"{100 * cell['pass@1']:.1f}% ({cell['solved']}/{cell['problems']})"
    )


def render_markdown(matrix: dict) -> str:
    """The pass@1 table (diagonal in bold) and one line per language: held / not held, p."""
    benches, rows = matrix["benchmarks"], matrix["rows"]
    diag = {d["benchmark"]: d["calibration"] for d in matrix["diagonal"]}
    s = matrix.get("sparsity")
    title = f" at sparsity {s:g}" if s is not None else ""
    lines = [
        f"pass@1{title} (solved/problems); rows = calibration, columns = benchmark; **bold** = "
        "the diagonal (calibrated and judged on the same language).",
        "",
        "| calibration \\ benchmark | " + " | ".join(benches) + " |",
        "|---|" + "---|" * len(benches),
    ]
    for r in rows:
        cells = []
        for b in benches:
            text = _pct(matrix["cells"][r][b])
            cells.append(f"**{text}**" if diag.get(b) == r and text != "—" else text)
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Diagonal claim per language: held = the diagonal solves more problems than every other "
        f"calibration judged on that language, each by an exact two-sided McNemar test at "
        f"p < {matrix['alpha']:g}; p = the largest of those p-values (intersection-union test). "
        "Each comparison: problems only the diagonal solves / only the other solves (p).",
        "",
        "| benchmark | diagonal | vs each other calibration | vs dense | claim | p |",
        "|---|---|---|---|---|---|",
    ]
    for d in matrix["diagonal"]:
        vs = "; ".join(
            f"{o}: +{c['diagonal_only']}/−{c['other_only']} (p = {c['p_value']:.3f})"
            for o, c in d["against"].items()
        )
        dense = d["vs_dense"]
        dense_txt = (
            f"+{dense['diagonal_only']}/−{dense['other_only']} (p = {dense['p_value']:.3f})"
            if dense
            else "—"
        )
        p = "—" if d["p_value"] is None else f"{d['p_value']:.3f}"
        lines.append(
            f"| {d['benchmark']} | {d['calibration']} {100 * d['pass@1']:.1f}% | {vs or '—'} | "
            f"{dense_txt} | {d['verdict']} ({d['why']}) | {p} |"
        )
    return "\n".join(lines) + "\n"


def summarize(matrix: dict) -> list[str]:
    """One sentence per language, generated from the numbers."""
    s = matrix.get("sparsity")
    at = f" at sparsity {s:g}" if s is not None else ""
    out = []
    for d in matrix["diagonal"]:
        p = "" if d["p_value"] is None else f", p = {d['p_value']:.3f}"
        out.append(
            f"- {d['benchmark']}{at}: diagonal claim {d['verdict'].upper()} "
            f"({d['calibration']} {100 * d['pass@1']:.1f}%; {d['why']}{p})."
        )
    return out


def plot_heatmap(matrix: dict, path: Path) -> Path:
    """pass@1 (%) per (row, benchmark), the diagonal outlined, its verdict under each column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    benches, rows = matrix["benchmarks"], matrix["rows"]
    grid = np.array(
        [
            [
                np.nan if c is None else 100 * c["pass@1"]
                for c in (matrix["cells"][r][b] for b in benches)
            ]
            for r in rows
        ]
    )
    fig, ax = plt.subplots(figsize=(1.7 * len(benches) + 2.5, 0.7 * len(rows) + 2.2))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0)
    verdicts = {d["benchmark"]: d for d in matrix["diagonal"]}
    labels = []
    for b in benches:
        d = verdicts.get(b)
        short = b.split(":")[-1]
        labels.append(f"{short}\n{d['verdict']}" if d else short)
    ax.set_xticks(range(len(benches)), labels)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("judged on (benchmark language); diagonal claim below")
    ax.set_ylabel("calibration")
    finite = grid[np.isfinite(grid)]
    mid = float(finite.mean()) if finite.size else 0.0
    for i, r in enumerate(rows):
        for j, b in enumerate(benches):
            val = grid[i, j]
            text = "—" if np.isnan(val) else f"{val:.1f}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=9,
                color="black" if np.isnan(val) or val > mid else "white",
            )
            if verdicts.get(b, {}).get("calibration") == r:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.5, color="red"))
    fig.colorbar(im, ax=ax, label="pass@1 (%)")
    s = matrix.get("sparsity")
    ax.set_title("sub-models judged by generation" + (f", sparsity {s:g}" if s is not None else ""))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass
class Judge:
    """Runs the code benchmarks on one model through the generic runner, rows kept per cell."""

    benchmarks: list[str]
    settings: object  # runner.RunSettings
    dtype: str | None = None  # generate in this dtype (a copy of the model) when it differs
    results: dict = field(default_factory=dict)  # row -> benchmark -> report section

    def preflight(self) -> None:
        """Before any model work: data present, toolchains installed, the sandbox can score."""
        from prunekit.evaluation.benchmarks import get_benchmark
        from prunekit.evaluation.sandbox import check_sandbox_can_score

        self.settings.validate()
        if self.settings.samples != 1:
            raise PrunekitError("the paired tests need one greedy sample per problem")
        for name in self.benchmarks:
            get_benchmark(name).preflight()
        check_sandbox_can_score()

    def describe(self) -> dict:
        """What decides the judging (recorded in the report)."""
        st = self.settings
        return {
            "benchmarks": list(self.benchmarks),
            "mode": st.mode or "auto",
            "decoding": "greedy" if st.temperature == 0 else f"sampling (T={st.temperature})",
            "limit": st.limit,
            "max_new_tokens": st.max_new_tokens,
            "dtype": self.dtype or "the model's",
        }

    def __call__(self, model, tokenizer, row: str, folder: Path) -> dict[str, list[dict]]:
        """Judge `model` (left as it was) on every benchmark; rows into `folder`."""
        import torch

        from prunekit.evaluation.benchmarks import get_benchmark
        from prunekit.evaluation.runner import run_benchmark
        from prunekit.models.loading import parse_dtype

        want = parse_dtype(self.dtype, self.settings.device) if self.dtype else None
        gen = model if want in (None, next(model.parameters()).dtype) else copy.deepcopy(model)
        gen.to(device=torch.device(self.settings.device), dtype=want)
        files = {}
        try:
            for name in self.benchmarks:
                bench = get_benchmark(name)
                files[name] = folder / bench.problems_file
                result = run_benchmark(
                    bench, gen, tokenizer, self.settings, jsonl_path=files[name], model_name=row
                )
                result["dtype"] = str(next(gen.parameters()).dtype).removeprefix("torch.")
                if result["problems_file"] != files[name].name:  # written elsewhere (disk)
                    files[name] = Path(result["problems_file"])
                self.results.setdefault(row, {})[name] = result
        finally:
            if gen is model:
                model.to("cpu")
            del gen
        return read_rows(files)
