"""A GGUF file run by llama.cpp itself (through `llama-cpp-python`'s ctypes bindings to the
llama.cpp it builds): tokenize, decode, next-token logits.

Only llama.h's public C functions are called, so what prunekit measures here (outputs,
tokens/s, memory) is what a llama.cpp user gets from the same file. Greedy decoding and stop
rules are prunekit's own (evaluation/llamacpp_generation.py), so they match the transformers
path token for token.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prunekit.errors import PrunekitError

PACKAGE = "llama-cpp-python"
INSTALL_HINT = (
    "install it with scripts/install_llamacpp.sh (the full ./setup.sh runs it; it builds "
    "llama-cpp-python, 4-7 min on 2 cores)"
)


def available() -> bool:
    """Whether the llama.cpp runtime is installed (cheap: no library is loaded)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


_STATE: dict = {}


def _lib():
    """llama.cpp's C functions, with the backend initialised and its log kept quiet (warnings
    and errors are kept for the message when a load fails)."""
    if "lib" not in _STATE:
        if not available():
            raise PrunekitError(f"llama.cpp is not installed; {INSTALL_HINT}")
        import llama_cpp.llama_cpp as lib

        errors: list[str] = []

        def log(level, text, _data):
            if level in (3, 4) and text:  # GGML_LOG_LEVEL_WARN, _ERROR
                errors.append(text.decode("utf-8", "replace").strip())
                del errors[:-20]

        callback = lib.llama_log_callback(log)
        lib.llama_log_set(callback, None)
        lib.llama_backend_init()
        _STATE.update(lib=lib, log=callback, errors=errors)
    return _STATE["lib"]


def version() -> str:
    """The runtime's version (llama-cpp-python's, which pins one llama.cpp commit)."""
    import importlib.metadata

    return f"{PACKAGE} {importlib.metadata.version(PACKAGE)}"


