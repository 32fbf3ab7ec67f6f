"""`prunekit.search(...)`: build the level database, run the evolutionary search within the time
budget (resumable), then cut the model in place to the best plan found."""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from prunekit.errors import PrunekitError
from prunekit.models.adapters import DecoderAdapter, adapter_for
from prunekit.search.budget import Budget, parse_budget
from prunekit.search.config import SearchConfig
from prunekit.search.decode_time import (
    DECODE_STEPS,
    DecodeTimes,
    DecodeTiming,
    decode_section,
    load_times,
    measure_decode_times,
    measured_decode,
    save_times,
)
from prunekit.search.evolve import initial_genome, mutate, select, stage_survivors
from prunekit.search.fitness import Evaluator, stage_sequences
from prunekit.search.levels import (
    SearchSpace,
    VariantCache,
    build_db,
    build_space,
    load_db,
    space_summary,
)
from prunekit.search.plan import apply_plan, plan_dict, plan_variants
from prunekit.search.state import Evaluated, SearchState, load_state, save_state
from prunekit.search.vocabulary import VocabularyMove, check_rebuilt, plan_record

PLAN_SPREAD = 12  # candidate plans written for the fitness ↔ pass@1 rank correlation


UNITS = {
    "params": "non-embedding parameters",
    "size": "bytes",
    "decode": "predicted decode ns/token",
}


@dataclass
class BudgetMeasure:
    """The budget as one bound on Σ layer costs of `space` (parameters; predicted ns for
    decode), and a candidate's cost in the budget's unit."""

    budget: Budget
    space: SearchSpace  # the ladders, costed in the budget's count
    limit: float  # Σ layer costs allowed
    fixed: int  # the cost outside the layers, in the budget's count
    itemsize: int  # budget units per counted unit: bytes per parameter for size, else 1
    dense: int  # Σ layer costs of the dense model

    @property
    def unit(self) -> str:
        """The budget's unit; with sparse variants a params budget counts non-zero parameters."""
        sparse = self.budget.kind == "params" and self.space.sparse
        return ("non-zero " if sparse else "") + UNITS[self.budget.kind]

    def value(self, cost: int) -> int:
        return (cost + self.fixed) * self.itemsize

    def value_of(self, genome) -> int:
        return self.value(self.space.cost(genome))


def _counts(model: nn.Module, adapter: DecoderAdapter, budget: Budget, layers: int, times):
    """(fixed cost, the dense cost `Budget.limit` reads, units per counted unit)."""
    from prunekit.reports.report import param_counts
    from prunekit.structural.saap import non_embedding

    if budget.kind == "decode":
        if times is None:
            raise PrunekitError("a decode budget needs the measured decode times")
        return times.fixed, times.fixed + layers, 1
    non_emb = non_embedding(model, adapter)
    if budget.kind == "params":
        return non_emb - layers, non_emb, 1
    itemsize = next(model.parameters()).dtype.itemsize
    return param_counts(model)["total"] - layers, non_emb, itemsize


def measure_budget(
    model: nn.Module,
    adapter: DecoderAdapter,
    space: SearchSpace,
    budget: Budget,
    times: DecodeTimes | None = None,
) -> BudgetMeasure:
    """The bound (a decode budget on `times`' costs), refused (one line) when the dense model
    already fits or nothing fits."""
    if budget.kind == "decode" and times is not None:
        space = space.with_costs(times.layers)
    dense = space.cost([0] * len(space.layers))
    fixed, dense_total, itemsize = _counts(model, adapter, budget, dense, times)
    limit = budget.limit(dense_total, fixed, itemsize)
    m = BudgetMeasure(budget, space, limit, fixed, itemsize, dense)
    dense_value = m.value(dense)
    if limit >= dense:
        raise PrunekitError(
            f"budget {budget.text}: the dense model already fits ({dense_value:,} {m.unit}); "
            "give a tighter budget"
        )
    if space.min_cost() > limit:
        raise PrunekitError(
            f"budget {budget.text} is impossible with these levels: the smallest candidate has "
            f"{m.value(space.min_cost()):,} {m.unit} ({dense_value:,} dense); allow lower levels "
            "(ffn_levels, head_levels, sparsity_levels, drop) or a larger budget"
        )
    return m


