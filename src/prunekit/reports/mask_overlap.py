"""How different are two pruning masks? Jaccard of the pruned sets per layer, per projection type,
per block and overall, set against the value expected for independent random masks, s / (2 − s)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

# a mask set: "layers.{i}.{projection}" -> bool tensor (True = pruned)
MaskSet = Mapping[str, torch.Tensor]


def intersection_union(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
    """|A ∩ B| and |A ∪ B| of two same-shaped boolean masks."""
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return int((a & b).sum()), int((a | b).sum())


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    """|A ∩ B| / |A ∪ B| (1.0 for two empty masks)."""
    inter, union = intersection_union(a, b)
    return inter / union if union else 1.0


def random_jaccard(sparsity: float) -> float:
    """Expected Jaccard of two independent uniformly random masks of density `sparsity`:
    E|A∩B| = s²n and E|A∪B| = (2s − s²)n, so s / (2 − s)."""
    return sparsity / (2.0 - sparsity)


def split_key(key: str) -> tuple[int, str]:
    """'layers.3.mlp.up_proj' -> (3, 'mlp.up_proj')."""
    _, block, name = key.split(".", 2)
    return int(block), name


def pair_overlap(a: MaskSet, b: MaskSet, sparsity: float) -> dict:
    """Jaccard of two mask sets per layer, per block, per projection type and overall."""
    if set(a) != set(b):
        raise ValueError("the two mask sets cover different layers")
    counts = {k: intersection_union(a[k], b[k]) for k in sorted(a, key=split_key)}
    by_block: dict[int, list[int]] = {}
    by_proj: dict[str, list[int]] = {}
    for key, (inter, union) in counts.items():
        block, proj = split_key(key)
        for bucket, label in ((by_block, block), (by_proj, proj)):
            acc = bucket.setdefault(label, [0, 0])
            acc[0] += inter
            acc[1] += union
    total_i = sum(i for i, _ in counts.values())
    total_u = sum(u for _, u in counts.values())

    def ratio(iu) -> float:
        return iu[0] / iu[1] if iu[1] else 1.0

    return {
        "random_expectation": random_jaccard(sparsity),
        "overall": ratio((total_i, total_u)),
        "by_block": [ratio(by_block[i]) for i in sorted(by_block)],
        "by_projection": {p: ratio(v) for p, v in by_proj.items()},
        "by_layer": {k: ratio(v) for k, v in counts.items()},
    }


def all_pairs(names: list[str], load: Callable[[str], MaskSet], sparsity: float) -> dict[str, dict]:
    """Overlap of every pair of named mask sets; `load(name)` returns one (may read from disk)."""
    out = {}
    for x, y in itertools.combinations(names, 2):
        out[f"{x}|{y}"] = pair_overlap(load(x), load(y), sparsity)
    return out


def plot_pair(result: dict, title: str, path: Path) -> None:
    """Overlap by depth, one line per projection type, with the random expectation dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    layers = result["by_layer"]
    projections = sorted({split_key(k)[1] for k in layers})
    fig, ax = plt.subplots(figsize=(7, 4))
    for proj in projections:
        pts = sorted((split_key(k)[0], v) for k, v in layers.items() if split_key(k)[1] == proj)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=proj.split(".")[-1])
    ax.plot(
        range(len(result["by_block"])), result["by_block"], color="black", lw=2, label="block (all)"
    )
    ax.axhline(result["random_expectation"], color="grey", ls="--", label="random s/(2−s)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("decoder block")
    ax.set_ylabel("Jaccard of pruned sets")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=3, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