def default_threads() -> int:
    """All cores this process may use (what llama.cpp's tools default to on a small machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _why() -> str:
    return "; ".join(_STATE["errors"][-2:]) or "no reason given"


@dataclass
class LlamaCppModel:
    """One GGUF loaded in llama.cpp with one context of `n_seq` sequences, `n_ctx` tokens each."""

    path: Path
    n_ctx: int = 4096
    n_seq: int = 1
    threads: int = field(default_factory=default_threads)
    n_batch: int = 512
    vocab_only: bool = False  # the tokenizer alone: no weights read, no context

    def __post_init__(self) -> None:
        lib = _lib()
        self.path = Path(self.path)
        self._model = self._ctx = None
        if not self.path.is_file():
            raise PrunekitError(f"GGUF file '{self.path}' does not exist; check the path")
        _STATE["errors"].clear()
        mparams = lib.llama_model_default_params()
        mparams.n_gpu_layers = 0
        mparams.vocab_only = self.vocab_only
        self._model = lib.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self._model:
            self._model = None
            raise PrunekitError(f"llama.cpp could not load '{self.path}': {_why()}")
        self._vocab = lib.llama_model_get_vocab(self._model)
        self.n_vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        self.eog_ids = {t for t in range(self.n_vocab) if lib.llama_vocab_is_eog(self._vocab, t)}
        self._pieces: dict[tuple[int, bool], bytes] = {}
        if self.vocab_only:
            return
        cparams = lib.llama_context_default_params()
        if self.n_seq < 1:
            raise PrunekitError(f"llama.cpp needs at least one sequence, got {self.n_seq}")
        cparams.n_ctx = self.n_ctx * self.n_seq  # split evenly: each sequence gets n_ctx
        cparams.n_batch = cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = self.n_seq
        cparams.kv_unified = False
        cparams.n_threads = cparams.n_threads_batch = self.threads
        cparams.no_perf = True
        self._ctx = lib.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            self._ctx = None
            self.close()
            raise PrunekitError(f"llama.cpp could not create a context for '{self.path}': {_why()}")

    # metadata -------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as llama.cpp reads it (None when absent)."""
        buf = ctypes.create_string_buffer(8192)
        n = _lib().llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    @property
    def arch(self) -> str | None:
        return self.meta("general.architecture")

    # tokens ---------------------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool = False, parse_special: bool = True) -> list:
        """llama.cpp's token ids for `text`; `parse_special` matches added tokens in the text
        (as transformers always does)."""
        lib = _lib()
        data = text.encode("utf-8")
        cap = len(data) + 16
        out = (lib.llama_token * cap)()
        n = lib.llama_tokenize(self._vocab, data, len(data), out, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            out = (lib.llama_token * cap)()
            n = lib.llama_tokenize(
                self._vocab, data, len(data), out, cap, add_special, parse_special
            )
        return list(out[:n])

    def piece(self, token: int, special: bool = True) -> bytes:
        """The bytes one token stands for; control tokens as their text, or as nothing
        without `special` (transformers' skip_special_tokens)."""
        key = (token, special)
        if key not in self._pieces:
            buf = ctypes.create_string_buffer(256)
            n = _lib().llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
            self._pieces[key] = buf.raw[: max(n, 0)]
        return self._pieces[key]

    def detokenize(self, tokens: list[int], skip=frozenset(), special: bool = True) -> str:
        """The text of `tokens` (those in `skip` left out)."""
        data = b"".join(self.piece(t, special) for t in tokens if t not in skip)
        return data.decode("utf-8", "replace")

    # decoding -------------------------------------------------------------------------------
    def reset(self, seq: int | None = None) -> None:
        """Forget the KV cache of one sequence, or of all (the next decode starts at 0)."""
        lib = _lib()
        if seq is None:
            lib.llama_memory_clear(lib.llama_get_memory(self._ctx), True)
        else:
            lib.llama_memory_seq_rm(lib.llama_get_memory(self._ctx), seq, -1, -1)

    def _row(self, i: int) -> np.ndarray:
        ptr = _lib().llama_get_logits_ith(self._ctx, i)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def decode(
        self, tokens: list[int], start: int, all_logits: bool = False, seq: int = 0
    ) -> np.ndarray:
        """Feed `tokens` to sequence `seq` at positions start.. ; the logits of the last one
        (vocab,), or of every one (len(tokens), vocab) with `all_logits`."""
        self._fits(start + len(tokens))
        rows = []
        for lo in range(0, len(tokens), self.n_batch):
            chunk = tokens[lo : lo + self.n_batch]
            last = lo + len(chunk) == len(tokens)
            wanted = [all_logits or (last and i == len(chunk) - 1) for i in range(len(chunk))]
            rows += self._run(
                [(seq, t, start + lo + i, w) for i, (t, w) in enumerate(zip(chunk, wanted))]
            )
        return np.stack(rows) if all_logits else rows[-1]

    def step(self, entries: list[tuple[int, int, int]]) -> np.ndarray:
        """One token for each of several sequences in one llama.cpp batch: `entries` are
        (sequence, token, position); the logits after each (len(entries), vocab)."""
        self._fits(max(pos for _, _, pos in entries) + 1)
        return np.stack(self._run([(seq, tok, pos, True) for seq, tok, pos in entries]))

    def _fits(self, end: int) -> None:
        if end > self.n_ctx:
            raise PrunekitError(f"{end} tokens do not fit llama.cpp's context of {self.n_ctx}")

    def _run(self, entries: list[tuple[int, int, int, bool]]) -> list[np.ndarray]:
        """One llama_decode of (sequence, token, position, logits wanted) entries; the logits
        of the entries that want them, in order."""
        lib = _lib()
        batch = lib.llama_batch_init(len(entries), 0, 1)
        try:
            for i, (seq, tok, pos, want) in enumerate(entries):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, pos, 1
                batch.seq_id[i][0], batch.logits[i] = seq, want
            batch.n_tokens = len(entries)
            code = lib.llama_decode(self._ctx, batch)
            if code != 0:
                raise PrunekitError(f"llama.cpp failed to decode (llama_decode returned {code})")
            return [self._row(i) for i, entry in enumerate(entries) if entry[3]]
        finally:
            lib.llama_batch_free(batch)

    def logits(self, tokens: list[int]) -> np.ndarray:
        """Logits at every position of `tokens` from an empty cache (len, vocab)."""
        self.reset()
        return self.decode(tokens, 0, all_logits=True)

    def close(self) -> None:
        if "lib" not in _STATE:
            return
        lib = _STATE["lib"]
        if getattr(self, "_ctx", None):
            lib.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            lib.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> LlamaCppModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
