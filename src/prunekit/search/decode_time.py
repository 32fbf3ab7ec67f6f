"""Decode time for `decode=` budgets: every layer's per-token decode time at every level,
measured once on this machine, and a candidate's predicted time as their sum.

Each level is timed in the real model: the layers are swapped for their variants at that level
(shapes only: which channels are kept does not change the time), a `context`-token prompt fills
the KV cache, then single-token cached steps are timed, each layer by forward hooks, with the
torch threads the run uses. A layer's time is the median over the timed steps and over every
layer variant of the same shape (identical layers get one number, so the search cannot
exploit timing noise); a level is never predicted slower than the level above it. The fixed
cost (embeddings, final norm, head, what lies between the layers) is the median of a dense step
minus its layers. Prediction: fixed + Σ kept layers (a dropped layer costs 0). The numbers hold
for this machine and these threads only; `decode_check` measures the chosen model after.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from prunekit.models.adapters import DecoderAdapter
from prunekit.search.levels import LevelDB, SearchSpace, shape_layer

TIMES_FILE = "decode_times.json"


@dataclass(frozen=True)
class DecodeTiming:
    """How the times are taken: KV-cache length, timed and warm-up steps."""

    context: int = 256
    steps: int = 8
    warmup: int = 2
    seed: int = 0


MEASURE_STEPS = 16  # decoded tokens of the real-speed check (`measured_decode`)
# tokens past the prompt a decode budget runs: the position range needs context + DECODE_STEPS
DECODE_STEPS = max(MEASURE_STEPS, DecodeTiming.warmup + DecodeTiming.steps)


@dataclass
class DecodeTimes:
    """Per layer, per level: predicted ns of one decode step (0 for a dropped layer); `fixed`:
    the ns outside the layers; how they were taken."""

    layers: list[list[int]]
    fixed: int
    context: int
    threads: int
    dtype: str
    shapes_timed: int

    def predict(self, genome) -> int:
        """Predicted ns per decoded token of a candidate."""
        return self.fixed + sum(t[g] for t, g in zip(self.layers, genome))

    def speedup(self, genome) -> float:
        """Predicted dense time over the candidate's."""
        return self.predict([0] * len(self.layers)) / self.predict(genome)


