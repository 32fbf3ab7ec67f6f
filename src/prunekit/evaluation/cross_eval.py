"""The cross-evaluation matrix of sub-models: rows = calibration language, columns = evaluation
language, cells = held-out perplexity and its ratio to the dense model. Rendered as Markdown and a
heatmap; the diagonal analysis says whether each language's own sub-model is best on it."""

from __future__ import annotations

from pathlib import Path


def build_matrix(
    ppl: dict[str, dict[str, float]], dense: dict[str, float], sparsity: float
) -> dict:
    """ppl[calibration][evaluation] plus the dense ppl per evaluation language -> matrix record."""
    rows = list(ppl)
    cols = list(dense)
    for r in rows:
        if list(ppl[r]) != cols:
            raise ValueError(f"row '{r}' does not cover the evaluation languages {cols}")
    ratio = {r: {c: ppl[r][c] / dense[c] for c in cols} for r in rows}
    best = {c: min(rows, key=lambda r: ppl[r][c]) for c in cols}
    return {
        "sparsity": sparsity,
        "calibration": rows,
        "evaluation": cols,
        "dense": dict(dense),
        "ppl": {r: dict(ppl[r]) for r in rows},
        "ratio": ratio,
        "best_calibration": best,
        "diagonal": diagonal(ppl, cols),
    }


def diagonal(ppl: dict[str, dict[str, float]], cols: list[str]) -> list[dict]:
    """For each language that is both a row and a column: is its own sub-model the best on it?"""
    out = []
    for lang in [c for c in cols if c in ppl]:
        column = sorted(ppl, key=lambda r: ppl[r][lang])
        best = column[0]
        runner_up = next(r for r in column if r != lang) if len(column) > 1 else lang
        out.append(
            {
                "language": lang,
                "own_ppl": ppl[lang][lang],
                "own_rank": column.index(lang) + 1,
                "own_is_best": best == lang,
                "best_calibration": best,
                "best_ppl": ppl[best][lang],
                # own vs the best other calibration: negative = own is better by that share
                "own_vs_best_other": ppl[lang][lang] / ppl[runner_up][lang] - 1.0,
                "best_other": runner_up,
            }
        )
    return out


def render_markdown(matrix: dict) -> str:
    """A table of ppl (ratio to dense) with the best cell of each column in bold."""
    cols, rows = matrix["evaluation"], matrix["calibration"]
    s = matrix["sparsity"]
    lines = [
        f"Held-out perplexity at sparsity {s:g} (× dense in brackets); rows = calibration, "
        "columns = evaluation; **bold** = best calibration for that column.",
        "",
        "| calibration \\ evaluation | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
        "| dense | " + " | ".join(f"{matrix['dense'][c]:.3f}" for c in cols) + " |",
    ]
    for r in rows:
        cells = []
        for c in cols:
            cell = f"{matrix['ppl'][r][c]:.3f} ({matrix['ratio'][r][c]:.3f}×)"
            cells.append(f"**{cell}**" if matrix["best_calibration"][c] == r else cell)
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_heatmap(matrix: dict, path: Path) -> None:
    """Cells coloured by ratio to dense (per column, lower is better), annotated with ppl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows, cols = matrix["calibration"], matrix["evaluation"]
    ratio = np.array([[matrix["ratio"][r][c] for c in cols] for r in rows])
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 2, 0.8 * len(rows) + 1.8))
    im = ax.imshow(ratio, cmap="viridis_r")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("evaluation language")
    ax.set_ylabel("calibration language")
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            best = matrix["best_calibration"][c] == r
            ax.text(
                j,
                i,
                f"{matrix['ppl'][r][c]:.2f}\n{ratio[i, j]:.2f}×",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if ratio[i, j] > ratio.mean() else "black",
                fontweight="bold" if best else "normal",
            )
    fig.colorbar(im, ax=ax, label="ppl / dense ppl")
    ax.set_title(f"sub-model perplexity at sparsity {matrix['sparsity']:g}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(matrices: list[dict], overlaps: dict[str, dict]) -> list[str]:
    """Plain sentences generated from the numbers (nothing hand-written about the outcome)."""
    lines = []
    for m in matrices:
        s = m["sparsity"]
        diag = m["diagonal"]
        wins = [d["language"] for d in diag if d["own_is_best"]]
        lines.append(
            f"At sparsity {s:g}, the own-language sub-model is the best on its language for "
            f"{len(wins)} of {len(diag)} languages" + (f" ({', '.join(wins)})." if wins else ".")
        )
        for d in diag:
            if d["own_is_best"]:
                lines.append(
                    f"- {d['language']}: own calibration {d['own_ppl']:.3f} ppl, "
                    f"{-100 * d['own_vs_best_other']:.1f}% lower than the next best ({d['best_other']})."
                )
            else:
                lines.append(
                    f"- {d['language']}: NOT best — own calibration ranks {d['own_rank']} "
                    f"({d['own_ppl']:.3f} ppl) behind {d['best_calibration']} ({d['best_ppl']:.3f} ppl)."
                )
        worst = max(m["evaluation"], key=lambda c: min(m["ratio"][r][c] for r in m["calibration"]))
        lines.append(
            f"- Hardest language to keep: {worst} (best sub-model still "
            f"{min(m['ratio'][r][worst] for r in m['calibration']):.2f}× dense ppl)."
        )
        pairs = overlaps.get(f"{s:g}", {})
        if pairs:
            rnd = next(iter(pairs.values()))["random_expectation"]
            lo = min(pairs, key=lambda p: pairs[p]["overall"])
            hi = max(pairs, key=lambda p: pairs[p]["overall"])
            lines.append(
                f"- Mask overlap (Jaccard of pruned sets, random would be {rnd:.3f}): from "
                f"{pairs[lo]['overall']:.3f} ({lo.replace('|', ' vs ')}) to "
                f"{pairs[hi]['overall']:.3f} ({hi.replace('|', ' vs ')})."
            )
            depth = _mean_by_block(pairs)
            low_block = min(range(len(depth)), key=depth.__getitem__)
            projs = _mean_by_projection(pairs)
            low_proj = min(projs, key=projs.get)
            lines.append(
                f"- Masks differ most in block {low_block} (mean Jaccard {depth[low_block]:.3f} over "
                f"pairs; blocks range {min(depth):.3f}–{max(depth):.3f}) and in {low_proj} "
                f"({projs[low_proj]:.3f}; projections range {min(projs.values()):.3f}–"
                f"{max(projs.values()):.3f})."
            )
    return lines


def _mean_by_block(pairs: dict[str, dict]) -> list[float]:
    n = len(next(iter(pairs.values()))["by_block"])
    return [sum(p["by_block"][i] for p in pairs.values()) / len(pairs) for i in range(n)]


def _mean_by_projection(pairs: dict[str, dict]) -> dict[str, float]:
    names = next(iter(pairs.values()))["by_projection"]
    return {k: sum(p["by_projection"][k] for p in pairs.values()) / len(pairs) for k in names}