@dataclass
class SearchResult:
    """The model (cut in place to the best plan), its plan, the report, and candidate plans."""

    model: nn.Module
    tokenizer: object
    plan: dict
    report: dict
    candidate_plans: list[dict] = field(default_factory=list)


def _space(model: nn.Module, adapter: DecoderAdapter, cfg: SearchConfig) -> SearchSpace:
    """The ladders of `cfg` on this model."""
    levels = (cfg.ffn_levels, cfg.head_levels, cfg.multiple, cfg.drop, cfg.sparsity_levels)
    return build_space(model, adapter, *levels)


def check_decode_context(model: nn.Module, cfg: SearchConfig, budget: Budget) -> None:
    """A decode budget's prompt plus the decoded tokens fit the model's context length; one line
    otherwise (before any timing or calibration)."""
    limit = getattr(model.config, "max_position_embeddings", None)
    need = cfg.decode_context + DECODE_STEPS
    if budget.kind == "decode" and limit is not None and need > limit:
        raise PrunekitError(
            f"decode_context {cfg.decode_context} plus {DECODE_STEPS} decoded tokens exceeds the "
            f"model's context length {limit} (max_position_embeddings); give decode_context at "
            f"most {limit - DECODE_STEPS}"
        )


def _split(cal, fraction: float, seed: int):
    """(build, fitness) sequences and weights: a seeded share `fraction` of the answers held out."""
    n = len(cal.batches)
    if cal.weights is None or n < 2:
        raise PrunekitError(f"search needs at least 2 kept answers (got {n}); raise calib_samples")
    order = list(range(n))
    random.Random(f"{seed}:split").shuffle(order)
    k = min(max(1, round(n * fraction)), n - 1)
    fit, build = sorted(order[:k]), sorted(order[k:])
    pick = lambda idx, xs: [xs[i] for i in idx]  # noqa: E731
    return (
        (pick(build, cal.batches), pick(build, cal.weights)),
        (pick(fit, cal.batches), pick(fit, cal.weights)),
    )


def fitness_decontamination(sequences, tokenizer, described: dict) -> dict:
    """The decontamination record of the fitness split: what the answered pipeline dropped, and a
    re-check of every held-out sequence's text for 13-grams shared with HumanEval (must be 0)."""
    from prunekit.data.decontam import NGRAM, humaneval_ngrams, is_contaminated

    banned = humaneval_ngrams()
    hits = sum(is_contaminated(tokenizer.decode(s[0].tolist()), banned) for s in sequences)
    if hits:
        raise PrunekitError(
            f"{hits} fitness sequences share a {NGRAM}-gram with HumanEval; the judge must stay "
            "out of the search (use another answered corpus)"
        )
    return {
        "removed_humaneval_overlap_by_calibration": described.get("removed_humaneval_overlap"),
        "fitness_sequences_rechecked": len(sequences),
        "fitness_sequences_with_humaneval_ngram": 0,
        "ngram": NGRAM,
    }


def _calibration(model, tokenizer, cfg: SearchConfig, progress: bool):
    from prunekit.api import calibration_set

    size = {"samples": cfg.calib_samples, "seq_len": cfg.seq_len, "seed": cfg.seed, "batch_size": 1}
    return calibration_set(model, tokenizer, cfg.calib, size, "cpu", progress)


def fitness_data(model: nn.Module, tokenizer, cfg: SearchConfig, progress: bool):
    """(calibration set, build split, fitness split): the model's answers, tokenized with
    `tokenizer` (after a vocabulary move: the pruned one, answered by the pruned model)."""
    cal = _calibration(model, tokenizer, cfg, progress)
    build, fit = _split(cal, cfg.fitness_split, cfg.seed)
    return cal, build, fit


