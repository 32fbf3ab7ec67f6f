"""`prunekit eval FILE.gguf` through llama.cpp: the same prompts, stop rules, sandbox and report
sections as the transformers path, with generation and speed measured in llama.cpp.

`LlamaCppBackend` stands where the torch model stands in `LoadedModel`; `generation.
generate_batched`, `speed.measure_speed` and `api.perplexity` hand their work to it (`generate`,
`speed`, `perplexity`: the transformers path's windows, scored on llama.cpp's logits).
Decoding is one sequence at a time by default (what a llama.cpp user running one request sees);
`parallel` > 1 decodes that many sequences in one llama.cpp batch, each in its own KV sequence,
a finished one replaced at once (llama-server's --parallel slots). Greedy is argmax of llama.cpp's
logits, sampling uses the transformers path's top-p code and seeds.
A row ends on llama.cpp's end-of-generation tokens (the file's eos plus those llama.cpp treats
as such by name, e.g. <|endoftext|>, <|file_sep|>), the pad token, a stop sequence or the
budget, as generation._StopRule does with transformers' eos ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prunekit.errors import PrunekitError
from prunekit.evaluation.llamacpp import LlamaCppModel, default_threads, version

BACKENDS = ("auto", "llama.cpp", "transformers")
N_CTX = 4096  # llama.cpp context of `prunekit eval FILE.gguf` (more when a --ppl window needs it)


@dataclass
class LlamaCppBackend:
    """A GGUF loaded in llama.cpp plus what the evaluation needs around it."""

    path: Path
    threads: int = field(default_factory=default_threads)
    n_ctx: int = N_CTX
    parallel: int = 1  # sequences decoded together, each with a context of n_ctx
    rss_before_load_mb: float = 0.0

    def __post_init__(self) -> None:
        from prunekit.utils import peak_rss_mb, reset_peak_rss

        reset_peak_rss()
        self.rss_before_load_mb = round(peak_rss_mb(), 1)
        self.lm = LlamaCppModel(
            Path(self.path), n_ctx=self.n_ctx, threads=self.threads, n_seq=self.parallel
        )
        pad = self.lm.meta("tokenizer.ggml.padding_token_id")
        self.pad_id = int(pad) if pad is not None else None
        self.file_type = _file_type(Path(self.path))

    # what eval_cmd asks of a model ----------------------------------------------------------
    generates_itself = True

    def to(self, _device):
        return self

    def eval(self):
        return self

    @property
    def dtype_label(self) -> str:
        return self.file_type

    @property
    def special(self) -> set[int]:
        return self.lm.eog_ids | ({self.pad_id} if self.pad_id is not None else set())

    # generation -----------------------------------------------------------------------------
    def continue_all(self, jobs: list[tuple[list[int], object]], rule, on_done) -> None:
        """Decode after each job's prompt ids until `rule` says done, `parallel` jobs at a time
        (one KV sequence each, a finished one replaced at once); each job is (ids, choose) and
        `on_done(job index, new tokens)` is called as it finishes."""
        from prunekit.evaluation.generation import _Row

        waiting = list(range(len(jobs)))[::-1]
        active: dict[int, tuple[int, _Row, int]] = {}  # sequence -> (job, row, next position)

        def push(seq: int, job: int, row: _Row, logits: np.ndarray, pos: int) -> None:
            ids, choose = jobs[job]
            rule.push(row, choose(logits, row))
            if row.done or len(row.tokens) >= self.lm.n_ctx - len(ids):
                active.pop(seq, None)
                on_done(job, row.tokens)
            else:
                active[seq] = (job, row, pos)

        self.lm.reset()
        while waiting or active:
            for seq in [q for q in range(self.parallel) if q not in active]:
                if waiting:
                    job = waiting.pop()
                    self.lm.reset(seq)
                    ids = jobs[job][0]
                    row = _Row(prompt=0, sample=0, rng=None)
                    push(seq, job, row, self.lm.decode(ids, 0, seq=seq), len(ids))
            if active:
                order = list(active.items())
                logits = self.lm.step([(q, row.tokens[-1], pos) for q, (_, row, pos) in order])
                for (seq, (job, row, pos)), out in zip(order, logits):
                    push(seq, job, row, out, pos + 1)

    def generate(
        self,
        _tokenizer,
        prompts: list[str],
        *,
        max_new_tokens: int = 512,
        num_samples: int = 1,
        temperature: float = 0.0,
        top_p: float = 0.95,
        stops: tuple[str, ...] = (),
        add_special_tokens: bool = True,
        seed: int = 0,
        progress: bool = True,
        desc: str = "generate",
        **_ignored,
    ) -> tuple[list, dict]:
        """`generation.generate_batched`'s contract, run in llama.cpp (`parallel` at a time)."""
        import torch
        from tqdm.auto import tqdm

        from prunekit.evaluation.generation import Decoding, Generation, _choose

        if num_samples > 1 and temperature <= 0:
            raise ValueError("several samples per problem need temperature > 0")
        rule = _Stops(self, stops, max_new_tokens)
        decoding = Decoding(temperature, top_p)
        encoded = [self.lm.tokenize(p, add_special=add_special_tokens) for p in prompts]

        def choose(logits: np.ndarray, row) -> int:
            if temperature <= 0:
                return int(logits.argmax())
            return _choose(torch.from_numpy(logits[None]), [row], decoding)[0]

        jobs = [
            (ids, _seeded(choose, torch.Generator().manual_seed(seed + 7919 * k)))
            for i, ids in enumerate(encoded)
            for k in range(i * num_samples, (i + 1) * num_samples)
        ]
        done: dict[int, Generation] = {}
        start, cpu_start = time.perf_counter(), time.process_time()
        with tqdm(total=len(jobs), desc=desc, unit="seq", disable=not progress) as bar:

            def finish(job: int, tokens: list[int]) -> None:
                text = self.lm.detokenize(tokens, skip=self.special, special=False)
                done[job] = Generation(text, len(tokens))
                bar.update()

            self.continue_all(jobs, rule, finish)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        total = sum(g.new_tokens for g in done.values())
        results = [
            [done[k] for k in range(i * num_samples, (i + 1) * num_samples)]
            for i in range(len(prompts))
        ]
        stats = {
            "generated_tokens": total,
            "generation_s": round(elapsed, 3),
            "generation_cpu_s": round(cpu, 3),
            "tokens_per_s": round(total / elapsed, 2) if elapsed > 0 else None,
            "batch_size": self.parallel,
            "max_new_tokens": max_new_tokens,
            "batching": "none (llama.cpp, one sequence at a time)"
            if self.parallel == 1
            else f"llama.cpp, {self.parallel} sequences per batch, a finished one replaced",
            **self.identity(),
        }
        return results, stats

    def identity(self) -> dict:
        return {
            "backend": "llama.cpp",
            "runtime": version(),
            "threads": self.threads,
            "gguf_type": self.file_type,
        }

    # perplexity -----------------------------------------------------------------------------
    def check_window(self, seq_len: int) -> None:
        """A perplexity window fits the model's trained context and this llama.cpp context."""
        trained = self.lm.meta(f"{self.lm.arch}.context_length")
        for limit, what in ((trained, "the model's context"), (self.lm.n_ctx, "llama.cpp's n_ctx")):
            if limit is not None and seq_len > int(limit):
                raise PrunekitError(
                    f"--ppl-seq-len {seq_len} is beyond {what} of {limit} tokens; lower it"
                )

    def window_nll(self, ids) -> list[float]:
        """Summed next-token NLL of each window (a row of the tensor `ids`) from llama.cpp's
        logits at every position (its logits_all), in float64."""
        return [token_nll(self.lm.logits(row), row) for row in ids.tolist()]

    def perplexity(self, windows, progress: bool = True, desc: str = "perplexity") -> dict:
        """`perplexity.score_windows` on llama.cpp (one window at a time), naming the backend."""
        from prunekit.evaluation.perplexity import score_windows

        self.check_window(int(windows.shape[1]))
        return {**score_windows(windows, self.window_nll, 1, progress, desc), **self.identity()}

    # speed ----------------------------------------------------------------------------------
    def speed(
        self,
        *,
        spec: str | None = None,
        prompt_len: int = 256,
        decode_context: int = 64,
        decode_steps: int = 32,
        repeats: int = 5,
        warmup: int = 1,
        progress: bool = True,
        **_ignored,
    ) -> dict:
        """Prefill and batch-1 decode tokens/s in llama.cpp (medians), memory, size, params; with
        `parallel` slots also decode with every slot busy (batch_<parallel>: tokens of all slots)."""
        from tqdm.auto import tqdm

        from prunekit.evaluation.speed import _median_rate, disk_size
        from prunekit.utils import peak_rss_mb

        rng = np.random.default_rng(0)
        low = min(100, self.lm.n_vocab - 1)
        prompt = rng.integers(low, self.lm.n_vocab, prompt_len).tolist()
        context = rng.integers(low, self.lm.n_vocab, decode_context).tolist()
        prefill, decode, wide = [], [], []
        rounds = (2 + (self.parallel > 1)) * (warmup + repeats)
        with tqdm(total=rounds, desc="speed", disable=not progress) as bar:
            for i in range(warmup + repeats):
                self.lm.reset()
                t = time.perf_counter()
                self.lm.decode(prompt, 0)
                if i >= warmup:
                    prefill.append(time.perf_counter() - t)
                bar.update()
            for i in range(warmup + repeats):
                self.lm.reset()
                logits = self.lm.decode(context, 0)
                t = time.perf_counter()
                for step in range(decode_steps):
                    logits = self.lm.decode([int(logits.argmax())], decode_context + step)
                if i >= warmup:
                    decode.append(time.perf_counter() - t)
                bar.update()
            for i in range(warmup + repeats if self.parallel > 1 else 0):
                self.lm.reset()
                slots = range(self.parallel)
                last = [self.lm.decode(context, 0, seq=q) for q in slots]
                t = time.perf_counter()
                for step in range(decode_steps):
                    picks = [(q, int(last[q].argmax()), decode_context + step) for q in slots]
                    last = list(self.lm.step(picks))
                if i >= warmup:
                    wide.append(time.perf_counter() - t)
                bar.update()
        stats = gguf_stats(Path(self.path), decode_context)
        return {
            "device": "cpu",
            "dtype": self.file_type,
            **self.identity(),
            "repeats": repeats,
            "warmup": warmup,
            "prefill": {"prompt_len": prompt_len, "batch": 1, **_median_rate(prompt_len, prefill)},
            "decode": {
                "context": decode_context,
                "steps": decode_steps,
                "batch_1": {"batch": 1, **_median_rate(decode_steps, decode)},
                **(
                    {
                        f"batch_{self.parallel}": {
                            "batch": self.parallel,
                            **_median_rate(decode_steps * self.parallel, wide),
                        }
                    }
                    if wide
                    else {}
                ),
            },
            "memory": {
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "rss_before_load_mb": self.rss_before_load_mb,
                "n_ctx": self.lm.n_ctx,
                "note": "peak RSS of this process since just before llama.cpp loaded the file "
                "(the mapped weights it touched, KV cache, plus Python and torch)",
            },
            "params": stats["params"],
            "disk": disk_size(Path(spec) if spec else Path(self.path)),
            "flops_per_token": stats["flops_per_token"],
        }


