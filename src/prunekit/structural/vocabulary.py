"""Vocabulary pruning: keep only the tokens a domain uses, so embeddings and the output head shrink.

Why it is exact on in-domain text: BPE applies, at every step, the lowest-ranked merge among the
adjacent pairs present. Every merge the original tokenizer applies to an in-domain word produces a
sub-token of a kept token, so it survives in the pruned merge list (same relative order); at each
step the pruned tokenizer therefore sees the same candidate set minus merges that were not chosen
anyway, and picks the same one. For Unigram, the best segmentation of an in-domain text uses only
kept pieces, and removing other pieces only removes worse paths. Out-of-domain text falls back to
smaller pieces and, for byte-level BPE or byte fallback, down to bytes (lossless).

Works on the `tokenizers` JSON (`model.vocab`, `model.merges`, `added_tokens`, post-processor ids).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers.pre_tokenizers import ByteLevel
from torch import nn

from prunekit.errors import PrunekitError
from prunekit.models.adapters import DecoderAdapter

SUPPORTED_MODELS = ("BPE", "Unigram")
_BYTE_FALLBACK = re.compile(r"^<0x[0-9A-F]{2}>$")


def _walk(node, kind: str) -> bool:
    """Whether a pre-tokenizer/decoder tree contains a component of type `kind`."""
    if isinstance(node, dict):
        if node.get("type") == kind:
            return True
        return any(_walk(v, kind) for v in node.values())
    if isinstance(node, list):
        return any(_walk(v, kind) for v in node)
    return False


def is_byte_level(tok_json: dict) -> bool:
    return _walk(tok_json.get("pre_tokenizer"), "ByteLevel") or _walk(
        tok_json.get("decoder"), "ByteLevel"
    )


def check_tokenizer(tokenizer) -> dict:
    """The tokenizer's `tokenizers` JSON; a clear error unless it is a fast BPE or Unigram tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise PrunekitError(
            f"vocabulary pruning needs a fast (Rust `tokenizers`) tokenizer, got {type(tokenizer).__name__}; "
            "supported: fast BPE (byte-level or byte-fallback) and Unigram tokenizers with a tokenizer.json"
        )
    tok_json = json.loads(backend.to_str())
    kind = tok_json.get("model", {}).get("type")
    if kind not in SUPPORTED_MODELS:
        raise PrunekitError(
            f"vocabulary pruning supports BPE and Unigram tokenizers, not {kind}; "
            "skip the vocabulary step for this model"
        )
    if tok_json["model"].get("dropout"):
        raise PrunekitError(
            "the tokenizer uses BPE dropout (non-deterministic); disable it before pruning"
        )
    return tok_json


def model_vocab(tok_json: dict) -> dict[str, int]:
    """token string → id of the tokenizer model (without added tokens)."""
    model = tok_json["model"]
    if model["type"] == "Unigram":
        return {piece: i for i, (piece, _score) in enumerate(model["vocab"])}
    return dict(model["vocab"])


def _merge_pairs(model: dict) -> list[tuple[str, str]]:
    return [
        tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model.get("merges", [])
    ]


def merge_closure(kept: set[str], merges: list[tuple[str, str]]) -> set[str]:
    """`kept` plus every token on a merge chain that produces a kept token (all producing merges).

    A token made by several merges keeps the parts of all of them: which one the original
    tokenizer applied depends on the word, and keeping all of them keeps it exact.
    """
    producers: dict[str, list[tuple[str, str]]] = {}
    for a, b in merges:
        producers.setdefault(a + b, []).append((a, b))
    out = set(kept)
    stack = list(kept)
    while stack:
        tok = stack.pop()
        for a, b in producers.get(tok, ()):
            for part in (a, b):
                if part not in out:
                    out.add(part)
                    stack.append(part)
    return out


def base_tokens(tok_json: dict, vocab: dict[str, int]) -> set[str]:
    """Tokens every input may need: byte-level alphabet, byte-fallback bytes, unk; else single chars."""
    model = tok_json["model"]
    base: set[str] = set()
    if is_byte_level(tok_json):
        base |= {c for c in ByteLevel.alphabet() if c in vocab}  # GPT-2's 256 byte characters
    if model.get("byte_fallback"):
        base |= {t for t in vocab if _BYTE_FALLBACK.match(t)}
    if not base:  # neither: keep every single character so unseen text degrades gracefully
        base |= {t for t in vocab if len(t) == 1}
    unk = model.get("unk_token")
    if isinstance(unk, str) and unk in vocab:
        base.add(unk)
    if model["type"] == "Unigram" and model.get("unk_id") is not None:
        base.add(model["vocab"][model["unk_id"]][0])
    return base