def _decode_times(
    model: nn.Module, adapter: DecoderAdapter, space: SearchSpace, cfg: SearchConfig, folder, key
) -> DecodeTimes:
    """Measured once per search and kept in the work folder (a resumed search keeps its costs)."""
    times = load_times(folder, key) if cfg.resume else None
    if times is None:
        timing = DecodeTiming(context=cfg.decode_context)
        times = measure_decode_times(model, adapter, space, timing)
        save_times(folder, key, times)
    return times


def _measured_decode(model: nn.Module, times: DecodeTimes | None, timer) -> float | None:
    """Real decode tokens/s of the model as it is now, for decode budgets only."""
    if times is None:
        return None
    with timer("decode_check"):
        return measured_decode(model, times.context)


def _vocabulary(model: nn.Module, tokenizer, adapter: DecoderAdapter, cfg: SearchConfig):
    """The vocabulary move when `cfg.vocabulary` names a corpus: (tokenizer, record or None)."""
    if cfg.vocabulary is None:
        return tokenizer, None
    return VocabularyMove(cfg.vocabulary).apply(model, tokenizer, adapter)


def _database(model, adapter, space, cfg: SearchConfig, build, folder: Path, meta: dict, progress):
    db = load_db(folder, meta) if cfg.resume else None
    if db is None:
        db = build_db(
            model,
            adapter,
            build[0],
            space,
            folder,
            cfg.refit,
            cfg.refit_damp,
            meta,
            "cpu",
            progress,
        )
    return db


class _Search:
    """One search session: the loop over generations, with the state saved after each."""

    def __init__(self, cfg, space, measure, ev: Evaluator, state, folder, started) -> None:
        self.cfg, self.space, self.m, self.ev, self.state = cfg, space, measure, ev, state
        self.folder, (self.started, self.cpu0) = folder, started
        self.memo = {tuple(e.genome): e.stages[-1] for e in state.evaluated if e.full}

    def elapsed(self) -> float:
        return self.state.elapsed_s + time.perf_counter() - self.started

    def _score(self, genome, seqs) -> float:
        self.state.evaluations += 1
        self.state.token_evaluations += sum(self.ev.tokens[s] for s in seqs)
        return self.ev.fitness(genome, seqs)

    def _save(self) -> None:
        st = self.state
        now_wall, now_cpu = time.perf_counter(), time.process_time()
        st.elapsed_s += now_wall - self.started
        st.cpu_s += now_cpu - self.cpu0
        self.started, self.cpu0 = now_wall, now_cpu
        if self.folder is not None:
            save_state(self.folder, st)

    def start(self) -> None:
        st, cfg = self.state, self.cfg
        if st.parent:
            return
        limit = self.m.limit
        parent = initial_genome(self.space, limit, random.Random(f"{cfg.seed}:init"))
        fit = self._score(parent, range(len(self.ev.tokens)))
        st.parent, st.parent_fitness = list(parent), fit
        st.evaluated.append(Evaluated(list(parent), self.space.cost(parent), 0, [fit], True))
        self.memo[parent] = fit
        st.best_trace.append(fit)
        self._save()

    def generation(self, gen: int) -> bool:
        """One generation; False when no child within the budget could be drawn."""
        cfg, st, space = self.cfg, self.state, self.space
        rng = random.Random(f"{cfg.seed}:gen{gen}")
        parent = tuple(st.parent)
        children: list[tuple[int, ...]] = []
        for _ in range(cfg.offspring):
            child = mutate(parent, space, self.m.limit, space.step(), rng, set(children))
            if child is None:
                break
            children.append(child)
        if not children:
            return False
        subsets = [
            stage_sequences(self.ev.tokens, f, random.Random(f"{cfg.seed}:gen{gen}:stage{j}"))
            for j, f in enumerate(cfg.stages)
        ]
        last = len(cfg.stages) - 1
        records = {g: Evaluated(list(g), space.cost(g), gen) for g in children}

        def score(j: int, genome) -> float:
            if j == last and genome in self.memo:
                value = self.memo[genome]
            else:
                value = self._score(genome, subsets[j])
                if j == last:
                    self.memo[genome] = value
            if genome in records:
                records[genome].stages.append(value)
            return value

        survivors = stage_survivors(len(children), len(cfg.stages))
        best, fit = select(children, survivors, score, parent)[0]
        st.parent, st.parent_fitness = list(best), fit
        st.best_trace.append(fit)
        for r in records.values():
            r.full = len(r.stages) == len(cfg.stages)
            st.evaluated.append(r)
        st.generation = gen
        self._save()
        return True

    def run(self) -> None:
        cfg, st = self.cfg, self.state
        budget_s = cfg.hours * 3600
        self.start()
        total = cfg.max_generations
        bar = tqdm(total=total, initial=st.generation, desc="search", unit="gen",
                   disable=not cfg.progress)  # fmt: skip
        gen_times: list[float] = []
        st.stop_reason = None
        while True:
            if total is not None and st.generation >= total:
                st.stop_reason = f"max_generations {total}"
                break
            mean = sum(gen_times) / len(gen_times) if gen_times else 0.0
            if self.elapsed() + mean > budget_s:
                st.stop_reason = f"time budget {cfg.hours:g} h"
                break
            t = time.perf_counter()
            if not self.generation(st.generation + 1):
                st.stop_reason = "no child within the budget band"
                break
            gen_times.append(time.perf_counter() - t)
            bar.update(1)
            bar.set_postfix(best=f"{st.parent_fitness:.4g}", evals=st.evaluations,
                            elapsed=f"{self.elapsed() / 60:.1f}m")  # fmt: skip
        bar.close()
        self._save()


