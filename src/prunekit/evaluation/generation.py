"""Batched generation for evaluation: continuous batching over one left-padded KV cache.

Rows leave the batch the step they finish (EOS, stop sequence, budget) and waiting prompts
take their place: the newcomers are prefilled on their own and their cache is joined to the
running one, so no token is ever prefilled twice and no finished row keeps being decoded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import DynamicCache


@dataclass
class Generation:
    """One decoded continuation and how many tokens the model actually produced for it."""

    text: str
    new_tokens: int


@dataclass
class Decoding:
    """How the next token is chosen: greedy (temperature 0) or nucleus sampling."""

    temperature: float = 0.0
    top_p: float = 0.95


@dataclass
class _Row:
    """One continuation in flight: which prompt and sample, the tokens so far, its own RNG."""

    prompt: int
    sample: int
    rng: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    done: bool = False


class _StopRule:
    """When a row is finished: EOS (kept), pad (dropped), a stop sequence in its tail, or budget."""

    def __init__(
        self, tokenizer, model, stops: tuple[str, ...], max_new_tokens: int, tail: int = 12
    ):
        self.tokenizer = tokenizer
        self.eos_ids = set(_eos_ids(tokenizer, model))
        self.pad_id = _pad_id(tokenizer, model)
        self.stops = tuple(s for s in stops if s)
        self.max_new_tokens = max_new_tokens
        self.tail = tail  # stops are short: decoding the last few tokens is enough

    @property
    def special(self) -> set[int]:
        return self.eos_ids | {self.pad_id}

    def push(self, row: _Row, token: int) -> None:
        """Append `token` to `row` and mark the row done if it has finished."""
        if token in self.special:
            if token in self.eos_ids:
                row.tokens.append(token)
            row.done = True
            return
        row.tokens.append(token)
        if len(row.tokens) >= self.max_new_tokens:
            row.done = True
        elif self.stops:
            text = self.tokenizer.decode(row.tokens[-self.tail :], skip_special_tokens=False)
            row.done = any(s in text for s in self.stops)


def _pad_id(tokenizer, model) -> int:
    for tid in (
        tokenizer.pad_token_id,
        getattr(model.generation_config, "pad_token_id", None),
        tokenizer.eos_token_id,
    ):
        if isinstance(tid, int):
            return tid
    return 0


def _eos_ids(tokenizer, model) -> list[int]:
    ids: set[int] = set()
    for tid in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(tid, int):
            ids.add(tid)
        elif isinstance(tid, (list, tuple)):
            ids.update(t for t in tid if isinstance(t, int))
    return sorted(ids)


def _pad_left(t: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """Zero-pad `t` on the left of dimension `dim` (counted from the end) up to `length`."""
    missing = length - t.shape[dim]
    if missing <= 0:
        return t
    pad = [0, 0] * (-dim - 1) + [missing, 0]
    return F.pad(t, pad)


class _KVBatch:
    """The rows decoded together: one DynamicCache and a 2-D mask, left padded to a common length.

    Sliding-window layers keep only their window, so every layer is padded or trimmed to its own
    stored length; their `cumulative_length` follows the physical length of the mask.
    """

    def __init__(self, model, device: torch.device):
        self.model = model
        self.device = device
        self.rows: list[_Row] = []
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # (rows, length), 1 = real token

    def __len__(self) -> int:
        return len(self.rows)

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
        # HF generate's positions for left padding: real tokens count from 0, pads sit at 1
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)[:, -ids.shape[1] :]
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :].float()

    def join(self, rows: list[_Row], prompts: list[list[int]], pad_id: int) -> torch.Tensor:
        """Prefill `prompts` for the new `rows`, append them to the batch; their next-token logits."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[r, width - len(p) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = DynamicCache(config=self.model.config)
        logits = self._forward(ids, mask, cache)
        if self.cache is None:
            self.cache, self.mask = cache, mask
        else:
            length = max(self.mask.shape[1], width)
            self.mask = torch.cat([_pad_left(self.mask, length, -1), _pad_left(mask, length, -1)])
            for old, new in zip(self.cache.layers, cache.layers):
                stored = max(old.keys.shape[-2], new.keys.shape[-2])
                old.keys = torch.cat(
                    [_pad_left(old.keys, stored, -2), _pad_left(new.keys, stored, -2)]
                )
                old.values = torch.cat(
                    [_pad_left(old.values, stored, -2), _pad_left(new.values, stored, -2)]
                )
            self._set_length()
        self.rows.extend(rows)
        return logits

    def step(self) -> torch.Tensor:
        """Feed every row's last token; next-token logits (rows, vocab)."""
        ids = torch.tensor([[r.tokens[-1]] for r in self.rows], device=self.device)
        self.mask = F.pad(self.mask, (0, 1), value=1)
        return self._forward(ids, self.mask, self.cache)

    def drop_finished(self) -> list[_Row]:
        """Remove finished rows (and the padding only they needed); return them."""
        finished = [r for r in self.rows if r.done]
        if not finished:
            return []
        keep = [i for i, r in enumerate(self.rows) if not r.done]
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.cache = self.mask = None
            return finished
        index = torch.tensor(keep, device=self.device)
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        first = int(self.mask.any(0).nonzero()[0])
        if first:
            self.mask = self.mask[:, first:]
            for layer in self.cache.layers:
                kept = min(layer.keys.shape[-2], self.mask.shape[1])
                layer.keys, layer.values = layer.keys[..., -kept:, :], layer.values[..., -kept:, :]
            self._set_length()
        return finished

    def _set_length(self) -> None:
        for layer in self.cache.layers:
            if hasattr(layer, "cumulative_length"):
                layer.cumulative_length = self.mask.shape[1]


