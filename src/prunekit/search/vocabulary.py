"""The search's fixed first move: prunekit's vocabulary pruning (the recipe's `vocabulary` step)
applied before the level database and the fitness data are built, and checked again on rebuild.

The fitness data is text (instructions and the model's answers): it is tokenized after this move
with the pruned tokenizer, which encodes any text losslessly (byte-level or byte-fallback pieces),
so a fitness sequence decodes to the same text as before the cut.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from prunekit.errors import PrunekitError
from prunekit.models.adapters import DecoderAdapter


@dataclass(frozen=True)
class VocabularyMove:
    """Keep the tokens `corpus` uses (a built-in corpus, a comma list of them, or a path)."""

    corpus: str

    def apply(self, model: nn.Module, tokenizer, adapter: DecoderAdapter) -> tuple[object, dict]:
        """Cut `model` in place; the pruned tokenizer and the move's record (kept in the plan)."""
        from prunekit.data.sources import resolve_source
        from prunekit.structural.vocabulary import prune_vocabulary

        source = resolve_source(self.corpus, "calib")
        new, rep = prune_vocabulary(model, tokenizer, adapter, source.documents())
        record = {
            "corpus": self.corpus,
            "tokens_before": rep["tokens_before"],
            "tokens_kept": rep["tokens_kept"],
            "params_saved": rep["params_saved"],
        }
        return new, {**record, "report": {"description": source.description, **rep}}


def check_rebuilt(planned: dict, rebuilt: dict) -> None:
    """A rebuild keeps the tokens the search kept; one line when the corpus gives others now."""
    if planned.get("tokens_kept") != rebuilt["tokens_kept"]:
        raise PrunekitError(
            f"the plan's vocabulary corpus '{rebuilt['corpus']}' keeps {rebuilt['tokens_kept']} "
            f"tokens here, {planned.get('tokens_kept')} when the plan was searched; the corpus "
            "files differ on this machine (install the same corpora, or search again)"
        )


def plan_record(record: dict | None) -> dict | None:
    """What plan.json keeps of the move (its report stays in report.json)."""
    if record is None:
        return None
    return {k: v for k, v in record.items() if k != "report"}