def _spread(evaluated: list[dict], n: int) -> list[dict]:
    """Up to `n` distinct full-stage candidates whose fitness values are spread evenly over their
    range (the nearest to `n` evenly spaced values): a search's evaluations crowd near its best, and
    a rank correlation over a crowd measures pass@1 noise."""
    unique = {tuple(e["levels"]): e for e in sorted(evaluated, key=lambda e: e["fitness"])}
    left = sorted(unique.values(), key=lambda e: e["fitness"])
    if len(left) <= n:
        return left
    lo, hi = left[0]["fitness"], left[-1]["fitness"]
    chosen = []
    for i in range(n):
        target = lo + i * (hi - lo) / (n - 1)
        chosen.append(
            left.pop(min(range(len(left)), key=lambda j: abs(left[j]["fitness"] - target)))
        )
    return sorted(chosen, key=lambda e: e["fitness"])


@torch.no_grad()
def direct_fitness(model: nn.Module, adapter: DecoderAdapter, ev: Evaluator, seqs) -> float:
    """The fitness of a model cut directly (a full decoder forward of the real module), on the
    same rows and dense targets as the stitched candidates."""
    total = count = 0.0
    for s, ids in enumerate(seqs):
        hidden = adapter.decoder(model)(input_ids=ids, use_cache=False).last_hidden_state
        rows = hidden.reshape(-1, hidden.shape[-1])[ev.rows[s]][None]
        logits = adapter.finish_logits(model, adapter.lm_head(model)(rows)).float()
        kl = ev.targets[s].kl(torch.log_softmax(logits, -1)[0]).double()
        total += float((ev.picked[s] * kl).sum())
        count += float(ev.picked[s].sum())
    return total / count


def _model_info(model: nn.Module, info: dict | None) -> dict:
    info = info or {}
    return {
        "id": info.get("id") or getattr(model.config, "_name_or_path", "") or "in-memory",
        "model_type": model.config.model_type,
        "layers": model.config.num_hidden_layers,
        "sha256": info.get("sha256"),
    }