# what whitespace looks like inside a token string: byte-level BPE's printable stand-ins for space,
# \n, \t, \r, \v, \f (GPT-2's byte alphabet), else SentencePiece's ▁ and the characters themselves
_BYTE_LEVEL_SPACE = frozenset("ĠĊĉčċČ")
_PLAIN_SPACE = frozenset("▁ \n\t\r\v\f")


def whitespace_tokens(tok_json: dict, vocab: dict[str, int]) -> set[str]:
    """Tokens made of whitespace only (runs of spaces, newlines, indentation): code needs them
    whatever the corpus — a corpus that strips trailing spaces would otherwise drop ' \n'."""
    chars = _BYTE_LEVEL_SPACE if is_byte_level(tok_json) else _PLAIN_SPACE
    return {t for t in vocab if t and set(t) <= chars}


def token_counts(
    tokenizer, texts: Iterable[str], vocab_rows: int, chunk: int = 256
) -> torch.Tensor:
    """How often each token id occurs when the texts are tokenized (no special tokens added)."""
    backend = tokenizer.backend_tokenizer
    counts = torch.zeros(vocab_rows, dtype=torch.long)
    batch: list[str] = []

    def flush() -> None:
        ids = [i for enc in backend.encode_batch(batch, add_special_tokens=False) for i in enc.ids]
        if ids:
            counts.add_(torch.bincount(torch.tensor(ids), minlength=vocab_rows)[:vocab_rows])
        batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) >= chunk:
            flush()
    if batch:
        flush()
    return counts


@dataclass
class VocabPlan:
    """Which old ids survive (sorted, so new id = position) and why."""

    keep: list[int]
    tokens_before: int
    from_corpus: int
    special: int
    base: int
    from_merges: int
    merges_before: int = 0
    merges_after: int = 0
    whitespace: int = 0  # whitespace-only tokens kept although the corpus did not use them
    extra: dict = field(default_factory=dict)

    @property
    def old_to_new(self) -> dict[int, int]:
        return {old: new for new, old in enumerate(self.keep)}


def plan_vocabulary(
    tok_json: dict, counts: torch.Tensor, min_count: int = 1, required_ids: Iterable[int] = ()
) -> VocabPlan:
    """Pure selection: corpus tokens with count ≥ min_count, specials, base tokens, merge closure."""
    if min_count < 1:
        raise PrunekitError(f"vocabulary min_count must be ≥ 1, got {min_count}")
    vocab = model_vocab(tok_json)
    id_to_tok = {i: t for t, i in vocab.items()}
    added = {a["id"]: a["content"] for a in tok_json.get("added_tokens", [])}
    all_ids = set(id_to_tok) | set(added)
    corpus_ids = {int(i) for i in torch.nonzero(counts >= min_count).flatten().tolist()}
    corpus_ids = {i for i in corpus_ids if i in id_to_tok and i not in added}
    special_ids = set(added) | {i for i in required_ids if i in all_ids}
    base = {vocab[t] for t in base_tokens(tok_json, vocab)} - special_ids
    spaces = {vocab[t] for t in whitespace_tokens(tok_json, vocab)} - special_ids - base
    if not corpus_ids - base:
        raise PrunekitError(
            f"the vocabulary corpus leaves no ordinary tokens beyond the {len(special_ids)} special and "
            f"{len(base)} base tokens (min_count {min_count}); give more in-domain text or lower min_count"
        )
    kept_strings = {id_to_tok[i] for i in corpus_ids | base | spaces if i in id_to_tok}
    merges = _merge_pairs(tok_json["model"])
    closed = merge_closure(kept_strings, merges) if merges else kept_strings
    keep_model = {vocab[t] for t in closed if t in vocab}
    keep = sorted(keep_model | special_ids)
    kept_set = set(closed) | {id_to_tok[i] for i in special_ids if i in id_to_tok}
    merges_after = sum(
        1 for a, b in merges if a in kept_set and b in kept_set and a + b in kept_set
    )
    return VocabPlan(
        keep=keep,
        tokens_before=len(all_ids),
        from_corpus=len(corpus_ids),
        special=len(special_ids),
        base=len(base - corpus_ids),
        whitespace=len(spaces - corpus_ids),
        from_merges=len(keep_model - corpus_ids - base - spaces),
        merges_before=len(merges),
        merges_after=merges_after,
    )


