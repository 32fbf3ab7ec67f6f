"""What a search writes: the exported model, plan.json (+ candidate plans for the fitness ↔
pass@1 correlation), report.json / report.md and the Pareto plot (budget vs fitness)."""

from __future__ import annotations

import json
from pathlib import Path

from prunekit.search.run import SearchResult

PLOT = "pareto.png"


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten by a cheaper-or-equal point with lower-or-equal fitness, by cost."""
    front, best = [], float("inf")
    for x, y in sorted(points, key=lambda p: (p[0], p[1])):
        if y < best:
            front.append((x, y))
            best = y
    return front


def plot_pareto(section: dict, path: Path) -> None:
    """Every full-stage candidate (budget value vs fitness), the front, the chosen one, the limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands = section["candidates"]
    xs, ys = [c["value"] for c in cands], [c["fitness"] for c in cands]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(xs, ys, s=12, alpha=0.5, label=f"evaluated on all tokens ({len(cands)})")
    front = pareto_front(list(zip(xs, ys)))
    if front:
        ax.plot(*zip(*front), color="tab:green", lw=1, label="Pareto front")
    best = section["best"]
    ax.scatter([best["value"]], [best["fitness"]], marker="*", s=160, color="tab:red",
               label="chosen", zorder=3)  # fmt: skip
    ax.axvline(section["budget"]["limit"], color="gray", ls="--", lw=1, label="budget")
    ax.set_xlabel(section["budget"]["unit"])
    ax.set_ylabel("KL(dense ‖ candidate) on held-out answers")
    if min(ys, default=0) > 0:
        ax.set_yscale("log")
    ax.set_title(f"search: {section['budget']['text']}, {section['generations']} generations")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _vocabulary_line(vocab: dict | None) -> list[str]:
    """The vocabulary move, first (the budget and the search start from its model)."""
    if vocab is None:
        return []
    return [
        f"- vocabulary (first move): tokens of `{vocab['corpus']}` kept, {vocab['tokens_kept']:,} "
        f"of {vocab['tokens_before']:,} ({vocab['params_saved']:,} embedding/head parameters saved)"
    ]


def _decode_line(decode: dict | None) -> list[str]:
    """Predicted against measured decode speedup (decode budgets; this machine only)."""
    if decode is None:
        return []
    return [
        f"- decode speedup of the chosen model: predicted {decode['predicted_speedup']:.3f}×, "
        f"measured {decode['measured_speedup']:.3f}× ({decode['measured_chosen_tokens_per_s']:.1f}"
        f" vs {decode['measured_dense_tokens_per_s']:.1f} tok/s dense, batch 1, "
        f"{decode['context']}-token KV cache, {decode['threads']} threads, {decode['dtype']}); "
        "timings are specific to this machine"
    ]