def search(
    model: nn.Module,
    tokenizer,
    config: SearchConfig | None = None,
    *,
    info: dict | None = None,
    **options,
):
    """Search per-layer levels within `config.budget` and cut `model` in place to the best plan.

    `config`: a `SearchConfig`, or its fields as keywords (`budget="params=0.8", hours=3`);
    `info`: the loaded model's provenance (`LoadedModel.info`: id, hash), kept in the plan.
    Returns a `SearchResult` (write it with `prunekit.search.save_search`)."""
    from prunekit.reports.report import param_counts
    from prunekit.utils import Timer

    cfg = SearchConfig.of(config, options)
    adapter = adapter_for(model)
    budget = parse_budget(cfg.budget)
    check_decode_context(model, cfg, budget)
    model_info = _model_info(model, info)
    timer = Timer()
    params_before = param_counts(model)
    vocab = None
    if cfg.vocabulary is not None:
        with timer("vocabulary"):
            tokenizer, vocab = _vocabulary(model, tokenizer, adapter, cfg)
    space = _space(model, adapter, cfg)
    fingerprint = {**cfg.fingerprint(), "model": model_info}
    folder = Path(cfg.work_dir) if cfg.work_dir else None
    times = None
    if budget.kind == "decode":
        with timer("decode_timing"):
            times = _decode_times(model, adapter, space, cfg, folder, fingerprint)
    measure = measure_budget(model, adapter, space, budget, times)
    state = load_state(folder, fingerprint) if cfg.resume else SearchState(fingerprint)
    started = (time.perf_counter(), time.process_time())
    with timer("calibration_data"):
        cal, build, fit = fitness_data(model, tokenizer, cfg, cfg.progress)
    decontam = fitness_decontamination(fit[0], tokenizer, cal.describe())
    scratch = tempfile.TemporaryDirectory(prefix="prunekit-levels-") if folder is None else None
    db_folder = folder if folder is not None else Path(scratch.name)
    meta = {"fingerprint": fingerprint, "build_sequences": len(build[0])}
    try:
        with timer("level_database"):
            db = _database(model, adapter, space, cfg, build, db_folder, meta, cfg.progress)
        cache = VariantCache(model, adapter, db, space, cfg.cache_mb << 20)
        with timer("fitness_setup"):
            ev = Evaluator(model, adapter, fit[0], fit[1], cache, cfg.kl_topk)
        loop = _Search(cfg, measure.space, measure, ev, state, folder, started)
        with timer("search"):
            loop.run()
        best = tuple(state.parent)
        dense_stitched = ev.fitness([0] * len(space.layers), range(len(ev.tokens)))
        repair = None
        if cfg.repair == "linear":
            repair = _repair(adapter, build, cfg.progress)
        dense_speed = _measured_decode(model, times, timer)
        with timer("apply"):
            apply_plan(model, adapter, db, space.variants(best), repair)
        chosen_speed = _measured_decode(model, times, timer)
        with timer("direct_check"):
            direct = direct_fitness(model, adapter, ev, fit[0])
    finally:
        if scratch is not None:
            scratch.cleanup()
    candidates = [
        {
            "generation": e.generation,
            "levels": e.genome,
            "labels": space.labels(e.genome),
            "cost": e.cost,
            "value": measure.value(e.cost),
            "fitness": e.stages[-1],
        }
        for e in state.evaluated
        if e.full
    ]
    partial = [
        {"generation": e.generation, "value": measure.value(e.cost), "stages": e.stages}
        for e in state.evaluated
        if not e.full
    ]
    config_dump = cfg.model_dump(exclude={"work_dir", "resume", "progress"})

    def plan_of(levels, value, fitness) -> dict:
        extra = {
            "budget": {"text": budget.text, "value": value, "unit": measure.unit},
            "fitness": fitness,
            "vocabulary": plan_record(vocab),
        }
        return plan_dict(space, levels, config_dump, model_info, extra)

    plan = plan_of(best, measure.value_of(best), state.parent_fitness)
    spread = [
        plan_of(c["levels"], c["value"], c["fitness"]) for c in _spread(candidates, PLAN_SPREAD)
    ]
    section = {
        "config": cfg.model_dump(),
        "vocabulary": vocab,
        "budget": {
            "text": budget.text,
            "kind": budget.kind,
            "unit": measure.unit,
            "limit": measure.value(int(measure.limit)),
            "dense": measure.value(measure.dense),
            "chosen": measure.value_of(best),
        },
        "space": {"layers": space_summary(space), "band": measure.space.step()},
        "decode": decode_section(times, best, dense_speed, chosen_speed)
        if times is not None
        else None,
        "database": {
            "memory_bytes": db.memory_bytes(),
            "disk_bytes": db.disk_bytes(),
            "refit": cfg.refit,
            "build_sequences": len(build[0]),
            "variant_modules_built": cache.built,
        },
        "fitness": {
            "definition": "weighted mean KL(dense ‖ candidate) of the next token on the answer "
            "tokens of the held-out answers",
            "sequences": len(fit[0]),
            "scored_tokens": sum(ev.tokens),
            "topk": ev.topk or "exact",
            "dense_stitched": dense_stitched,
            "decontamination": decontam,
        },
        "selection": {
            "offspring": cfg.offspring,
            "stages": list(cfg.stages),
            "survivors": stage_survivors(cfg.offspring, len(cfg.stages)),
        },
        "generations": state.generation,
        "evaluations": state.evaluations,
        "token_evaluations": state.token_evaluations,
        "layer_passes": ev.layer_passes,
        "stop_reason": state.stop_reason,
        "elapsed_s": state.elapsed_s,
        "cpu_s": state.cpu_s,
        "best": {
            "levels": list(best),
            "labels": space.labels(best),
            "dropped": plan["dropped"],
            "value": measure.value_of(best),
            "fitness": state.parent_fitness,
            "direct_fitness": direct,
            "repair": cfg.repair,
        },
        "trace": state.best_trace,
        "candidates": candidates,
        "partial_candidates": partial,
    }
    report = {
        "search": section,
        "calibration": cal.describe(),
        "params_before": params_before,
        "params": param_counts(model),
        "timings_s": timer.stages,
    }
    return SearchResult(model, tokenizer, plan, report, spread)