def _remap_processor(node, old_to_new: dict[int, int]):
    """Remap the ids a post-processor stores (TemplateProcessing, Bert/Roberta, Sequence)."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "ids" and isinstance(v, list):
                out[k] = [old_to_new[i] for i in v]
            elif (
                k in ("sep", "cls")
                and isinstance(v, list)
                and len(v) == 2
                and isinstance(v[1], int)
            ):
                out[k] = [v[0], old_to_new[v[1]]]
            else:
                out[k] = _remap_processor(v, old_to_new)
        return out
    if isinstance(node, list):
        return [_remap_processor(v, old_to_new) for v in node]
    return node


def rewrite_tokenizer_json(tok_json: dict, keep: list[int]) -> dict:
    """A new, valid `tokenizers` JSON holding only `keep` (old ids, sorted), renumbered 0..n-1."""
    old_to_new = {old: new for new, old in enumerate(keep)}
    out = json.loads(json.dumps(tok_json))
    model = out["model"]
    if model["type"] == "Unigram":
        model["vocab"] = [model["vocab"][i] for i in keep if i < len(model["vocab"])]
        if model.get("unk_id") is not None:
            model["unk_id"] = old_to_new[model["unk_id"]]
        kept_strings = {p for p, _ in model["vocab"]}
    else:
        new_vocab = {t: old_to_new[i] for t, i in model["vocab"].items() if i in old_to_new}
        model["vocab"] = dict(sorted(new_vocab.items(), key=lambda kv: kv[1]))
        kept_strings = set(new_vocab)
        raw = model.get("merges", [])
        pairs = _merge_pairs(model)
        model["merges"] = [
            m
            for m, (a, b) in zip(raw, pairs)
            if a in kept_strings and b in kept_strings and a + b in kept_strings
        ]
    out["added_tokens"] = [{**a, "id": old_to_new[a["id"]]} for a in out.get("added_tokens", [])]
    if out.get("post_processor") is not None:
        out["post_processor"] = _remap_processor(out["post_processor"], old_to_new)
    padding = out.get("padding")
    if isinstance(padding, dict) and padding.get("pad_id") in old_to_new:
        padding["pad_id"] = old_to_new[padding["pad_id"]]
    return out


_ID_KEY = re.compile(r".*_token_id(s)?$|.*_token_index$")


def special_ids(*configs) -> set[int]:
    """Every token id a config or generation config names (bos/eos/pad/… `*_token_id(s)`)."""
    ids: set[int] = set()
    for cfg in configs:
        if cfg is None:
            continue
        for key, value in vars(cfg).items():
            if not _ID_KEY.match(key) or value is None:
                continue
            vals = value if isinstance(value, list | tuple) else [value]
            ids |= {v for v in vals if isinstance(v, int) and v >= 0}
    return ids


def remap_config_ids(cfg, old_to_new: dict[int, int]) -> None:
    """Rewrite every `*_token_id(s)` of a config in place with the new ids."""
    if cfg is None:
        return
    for key, value in list(vars(cfg).items()):
        if not _ID_KEY.match(key) or value is None:
            continue
        if isinstance(value, list | tuple):
            setattr(
                cfg,
                key,
                type(value)(old_to_new.get(v, v) if isinstance(v, int) else v for v in value),
            )
        elif isinstance(value, int) and value >= 0:
            if value not in old_to_new:
                raise PrunekitError(
                    f"config {key}={value} names a token that was not kept; this is a bug"
                )
            setattr(cfg, key, old_to_new[value])


@torch.no_grad()
def slice_vocab_rows(model: nn.Module, adapter: DecoderAdapter, keep: list[int]) -> None:
    """Keep only rows `keep` of the embedding and the output head (once when tied); update config."""
    idx = torch.tensor(keep, dtype=torch.long)
    emb = adapter.embed_tokens(model)
    head = adapter.lm_head(model)
    tied = adapter.tied_embeddings(model)
    if int(idx.max()) >= emb.weight.shape[0]:
        raise PrunekitError(
            f"the tokenizer has ids up to {int(idx.max())} but the embedding has {emb.weight.shape[0]} rows; "
            "tokenizer and model do not match"
        )
    grad = emb.weight.requires_grad
    emb.weight = nn.Parameter(emb.weight.data.index_select(0, idx).clone(), requires_grad=grad)
    emb.num_embeddings = len(keep)
    if emb.padding_idx is not None:
        emb.padding_idx = keep.index(emb.padding_idx) if emb.padding_idx in keep else None
    if tied:
        head.weight = emb.weight
    else:
        head.weight = nn.Parameter(
            head.weight.data.index_select(0, idx).clone(), requires_grad=grad
        )
    if head.bias is not None:
        head.bias = nn.Parameter(head.bias.data.index_select(0, idx).clone(), requires_grad=grad)
    head.out_features = len(keep)
    model.config.vocab_size = len(keep)


def rebuild_tokenizer(tokenizer, new_json: dict, old_to_new: dict[int, int]):
    """Load a tokenizer of the same class from the rewritten JSON (as `from_pretrained` will later)."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        Path(tmp, "tokenizer.json").write_text(json.dumps(new_json, ensure_ascii=False))
        cfg_path = Path(tmp, "tokenizer_config.json")
        if cfg_path.is_file():
            cfg = json.loads(cfg_path.read_text())
            if isinstance(cfg.get("added_tokens_decoder"), dict):
                cfg["added_tokens_decoder"] = {
                    str(old_to_new[int(k)]): v
                    for k, v in cfg["added_tokens_decoder"].items()
                    if int(k) in old_to_new
                }
            cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
        new = AutoTokenizer.from_pretrained(tmp)
    loaded = model_vocab(json.loads(new.backend_tokenizer.to_str()))
    expected = model_vocab(new_json)
    if loaded != expected:
        raise PrunekitError(
            f"{type(tokenizer).__name__} did not load the pruned vocabulary as written; "
            "this tokenizer class is not supported by vocabulary pruning"
        )
    return new


