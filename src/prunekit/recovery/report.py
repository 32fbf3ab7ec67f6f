"""What a recovery run reports beyond the common fields: parameter counts and the loss curve."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from prunekit.models.adapters import DecoderAdapter
from prunekit.reports.report import param_counts


def param_summary(model: nn.Module, adapter: DecoderAdapter) -> dict[str, int]:
    """Total and non-zero parameters, with and without the embedding and output head."""
    counts = param_counts(model)
    embed = adapter.embed_tokens(model).weight
    heads = [embed] if adapter.tied_embeddings(model) else [embed, adapter.lm_head(model).weight]
    out = dict(counts)
    out["non_embedding"] = counts["total"] - sum(w.numel() for w in heads)
    out["non_embedding_nonzero"] = counts["nonzero"] - sum(int((w != 0).sum()) for w in heads)
    return out


def plot_losses(losses: list[float], path: Path, title: str) -> None:
    """The training loss per step (per block for reconstruction) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(losses) + 1), losses, lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