def _choose(logits: torch.Tensor, rows: list[_Row], decoding: Decoding) -> list[int]:
    """Greedy argmax, or top-p sampling with each row's own generator (batch-independent)."""
    if decoding.temperature <= 0:
        return logits.argmax(-1).tolist()
    probs = torch.softmax(logits.cpu() / decoding.temperature, dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    outside = sorted_p.cumsum(-1) - sorted_p >= decoding.top_p  # the first token is always kept
    sorted_p = sorted_p.masked_fill(outside, 0.0)
    picks = []
    for r, row in enumerate(rows):
        j = torch.multinomial(sorted_p[r], 1, generator=row.rng)
        picks.append(int(order[r, j]))
    return picks


def generate_batched(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int = 512,
    batch_size: int = 8,
    num_samples: int = 1,
    temperature: float = 0.0,
    top_p: float = 0.95,
    stops: tuple[str, ...] = (),
    add_special_tokens: bool = True,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
    desc: str = "generate",
) -> tuple[list[list[Generation]], dict]:
    """Continue every prompt `num_samples` times; greedy when temperature == 0.

    Up to `batch_size` rows are decoded together; shorter prompts go first (less padding).
    Sampling draws from a generator per (prompt, sample), so results do not depend on batching.
    Returns per-prompt lists of Generation (input order) and timing stats.
    """
    if getattr(model, "generates_itself", False):  # a GGUF run by llama.cpp (llamacpp_eval)
        return model.generate(
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            num_samples=num_samples,
            temperature=temperature,
            top_p=top_p,
            stops=stops,
            add_special_tokens=add_special_tokens,
            seed=seed,
            progress=progress,
            desc=desc,
        )
    if num_samples > 1 and temperature <= 0:
        raise ValueError("several samples per problem need temperature > 0")
    device = torch.device(device)
    rule = _StopRule(tokenizer, model, stops, max_new_tokens)
    decoding = Decoding(temperature, top_p)
    encoded = [tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    pending = [
        _Row(i, s, torch.Generator().manual_seed(seed + 7919 * (i * num_samples + s)))
        for i in order
        for s in range(num_samples)
    ]
    pending.reverse()  # pop() from the end = shortest first
    finished: list[_Row] = []
    batch = _KVBatch(model, device)
    counts = {"prefills": 0, "decode_steps": 0}
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = tqdm(total=len(pending), desc=desc, unit="seq", disable=not progress)
    try:
        with torch.inference_mode():
            while pending or batch:
                if pending and len(batch) < batch_size:
                    rows = [
                        pending.pop() for _ in range(min(batch_size - len(batch), len(pending)))
                    ]
                    logits = batch.join(rows, [encoded[r.prompt] for r in rows], rule.pad_id)
                    counts["prefills"] += 1
                else:
                    rows = batch.rows
                    logits = batch.step()
                    counts["decode_steps"] += 1
                for row, token in zip(rows, _choose(logits, rows, decoding)):
                    rule.push(row, token)
                done = batch.drop_finished()
                finished.extend(done)
                bar.update(len(done))
    finally:
        bar.close()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    by_key = {(r.prompt, r.sample): r.tokens for r in finished}
    results = [
        [_generation(tokenizer, by_key[(i, s)], rule.special) for s in range(num_samples)]
        for i in range(len(prompts))
    ]
    total_new = sum(len(t) for t in by_key.values())
    stats = {
        "generated_tokens": total_new,
        "generation_s": round(elapsed, 3),
        "generation_cpu_s": round(cpu, 3),
        "tokens_per_s": round(total_new / elapsed, 2) if elapsed > 0 else None,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "batching": "continuous",
        **counts,
    }
    return results, stats


def _generation(tokenizer, tokens: list[int], special: set[int]) -> Generation:
    text = tokenizer.decode([t for t in tokens if t not in special], skip_special_tokens=True)
    return Generation(text, len(tokens))