def _repair(adapter: DecoderAdapter, build, progress: bool):
    """The depth-repair step for the chosen plan's dropped runs (fitted on the build split)."""
    from prunekit.calibration.context import RunContext
    from prunekit.structural.depth_repair import repair_runs

    def repair(model: nn.Module, dropped: list[int]) -> None:
        ctx = RunContext(model, adapter, build[0], progress=progress, weights=build[1])
        repair_runs(ctx, dropped, skip_layer0=True)

    return repair


def rebuild(model: nn.Module, tokenizer, plan: dict, progress: bool = True) -> SearchResult:
    """Cut `model` in place to a saved plan: the same calibration, split and database as the
    search that wrote it (answers are cached per model), then `apply_plan`."""
    from prunekit.config.options import Surface
    from prunekit.reports.report import param_counts

    cfg = SearchConfig.parse({**plan["config"], "progress": progress}, Surface.API)
    adapter = adapter_for(model)
    tokenizer, vocab = _vocabulary(model, tokenizer, adapter, cfg)
    if vocab is not None:
        check_rebuilt(plan.get("vocabulary") or {}, vocab)
    space = _space(model, adapter, cfg)
    variants = plan_variants(plan)
    known = [set(s.variants) for s in space.layers]
    if len(variants) != len(known) or any(v not in k for v, k in zip(variants, known)):
        raise PrunekitError("the plan's layers do not match this model's levels; wrong model?")
    cal, build, _ = fitness_data(model, tokenizer, cfg, progress)
    with tempfile.TemporaryDirectory(prefix="prunekit-levels-") as tmp:
        db = build_db(model, adapter, build[0], space, Path(tmp), cfg.refit, cfg.refit_damp, {},
                      "cpu", progress)  # fmt: skip
        repair = _repair(adapter, build, progress) if cfg.repair == "linear" else None
        apply_plan(model, adapter, db, variants, repair)
    report = {"search_plan": plan, "calibration": cal.describe(), "params": param_counts(model)}
    if vocab is not None:
        report["vocabulary"] = vocab
    return SearchResult(model, tokenizer, plan, report)