class _LayerClock:
    """Forward hooks that time every call of each module (seconds of the last call)."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.last = [0.0] * len(modules)
        self._start = [0.0] * len(modules)
        self._handles = []
        for i, m in enumerate(modules):
            self._handles.append(m.register_forward_pre_hook(self._pre(i)))
            self._handles.append(m.register_forward_hook(self._post(i)))

    def _pre(self, i: int):
        def hook(*_):
            self._start[i] = time.perf_counter()

        return hook

    def _post(self, i: int):
        def hook(*_):
            self.last[i] = time.perf_counter() - self._start[i]

        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


@torch.inference_mode()
def _time_steps(
    model: nn.Module, adapter: DecoderAdapter, modules: list[nn.Module], timing: DecodeTiming
) -> tuple[list[list[float]], list[float]]:
    """With `modules` as the layers: per layer its seconds in each timed cached step, and each
    step's whole seconds. The model's own layers are put back after."""
    from prunekit.evaluation.speed import _cached_step, _random_ids

    layers = adapter.layers(model)
    saved = list(layers)
    clock = _LayerClock(modules)
    per_layer: list[list[float]] = [[] for _ in modules]
    totals: list[float] = []
    try:
        for i, m in enumerate(modules):
            layers[i] = m
        ids = _random_ids(model.config.vocab_size, 1, timing.context, timing.seed, "cpu")
        cache, nxt = _cached_step(model, ids)
        for step in range(timing.warmup + timing.steps):
            start = time.perf_counter()
            cache, nxt = _cached_step(model, nxt, cache)
            if step >= timing.warmup:
                totals.append(time.perf_counter() - start)
                for i, t in enumerate(clock.last):
                    per_layer[i].append(t)
    finally:
        clock.remove()
        for i, m in enumerate(saved):
            layers[i] = m
    return per_layer, totals


def _shape_db(space: SearchSpace) -> LevelDB:
    """Rankings that keep the first channels and groups: enough to shape a variant for timing."""
    return LevelDB(
        [torch.arange(s.width) for s in space.layers],
        [torch.arange(s.groups) for s in space.layers],
        None,
        {},
    )


def _signature(module: nn.Module) -> tuple:
    """What decides a layer's time: its class, parameter shapes and its modules' plain settings
    (e.g. a sliding window), not its index."""
    shapes = tuple((n, tuple(p.shape)) for n, p in module.named_parameters())
    settings = tuple(
        (name, k, v)
        for name, sub in module.named_modules()
        for k, v in sorted(vars(sub).items())
        if isinstance(v, int | float | str | bool | None) and k != "layer_idx"
    )
    return type(module).__name__, shapes, settings


def _monotone(costs: list[int]) -> list[int]:
    """No level predicted slower than the level above it (running minimum)."""
    out: list[int] = []
    for c in costs:
        out.append(min(c, out[-1]) if out else c)
    return out


def measure_decode_times(
    model: nn.Module, adapter: DecoderAdapter, space: SearchSpace, timing: DecodeTiming
) -> DecodeTimes:
    """Time every layer at every level of `space` (see the module docstring)."""
    db = _shape_db(space)
    dense = list(adapter.layers(model))
    pooled: dict[tuple, list[float]] = defaultdict(list)
    keys: dict[tuple[int, int], tuple] = {}
    fixed: list[float] = []
    for level in range(max(len(s.variants) for s in space.layers)):
        timed = [
            i
            for i, s in enumerate(space.layers)
            if level < len(s.variants) and not s.variants[level].dropped
        ]
        if not timed:
            continue
        modules = list(dense)
        for i in timed if level else ():
            modules[i] = copy.deepcopy(dense[i])
            shape_layer(modules[i], adapter, db, i, space.layers[i].variants[level])
        per_layer, totals = _time_steps(model, adapter, modules, timing)
        for i in timed:
            keys[(i, level)] = _signature(modules[i])
            pooled[keys[(i, level)]] += per_layer[i]
        if level == 0:
            fixed = [t - sum(layer[n] for layer in per_layer) for n, t in enumerate(totals)]
    ns = {k: round(statistics.median(v) * 1e9) for k, v in pooled.items()}
    layers = [
        _monotone([0 if v.dropped else ns[keys[(i, g)]] for g, v in enumerate(s.variants)])
        for i, s in enumerate(space.layers)
    ]
    return DecodeTimes(
        layers=layers,
        fixed=max(0, round(statistics.median(fixed) * 1e9)),
        context=timing.context,
        threads=torch.get_num_threads(),
        dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
        shapes_timed=len(pooled),
    )


def load_times(folder: Path | None, fingerprint: dict) -> DecodeTimes | None:
    """The times saved in `folder` by a search with the same settings (resume keeps its costs)."""
    path = folder / TIMES_FILE if folder is not None else None
    if path is None or not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.pop("fingerprint", None) != json.loads(json.dumps(fingerprint)):
        return None
    return DecodeTimes(**data)


def save_times(folder: Path | None, fingerprint: dict, times: DecodeTimes) -> None:
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{TIMES_FILE}.tmp"
    tmp.write_text(json.dumps({"fingerprint": fingerprint, **asdict(times)}) + "\n")
    tmp.replace(folder / TIMES_FILE)


def measured_decode(
    model: nn.Module, context: int, steps: int = MEASURE_STEPS, repeats: int = 5
) -> float:
    """Real decode tokens/s at batch 1 after a `context`-token prompt (`evaluation.speed`)."""
    from prunekit.evaluation.speed import time_decode

    times = time_decode(model, torch.device("cpu"), 1, context, steps, repeats, warmup=1)
    return steps / statistics.median(times)


def decode_section(times: DecodeTimes, genome, dense_tps: float, chosen_tps: float) -> dict:
    """The report's `decode`: predicted against measured speedup of the chosen model."""
    dense = [0] * len(times.layers)
    return {
        "note": "timings are specific to this machine, dtype and thread count",
        "context": times.context,
        "threads": times.threads,
        "dtype": times.dtype,
        "predicted_dense_ns": times.predict(dense),
        "predicted_chosen_ns": times.predict(genome),
        "predicted_speedup": times.speedup(genome),
        "measured_dense_tokens_per_s": dense_tps,
        "measured_chosen_tokens_per_s": chosen_tps,
        "measured_speedup": chosen_tps / dense_tps,
        "fixed_ns": times.fixed,
        "layer_ns": times.layers,
        "shapes_timed": times.shapes_timed,
    }
