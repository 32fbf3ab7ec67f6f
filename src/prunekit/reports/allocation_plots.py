"""Plots of an allocation, rendered from the report's `allocation` section (data first).

Panels: NeuroAL objective vs λ (block and row steps), planned sparsity per block, and the
distribution of row sparsities. Also the benchmark's perplexity-vs-sparsity and per-block figures.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _objective_panel(ax, search: dict) -> None:
    for step, colour in (("block_step", "tab:blue"), ("row_step", "tab:orange")):
        part = search.get(step)
        if not isinstance(part, dict):
            continue
        cands = part["candidates"]
        full = [c for c in cands if c["complete"]]
        cut = [c for c in cands if not c["complete"]]
        ax.plot(
            [c["lambda"] for c in full],
            [c["objective"] for c in full],
            "o-",
            color=colour,
            label=f"{step.replace('_', ' ')} (λ={part['chosen_lambda']})",
        )
        if cut:
            ax.plot(
                [c["lambda"] for c in cut],
                [c["objective"] for c in cut],
                "o",
                mfc="none",
                color=colour,
                label=f"{step.replace('_', ' ')}: stopped early (≥ value)",
            )
        ax.axvline(part["chosen_lambda"], color=colour, ls=":", lw=1)
    ax.set_xlabel("λ")
    ax.set_ylabel("alignment objective M (lower is better)")
    ax.set_title("NeuroAL search")
    ax.legend(fontsize=7)


def write_allocation_plots(alloc: dict, out_dir: str | Path, name: str = "allocation.png") -> Path:
    """Write `allocation.png` (or `name`) into `out_dir` from a report's allocation section."""
    search = alloc.get("search")
    panels = 3 if isinstance(search, dict) else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.8))
    if panels == 3:
        _objective_panel(axes[0], search)
    ax = axes[-2]
    blocks = alloc["block_sparsity"]
    ax.bar(range(len(blocks)), blocks, color="tab:green")
    ax.axhline(alloc["planned_sparsity"], color="k", ls="--", lw=1, label="global")
    ax.set_xlabel("block")
    ax.set_ylabel("sparsity")
    ax.set_ylim(max(0.0, min(blocks) - 0.1), min(1.0, max(blocks) + 0.1))
    ax.set_title(f"{alloc['name']}: sparsity per block")
    ax.legend(fontsize=7)
    ax = axes[-1]
    hist = alloc["row_histogram"]
    edges = hist["edges"]
    ax.stairs(hist["counts"], edges, fill=True, color="tab:purple")
    ax.set_yscale("log")
    ax.set_xlabel("row sparsity")
    ax.set_ylabel("rows")
    ax.set_title(f"row sparsities (min {hist['min']:.3f}, max {hist['max']:.3f})")
    fig.tight_layout()
    path = Path(out_dir) / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ppl_vs_sparsity(
    rows: list[dict], title: str, path: str | Path, dense: float | None = None
) -> Path:
    """Perplexity (log scale) vs sparsity, one line per method × allocation."""
    fig, ax = plt.subplots(figsize=(6, 4))
    keys = sorted({(r["method"], r["allocation"]) for r in rows})
    styles = {"uniform": "o-", "owl": "s--", "neuroal": "^-."}
    for method, alloc in keys:
        pts = sorted(
            (r["sparsity"], r["ppl"])
            for r in rows
            if (r["method"], r["allocation"]) == (method, alloc)
        )
        ax.plot(
            *zip(*pts),
            styles.get(alloc, "o-"),
            label=f"{method} + {alloc}",
            color="tab:blue" if method == "wanda" else "tab:red",
        )
    if dense:
        ax.axhline(dense, color="k", ls=":", lw=1, label="dense")
    ax.set_yscale("log")
    ax.set_xlabel("sparsity")
    ax.set_ylabel("held-out Python perplexity")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_block_profiles(rows: list[dict], title: str, path: str | Path) -> Path | None:
    """Per-block sparsity of every allocation (one panel per sparsity), with OWL's outlier ratio
    on a second axis: shows whether OWL and NeuroAL move the same blocks the same way."""
    levels = sorted({r["sparsity"] for r in rows if r["allocation"] != "uniform"}, reverse=True)
    if not levels:
        return None
    fig, axes = plt.subplots(1, len(levels), figsize=(5 * len(levels), 3.8), squeeze=False)
    styles = {"uniform": "k:", "owl": "s-", "neuroal": "^-"}
    for ax, s in zip(axes[0], levels):
        outliers = None
        for r in rows:
            if r["sparsity"] != s or r["method"] != "wanda":
                continue
            ax.plot(
                r["block_sparsity"], styles.get(r["allocation"], "o-"), ms=3, label=r["allocation"]
            )
            outliers = r.get("outlier_ratio", outliers)
        ax.set_xlabel("block")
        ax.set_ylabel("sparsity (Wanda runs)")
        ax.set_title(f"{title}, s = {s:.2f}")
        if outliers:
            twin = ax.twinx()
            twin.plot([100 * o for o in outliers], color="tab:gray", alpha=0.6, lw=1)
            twin.set_ylabel("OWL outlier ratio (%, grey)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def summary_rows(alloc: dict) -> list[list[str]]:
    """Short [label, value] rows for the CLI summary table."""
    blocks = alloc["block_sparsity"]
    rows = [
        ["allocation", alloc["name"]],
        ["block sparsity (min / max)", f"{min(blocks):.4f} / {max(blocks):.4f}"],
    ]
    search = alloc.get("search")
    if isinstance(search, dict):
        for step in ("block_step", "row_step"):
            part = search.get(step)
            value = f"λ = {part['chosen_lambda']}" if isinstance(part, dict) else str(part)
            rows.append([f"NeuroAL {step.replace('_', ' ')}", value])
        if search["objective"] is not None:
            rows.append(["NeuroAL objective", f"{search['objective']:.6g}"])
    return rows


def allocation_markdown(alloc: dict) -> str:
    """A Markdown fragment for report.md: the allocation, its λs and where its plot is."""
    lines = [
        f"- allocation: {alloc['name']} "
        + " · ".join(f"{a}: {b}" for a, b in summary_rows(alloc)[1:])
    ]
    if alloc["name"] != "uniform":
        lines.append("  (plot: allocation.png)")
    return "\n".join(lines)