def prune_vocabulary(
    model: nn.Module,
    tokenizer,
    adapter: DecoderAdapter,
    texts: Iterable[str],
    min_count: int = 1,
) -> tuple[object, dict]:
    """Prune model and tokenizer to the tokens `texts` use; returns the new tokenizer and a report."""
    tok_json = check_tokenizer(tokenizer)
    rows = adapter.embed_tokens(model).weight.shape[0]
    vocab_size = (
        max(max(model_vocab(tok_json).values()), *(a["id"] for a in tok_json["added_tokens"]), 0)
        + 1
    )
    counts = token_counts(tokenizer, texts, max(rows, vocab_size))
    gen = getattr(model, "generation_config", None)
    required = special_ids(model.config, gen) | {
        i for i in (tokenizer.all_special_ids or []) if i is not None
    }
    plan = plan_vocabulary(tok_json, counts, min_count, required)
    params_before = _head_params(model, adapter)
    new_json = rewrite_tokenizer_json(tok_json, plan.keep)
    old_to_new = plan.old_to_new
    new_tokenizer = rebuild_tokenizer(tokenizer, new_json, old_to_new)
    slice_vocab_rows(model, adapter, plan.keep)
    remap_config_ids(model.config, old_to_new)
    remap_config_ids(gen, old_to_new)
    report = {
        "rows_before": rows,
        "tokens_before": plan.tokens_before,
        "tokens_kept": len(plan.keep),
        "kept_from_corpus": plan.from_corpus,
        "kept_special_added": plan.special,
        "kept_base": plan.base,
        "kept_whitespace": plan.whitespace,
        "kept_for_merge_chains": plan.from_merges,
        "merges_before": plan.merges_before,
        "merges_after": plan.merges_after,
        "min_count": min_count,
        "corpus_tokens": int(counts.sum()),
        "params_saved": params_before - _head_params(model, adapter),
        "tied": adapter.tied_embeddings(model),
    }
    return new_tokenizer, report


def _head_params(model: nn.Module, adapter: DecoderAdapter) -> int:
    emb = adapter.embed_tokens(model).weight
    head = adapter.lm_head(model).weight
    return emb.numel() + (0 if head is emb else head.numel())
