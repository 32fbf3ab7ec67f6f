"""The generator before continuous batching (commit 2eea069), kept as the reference for greedy outputs.

Every segment re-ran the prefill of prompt + tokens so far; the new one must produce the same tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList


class StopOnSequences(StoppingCriteria):
    """Per-row stop: a row is done once its generated text contains any stop sequence.

    Only the tail of each row is decoded at every step (stops are short), so the cost is
    independent of how long the row already is.
    """

    def __init__(self, tokenizer, stops: tuple[str, ...], prompt_len: int, tail_tokens: int = 12):
        self.tokenizer = tokenizer
        self.stops = tuple(s for s in stops if s)
        self.prompt_len = prompt_len
        self.tail = tail_tokens
        self.done: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        if self.done is None:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if not self.stops:
            return self.done.clone()
        start = max(self.prompt_len, input_ids.shape[1] - self.tail)
        tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=False)
        for i, text in enumerate(tails):
            if not self.done[i] and any(s in text for s in self.stops):
                self.done[i] = True
        return self.done.clone()


@dataclass
class Generation:
    """One decoded continuation and how many tokens the model actually produced for it."""

    text: str
    new_tokens: int


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
    segment_tokens: int | None = 128,
) -> tuple[list[list[Generation]], dict]:
    """Continue every prompt `num_samples` times; greedy when temperature == 0.

    Rows are generated in batches of similar length (left padding, KV cache). A batch runs
    for at most `segment_tokens` new tokens; rows that have not finished (no EOS, no stop
    sequence, budget left) go back to the queue with their tokens so far as prompt. One long
    row then no longer holds a whole batch hostage for `max_new_tokens` steps, at the price
    of re-reading its prefix once per segment. None = one segment of `max_new_tokens`.
    Returns per-prompt lists of Generation (input order) and timing stats.
    """
    if num_samples > 1 and temperature <= 0:
        raise ValueError("several samples per problem need temperature > 0")
    device = torch.device(device)
    pad_id = _pad_id(tokenizer, model)
    eos_ids = _eos_ids(tokenizer, model)
    stop_ids = set(eos_ids) | {pad_id}
    segment = min(segment_tokens or max_new_tokens, max_new_tokens)
    encoded = [tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"] for p in prompts]
    # a row is (prompt index, sample index, generated token ids so far)
    pending = [(i, s, []) for i in range(len(prompts)) for s in range(num_samples)]
    done_ids: dict[tuple[int, int], list[int]] = {}
    generator_seed = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    segments = 0
    bar = tqdm(total=len(pending), desc=desc, unit="seq", disable=not progress)
    try:
        while pending:
            # shortest first: similar lengths share a batch (less padding)
            pending.sort(key=lambda row: len(encoded[row[0]]) + len(row[2]))
            chunk, pending = pending[:batch_size], pending[batch_size:]
            seqs = [encoded[i] + gen for i, _, gen in chunk]
            width = max(len(q) for q in seqs)
            budget = min(segment, max(max_new_tokens - len(gen) for _, _, gen in chunk))
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, q in enumerate(seqs):
                ids[r, width - len(q) :] = torch.tensor(q, dtype=torch.long)
                mask[r, width - len(q) :] = 1
            ids, mask = ids.to(device), mask.to(device)
            criterion = StopOnSequences(tokenizer, stops, width)
            kwargs = dict(
                max_new_tokens=budget,
                pad_token_id=pad_id,
                eos_token_id=eos_ids or None,
                stopping_criteria=StoppingCriteriaList([criterion]),
                use_cache=True,
            )
            if temperature > 0:
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator_seed)))
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            segments += 1
            new = out[:, width:].cpu()
            for r, (i, s, gen) in enumerate(chunk):
                toks = new[r].tolist()
                finished = criterion.done is not None and bool(criterion.done[r])
                n = len(toks)
                for j, t in enumerate(toks):
                    if t in stop_ids:
                        n = j + (1 if t in eos_ids else 0)
                        finished = True
                        break
                gen = gen + toks[: min(n, max_new_tokens - len(gen))]
                own_budget = max_new_tokens - len(gen)
                if finished or own_budget <= 0 or n == 0:
                    done_ids[(i, s)] = gen
                    bar.update(1)
                else:
                    pending.append((i, s, gen))
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    results: list[list[Generation]] = []
    total_new = 0
    for i in range(len(prompts)):
        per = []
        for s in range(num_samples):
            gen = done_ids[(i, s)]
            eos_cut = [t for t in gen if t not in stop_ids]
            per.append(Generation(tokenizer.decode(eos_cut, skip_special_tokens=True), len(gen)))
            total_new += len(gen)
        results.append(per)
    stats = {
        "generated_tokens": total_new,
        "generation_s": round(elapsed, 3),
        "tokens_per_s": round(total_new / elapsed, 2) if elapsed > 0 else None,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "segment_tokens": segment,
        "segments_run": segments,
    }
    return results, stats