def token_nll(logits: np.ndarray, tokens: list[int], rows: int = 64) -> float:
    """Σ −log p(tokens[i+1] | tokens[..i]) from `logits` (len(tokens), vocab), in float64,
    `rows` positions at a time."""
    targets = np.asarray(tokens[1:])
    total = 0.0
    for lo in range(0, len(targets), rows):
        chunk = logits[lo : min(lo + rows, len(targets))].astype(np.float64)
        top = chunk.max(-1)
        lse = top + np.log(np.exp(chunk - top[:, None]).sum(-1))
        total += float((lse - chunk[np.arange(len(chunk)), targets[lo : lo + len(chunk)]]).sum())
    return total


class _Stops:
    """generation._StopRule's rules on llama.cpp's tokens: an end-of-generation or pad token
    ends the row (EOG kept, pad dropped), a stop sequence in the tail's text, or the budget."""

    def __init__(self, backend: LlamaCppBackend, stops: tuple[str, ...], budget: int, tail=12):
        self.lm = backend.lm
        self.eos_ids = backend.lm.eog_ids
        self.special = backend.special
        self.stops = tuple(s for s in stops if s)
        self.max_new_tokens = budget
        self.tail = tail

    def push(self, row, token: int) -> None:
        if token in self.special:
            if token in self.eos_ids:
                row.tokens.append(token)
            row.done = True
            return
        row.tokens.append(token)
        if len(row.tokens) >= self.max_new_tokens:
            row.done = True
        elif self.stops:
            text = self.lm.detokenize(row.tokens[-self.tail :])
            row.done = any(s in text for s in self.stops)


