"""The per-block removal ratios of a structured (SAAP) run, drawn from its report section."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"heads": "tab:blue", "ffn": "tab:orange"}


def write_ratio_plot(section: dict, path: str | Path) -> Path:
    """Bars: fraction of each kind's groups removed per block; dashed: the kind's overall fraction."""
    kinds = section["kinds"]
    cfg = section["config"]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(len(kinds), 1)
    for i, (name, k) in enumerate(kinds.items()):
        xs = [x + (i - (len(kinds) - 1) / 2) * width for x in range(len(k["ratio"]))]
        ax.bar(xs, k["ratio"], width, color=COLOURS.get(name), label=f"{name} (per block)")
        overall = k["removed_params"] / sum(
            c * g for c, g in zip(k["group_cost"], k["groups_before"])
        )
        ax.axhline(overall, color=COLOURS.get(name), ls="--", lw=1, label=f"{name} overall")
    ax.set_xlabel("block")
    ax.set_ylabel("fraction of groups removed")
    ax.set_title(f"Structured pruning: {cfg['importance']} importance, {cfg['ratios']} ratios")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