def render_markdown(report: dict) -> str:
    s = report["search"]
    b, best, fit = s["budget"], s["best"], s["fitness"]
    lines = [
        "# prunekit search",
        "",
        f"- model: `{report.get('model', {}).get('id', '?')}`",
        *_vocabulary_line(s.get("vocabulary")),
        f"- budget: {b['text']} → limit {b['limit']:,} {b['unit']} (dense {b['dense']:,}); "
        f"chosen {b['chosen']:,}",
        *_decode_line(s.get("decode")),
        f"- fitness: {fit['definition']}; {fit['sequences']} held-out answers, "
        f"{fit['scored_tokens']:,} scored tokens, top-k {fit['topk']}",
        f"- HumanEval kept out: {fit['decontamination']['removed_humaneval_overlap_by_calibration']} "
        f"answers dropped by the calibration's 13-gram check; "
        f"{fit['decontamination']['fitness_sequences_with_humaneval_ngram']} of "
        f"{fit['decontamination']['fitness_sequences_rechecked']} fitness sequences share a "
        "13-gram with HumanEval",
        f"- selection: {s['selection']['offspring']} offspring, stages {s['selection']['stages']} "
        f"of the tokens, survivors {s['selection']['survivors']}",
        f"- {s['generations']} generations, {s['evaluations']} scorings "
        f"({s['token_evaluations']:,} scored tokens), stopped by {s['stop_reason']}",
        f"- time: {s['elapsed_s']:.1f} s wall from calibration to the end of the search (all sessions), "
        f"{s['cpu_s']:.1f} s CPU (all threads)",
        f"- best fitness {best['fitness']:.6g} (stitched); the exported model directly: "
        f"{best['direct_fitness']:.6g} (repair: {best['repair']})",
        f"- dropped layers: {best['dropped'] or 'none'}",
        "",
        "| layer | level |",
        "|---|---|",
        *[f"| {i} | {label} |" for i, label in enumerate(best["labels"])],
        "",
        "| stage | wall time (s) |",
        "|---|---|",
        *[f"| {k} | {v:.1f} |" for k, v in report.get("timings_s", {}).items()],
        "",
        f"Candidates evaluated on all tokens: {len(s['candidates'])} (report.json `search."
        "candidates`; plans for a spread of them in candidates/). Pareto plot: pareto.png.",
    ]
    he = report.get("evaluation", {}).get("humaneval")
    if he and "pass@1" in he:
        lines.append(
            f"\nHumanEval of the chosen model (after the search): pass@1 {he['pass@1']:.4f}"
        )
    return "\n".join(lines) + "\n"


def write_reports(folder: Path, report: dict) -> None:
    (folder / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (folder / "report.md").write_text(render_markdown(report))


def plan_recipe(result: SearchResult, out_dir: Path) -> str:
    """A recipe that rebuilds the chosen model with `prunekit run` (its `search_plan` step reads
    `out_dir`/plan.json; the dtype is the one the search ran in, so the weights are the same;
    judge it with `prunekit eval OUT --humaneval`)."""
    import yaml

    recipe = {
        "model": result.plan["model"]["id"],
        "dtype": str(result.report.get("model", {}).get("dtype", "float32")),
        "steps": [{"search_plan": {"file": str(out_dir / "plan.json")}}],
    }
    head = f"# The model prunekit search chose; rebuild: prunekit run {out_dir / 'recipe.yaml'} -o OUT\n"
    return head + yaml.safe_dump(recipe, sort_keys=False)


def save_search(result: SearchResult, out_dir: Path, force: bool = False) -> Path:
    """Write the model, plan, candidate plans, reports and plot atomically into `out_dir`."""
    from prunekit.export.checkpoint import save_checkpoint
    from prunekit.utils import write_output

    def _write(tmp: Path) -> None:
        save_checkpoint(result.model, result.tokenizer, tmp)
        result.report["export_bytes"] = sum(f.stat().st_size for f in tmp.glob("*.safetensors"))
        (tmp / "plan.json").write_text(json.dumps(result.plan, indent=2) + "\n")
        (tmp / "recipe.yaml").write_text(plan_recipe(result, Path(out_dir)))
        if result.candidate_plans:
            (tmp / "candidates").mkdir()
            for n, plan in enumerate(result.candidate_plans):
                (tmp / "candidates" / f"plan_{n:02d}.json").write_text(json.dumps(plan, indent=2))
        if "search" in result.report:
            write_reports(tmp, result.report)
            plot_pareto(result.report["search"], tmp / PLOT)
        else:
            (tmp / "report.json").write_text(json.dumps(result.report, indent=2, default=str))

    write_output(Path(out_dir), _write, force=force)
    return Path(out_dir)


def update_report(folder: Path, report: dict) -> None:
    """Rewrite report.json/report.md of a finished output (e.g. with the HumanEval after it)."""
    for name, text in (
        ("report.json", json.dumps(report, indent=2, default=str)),
        ("report.md", render_markdown(report)),
    ):
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(folder / name)