def _seeded(choose, rng):
    """`choose` with this sample's generator on the row it is given."""

    def pick(logits, row):
        row.rng = rng
        return choose(logits, row)

    return pick


def _file_type(path: Path) -> str:
    """The GGUF's general.file_type by name (f16, q8_0, ...)."""
    import gguf

    field_ = gguf.GGUFReader(str(path)).fields.get("general.file_type")
    if field_ is None:
        return "unknown"
    name = gguf.LlamaFileType(int(field_.contents())).name
    return name.removeprefix("MOSTLY_").lower().replace("all_f32", "f32")


def gguf_stats(path: Path, context: int) -> dict:
    """Parameters (total and non-zero, read back from the stored values) and dense forward
    FLOPs per token from the GGUF's tensors: 2 × matrices in the blocks and the output head +
    4 × Σ heads × head_dim × context."""
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(str(path))
    arch = reader.fields["general.architecture"].contents()

    def meta(key):
        field_ = reader.fields.get(f"{arch}.{key}")
        return field_.contents() if field_ is not None else None

    total = nonzero = matrices = 0
    names = {t.name for t in reader.tensors}
    for t in reader.tensors:
        n = int(np.prod(t.shape))
        total += n
        nonzero += int(np.count_nonzero(dequantize(t.data, t.tensor_type)))
        is_head = t.name == "output.weight" or (
            t.name == "token_embd.weight" and "output.weight" not in names
        )
        if len(t.shape) == 2 and (t.name.startswith("blk.") or is_head):
            matrices += n
    layers = int(meta("block_count"))
    heads = meta("attention.head_count")
    heads = list(heads) if isinstance(heads, list) else [int(heads)] * layers
    head_dim = int(meta("attention.key_length") or meta("embedding_length") // heads[0])
    attn = 4 * sum(heads) * head_dim * context
    return {
        "params": {"total": total, "nonzero": nonzero},
        "flops_per_token": {
            "context": context,
            "dense": 2 * matrices + attn,
            "ideal_sparse": None,
            "linear_weights": matrices,
            "formula": "2*(block matrices + output head) + 4*sum(heads)*head_dim*context",
        },
    }


def resolve_backend(model: str, backend: str) -> str:
    """Which engine evaluates MODEL. auto: llama.cpp for a .gguf file when the runtime is
    installed, else transformers (which dequantizes a GGUF into a torch model, as before
    llama.cpp existed here); the choice is printed, never silent."""
    import sys

    from prunekit.evaluation.llamacpp import INSTALL_HINT, available

    if backend not in BACKENDS:
        raise PrunekitError(f"unknown --backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    is_gguf = str(model).endswith(".gguf")
    if backend == "llama.cpp":
        if not is_gguf:
            raise PrunekitError(
                "--backend llama.cpp runs .gguf files; export the model first: "
                "prunekit export MODEL --format gguf --quant q8_0 -o model.gguf"
            )
        if not available():
            raise PrunekitError(f"llama.cpp is not installed; {INSTALL_HINT}")
        return backend
    if backend == "transformers" or not is_gguf:
        return "transformers"
    if available():
        print(
            f"prunekit: evaluating '{model}' in llama.cpp (--backend transformers evaluates "
            "its dequantized weights in torch)",
            file=sys.stderr,
        )
        return "llama.cpp"
    print(
        f"prunekit: evaluating '{model}' dequantized in transformers, not llama.cpp "
        f"({INSTALL_HINT})",
        file=sys.stderr,
    )
    return "transformers"


def load_llamacpp(path: str, threads: int | None = None, n_ctx: int = N_CTX, parallel: int = 1):
    """A LoadedModel whose model is the GGUF in llama.cpp (`parallel` sequences of `n_ctx` tokens)
    and whose tokenizer is rebuilt from the GGUF (for chat templates and perplexity windows)."""
    from prunekit.export.gguf_tokenizer import tokenizer_from_gguf
    from prunekit.models.loading import LoadedModel
    from prunekit.utils import sha256_file

    file = Path(path).expanduser()
    if not file.is_file():
        raise PrunekitError(f"GGUF file '{file}' does not exist; check the path")
    if threads is not None and threads < 1:
        raise PrunekitError(f"--threads must be at least 1, got {threads}")
    tokenizer = tokenizer_from_gguf(file)
    backend = LlamaCppBackend(file, threads or default_threads(), n_ctx, parallel)
    info = {
        "source": "gguf",
        "id": str(file.resolve()),
        "gguf_sha256": sha256_file(file),
        **backend.identity(),
        "architecture": backend.lm.arch,
        "dtype": backend.file_type,
        "num_layers": int(backend.lm.meta(f"{backend.lm.arch}.block_count") or 0),
        "vocab_size": backend.lm.n_vocab,
    }
    return LoadedModel(model=backend, tokenizer=tokenizer, info=info)
