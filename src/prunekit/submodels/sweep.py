"""Language-specific sub-models: calibrate one sub-model per language (and sparsity), evaluate each
on every language, and compare their masks.

Statistics reuse. Standard Wanda takes block i's statistics on the stream that already went
through the *pruned* blocks 0..i−1, so they depend on the sparsity and cannot be shared across a
sweep. With `stream="dense"` (default) every block's statistics are taken once per language on the
dense model's stream (one engine pass, no block edited) and each sparsity is then a pure masking
step (`Pruner.prune` with those statistics): the statistics of a language truly do not change
between sparsity levels, and a sweep of k sparsities costs one calibration pass per language, not
k. `stream="pruned"` runs the standard sequential prune (`prune_model`) per (language, sparsity)
for the exact published variant. At block 0 both are identical; deeper blocks differ slightly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from prunekit.calibration.engine import BlockContext, LayerwiseEngine
from prunekit.calibration.stats import LinearStats, large_kinds
from prunekit.data.windows import calibration_windows, evaluation_windows
from prunekit.errors import PrunekitError
from prunekit.evaluation import cross_eval
from prunekit.evaluation.perplexity import perplexity
from prunekit.methods.oneshot import prune_model
from prunekit.methods.patterns import Pattern, parse_pattern, resolve_sparsity
from prunekit.methods.pruners import Pruner, get_pruner
from prunekit.models.adapters import DecoderAdapter, adapter_for
from prunekit.reports import mask_overlap
from prunekit.submodels import by_generation
from prunekit.submodels.languages import Language
from prunekit.submodels.masks import named_linears, pack, save_masks, unpack
from prunekit.utils import Timer

STREAMS = ("dense", "pruned")
SAVE_MODES = ("masks", "checkpoints", "none")


@dataclass
class SweepConfig:
    """Everything that decides a sub-model sweep (recorded in report.json)."""

    languages: list[Language]
    eval_languages: list[Language]
    method: str = "wanda"
    sparsities: list[float] = field(default_factory=lambda: [0.5])
    pattern: str = "unstructured"
    calib_samples: int = 64
    seq_len: int = 512
    seed: int = 0
    batch_size: int = 8
    eval_tokens: int = 32768
    eval_seq_len: int = 512
    eval_batch_size: int = 4
    stream: str = "dense"
    save: str = "masks"

    def validate(self) -> Pattern:
        """Cheap checks before any model is loaded; returns the parsed pattern."""
        pattern = parse_pattern(self.pattern)
        pruner = get_pruner(self.method)
        if not self.sparsities:
            raise PrunekitError("--sparsity is empty; give e.g. 0.5 or 0.5,0.6,0.7")
        for s in self.sparsities:
            resolve_sparsity(s, pattern)
        if len(set(self.sparsities)) != len(self.sparsities):
            raise PrunekitError("--sparsity repeats a value; give each sparsity once")
        if self.stream not in STREAMS:
            raise PrunekitError(
                f"unknown --stats-stream '{self.stream}'; choose {' or '.join(STREAMS)}"
            )
        if self.save not in SAVE_MODES:
            raise PrunekitError(
                f"unknown --save '{self.save}'; choose one of {', '.join(SAVE_MODES)}"
            )
        if self.save == "masks" and pruner.updates_weights:
            raise PrunekitError(
                f"{self.method} also updates the kept weights, so masks alone cannot rebuild its sub-models; "
                "use --save checkpoints (or --save none)"
            )
        if self.stream == "dense" and large_kinds(pruner.needs):
            raise PrunekitError(
                f"{self.method}'s statistics ({', '.join(sorted(large_kinds(pruner.needs)))}) for every layer "
                "at once do not fit memory; use --stats-stream pruned"
            )
        for lang in [*self.languages, *self.eval_languages]:
            lang.check()
        return pattern

    def to_dict(self) -> dict:
        d = asdict(self)
        d["languages"] = {lang.label: lang.spec for lang in self.languages}
        d["eval_languages"] = {lang.label: lang.spec for lang in self.eval_languages}
        return d


def sparsity_tag(s: float) -> str:
    return f"s{s:.2f}"


@torch.no_grad()
def collect_stats(
    model: nn.Module,
    adapter: DecoderAdapter,
    needs: frozenset[str],
    batches: list[torch.Tensor],
    device: torch.device | str = "cpu",
    progress: bool = True,
    desc: str = "statistics",
) -> dict[str, LinearStats]:
    """Input statistics of every decoder Linear, all taken on the dense model's stream."""
    stats: dict[str, LinearStats] = {}
    if not needs:
        return stats

    def block_fn(ctx: BlockContext) -> None:
        for name, s in ctx.collect(needs, pass_on=True).items():  # the dense stream
            stats[f"layers.{ctx.index}.{name}"] = s

    LayerwiseEngine(model, adapter, batches, device, progress, desc=desc).run(block_fn)
    return stats


@torch.no_grad()
def prune_with_stats(
    model: nn.Module,
    adapter: DecoderAdapter,
    pruner: Pruner,
    stats: dict[str, LinearStats],
    sparsity: float,
    pattern: Pattern,
) -> dict[str, torch.Tensor]:
    """Prune every decoder Linear in place from precomputed statistics; return the masks."""
    return {
        key: pruner.prune(lin.weight.data, stats.get(key), sparsity, pattern).cpu()
        for key, lin in named_linears(model, adapter).items()
    }


def prune_sequential(
    model: nn.Module,
    adapter: DecoderAdapter,
    pruner: Pruner,
    sparsity: float,
    pattern: Pattern,
    batches: list[torch.Tensor] | None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """The standard one-shot prune (statistics on the pruned stream); return the masks."""
    masks: dict[str, torch.Tensor] = {}

    def target(*_) -> float:
        return sparsity

    prune_model(model, adapter, pruner, target, pattern, batches, device, progress, masks=masks)
    return masks


class DenseWeights:
    """A copy of the decoder Linears' dense weights, to restore between sub-models."""

    def __init__(self, model: nn.Module, adapter: DecoderAdapter) -> None:
        self.linears = named_linears(model, adapter)
        self.saved = {k: lin.weight.detach().clone() for k, lin in self.linears.items()}

    @torch.no_grad()
    def restore(self) -> None:
        for k, lin in self.linears.items():
            lin.weight.copy_(self.saved[k])


def _masks_summary(masks: dict[str, torch.Tensor]) -> dict:
    pruned = sum(int(m.sum()) for m in masks.values())
    numel = sum(m.numel() for m in masks.values())
    return {"achieved": pruned / numel if numel else 0.0, "pruned_layers_numel": numel}


def run_sweep(
    model: nn.Module,
    tokenizer,
    cfg: SweepConfig,
    out: Path,
    device: torch.device | str = "cpu",
    progress: bool = True,
    judge: by_generation.Judge | None = None,
) -> dict:
    """Build every sub-model, fill the matrices and overlaps, write artefacts into `out`.

    With `judge`, the dense model and every sub-model are also judged by generation on its code
    benchmarks (per-problem rows under out/generation/), giving one pass@1 matrix per sparsity
    with paired tests of the diagonal. `out` must be an empty (temporary) folder; the model is
    left dense on return.
    """
    pattern = cfg.validate()
    pruner = get_pruner(cfg.method)
    adapter = adapter_for(model)
    device = torch.device(device)
    timer = Timer()
    langs = [lang.label for lang in cfg.languages]
    evals = [lang.label for lang in cfg.eval_languages]
    data: dict[str, dict] = {}

    # All data first: a corpus too small for the windows fails before any model work.
    calib: dict[str, list[torch.Tensor]] = {}
    eval_windows: dict[str, torch.Tensor] = {}
    with timer("data"):
        for lang in cfg.languages:
            if not pruner.needs:
                break
            src = lang.source("calib")
            w = calibration_windows(src, tokenizer, cfg.calib_samples, cfg.seq_len, cfg.seed)
            calib[lang.label] = list(w.split(cfg.batch_size))
            data.setdefault(lang.label, {})["calibration"] = {
                "description": src.description,
                "licence": src.licence,
                "windows": int(w.shape[0]),
                "seq_len": int(w.shape[1]),
                "tokens": int(w.numel()),
            }
        for lang in cfg.eval_languages:
            src = lang.source("eval")
            w = evaluation_windows(src, tokenizer, cfg.eval_seq_len, cfg.eval_tokens)
            eval_windows[lang.label] = w
            data.setdefault(lang.label, {})["evaluation"] = {
                "description": src.description,
                "licence": src.licence,
                "windows": int(w.shape[0]),
                "seq_len": int(w.shape[1]),
                "tokens": int(w.numel()),
            }

    def ppl_row(tag: str) -> dict[str, float]:
        model.to(device)
        row = {
            e: perplexity(
                model,
                adapter,
                eval_windows[e],
                cfg.eval_batch_size,
                device,
                progress,
                desc=f"ppl {tag} on {e}",
            )["ppl"]
            for e in evals
        }
        model.to("cpu")
        return row

    dense = DenseWeights(model, adapter)
    with timer("eval_dense"):
        dense_ppl = ppl_row("dense")
    generated: dict[str, dict[str, list[dict]]] = {}
    if judge is not None:
        with timer("generate_dense"):
            generated[by_generation.DENSE] = judge(
                model, tokenizer, by_generation.DENSE, out / "generation" / "dense"
            )

    stats: dict[str, dict[str, LinearStats]] = {}
    if cfg.stream == "dense":
        for lang in langs:
            with timer(f"stats_{lang}"):
                stats[lang] = collect_stats(
                    model,
                    adapter,
                    pruner.needs,
                    calib.get(lang),
                    device,
                    progress,
                    desc=f"statistics {lang}",
                )

    matrices, overlaps, submodels, judged = [], {}, {}, []
    for s in cfg.sparsities:
        tag = sparsity_tag(s)
        packed: dict[str, dict[str, tuple[torch.Tensor, tuple[int, ...]]]] = {}  # 1 bit per weight
        rows: dict[str, dict[str, float]] = {}
        for lang in langs:
            dense.restore()
            with timer(f"prune_{lang}_{tag}"):
                if cfg.stream == "dense":
                    masks = prune_with_stats(model, adapter, pruner, stats[lang], s, pattern)
                else:
                    masks = prune_sequential(
                        model, adapter, pruner, s, pattern, calib.get(lang), device, progress
                    )
            entry = {"sparsity": s, **_masks_summary(masks)}
            with timer("save"):
                entry.update(_save_submodel(model, tokenizer, masks, out, lang, s, cfg))
            with timer(f"eval_{tag}"):
                rows[lang] = ppl_row(f"{lang} {tag}")
            if judge is not None:
                with timer(f"generate_{tag}"):
                    generated[lang] = judge(
                        model, tokenizer, f"{lang}@{s:g}", out / "generation" / f"{lang}_{tag}"
                    )
            submodels[f"{lang}@{s:g}"] = entry
            packed[lang] = {k: (pack(m), tuple(m.shape)) for k, m in masks.items()}
            del masks
        dense.restore()
        matrix = cross_eval.build_matrix(rows, dense_ppl, s)
        matrices.append(matrix)
        with timer("overlap"):
            overlaps[f"{s:g}"] = mask_overlap.all_pairs(
                langs, lambda lang, p=packed: {k: unpack(*v) for k, v in p[lang].items()}, s
            )

        (out / f"matrix_{tag}.md").write_text(cross_eval.render_markdown(matrix))
        if judge is not None:
            by_gen = by_generation.build_matrix(
                {r: generated[r] for r in [by_generation.DENSE, *langs]}, s
            )
            judged.append(by_gen)
            (out / f"generation_{tag}.md").write_text(by_generation.render_markdown(by_gen))
            by_generation.plot_heatmap(by_gen, out / f"generation_{tag}.png")
        cross_eval.plot_heatmap(matrix, out / f"matrix_{tag}.png")
        if overlaps[f"{s:g}"]:
            (out / "overlap").mkdir(exist_ok=True)
            for pair, res in overlaps[f"{s:g}"].items():
                a, b = pair.split("|")
                mask_overlap.plot_pair(
                    res,
                    f"{a} vs {b} masks, sparsity {s:g} ({cfg.method})",
                    out / "overlap" / f"{a}__{b}_{tag}.png",
                )
    stats.clear()

    (out / "matrix.json").write_text(json.dumps(matrices, indent=2))
    (out / "overlap.json").write_text(json.dumps(overlaps, indent=2))
    summary = cross_eval.summarize(matrices, overlaps)
    extra = {}
    if judge is not None:
        (out / "generation.json").write_text(json.dumps(judged, indent=2))
        summary += [line for m in judged for line in by_generation.summarize(m)]
        extra = {
            "generation": judged,
            "generation_runs": judge.results,
            "generation_config": judge.describe(),
        }
    return {
        "submodels": {
            "config": cfg.to_dict(),
            "data": data,
            "dense_ppl": dense_ppl,
            "submodels": submodels,
            "matrices": matrices,
            "overlap_summary": _overlap_summary(overlaps),
            "summary": summary,
            **extra,
        },
        "timings_s": timer.stages,
    }


def _save_submodel(
    model, tokenizer, masks, out: Path, lang: str, s: float, cfg: SweepConfig
) -> dict:
    name = f"{lang}_{sparsity_tag(s)}"
    if cfg.save == "masks":
        (out / "masks").mkdir(exist_ok=True)
        path = out / "masks" / f"{name}.safetensors"
        save_masks(
            masks,
            path,
            {"language": lang, "sparsity": s, "method": cfg.method, "pattern": cfg.pattern},
        )
        return {"masks": str(path.relative_to(out))}
    if cfg.save == "checkpoints":
        from prunekit.export.checkpoint import save_checkpoint

        path = out / "checkpoints" / name
        path.mkdir(parents=True)
        save_checkpoint(model, tokenizer, path)
        return {"checkpoint": str(path.relative_to(out))}
    return {}


def _overlap_summary(overlaps: dict[str, dict]) -> dict:
    """Overall and per-projection Jaccard per pair (by-layer detail stays in overlap.json)."""
    return {
        s: {
            pair: {
                "overall": r["overall"],
                "random_expectation": r["random_expectation"],
                "by_projection": r["by_projection"],
                "by_block": r["by_block"],
            }
            for pair, r in pairs.items()
        }
        for s, pairs in overlaps.items()
    }


def render_report(report: dict) -> str:
    """report.md: the generated summary, the matrices and the overlap table."""
    sub = report["submodels"]
    cfg = sub["config"]
    lines = ["# prunekit sub-models", ""]
    lines.append(f"- model: `{report.get('model', {}).get('id', '?')}`")
    lines.append(
        f"- method: {cfg['method']} · pattern {cfg['pattern']} · sparsities "
        f"{', '.join(f'{s:g}' for s in cfg['sparsities'])} · statistics on the {cfg['stream']} stream"
    )
    lines.append(
        f"- calibration: {cfg['calib_samples']} × {cfg['seq_len']} tokens per language, seed {cfg['seed']}; "
        f"evaluation: up to {cfg['eval_tokens']} held-out tokens per language in windows of {cfg['eval_seq_len']}"
    )
    lines += ["", "## Summary (generated from the numbers)", "", *sub["summary"], ""]
    for m in sub["matrices"]:
        tag = sparsity_tag(m["sparsity"])
        lines += [
            f"## Sparsity {m['sparsity']:g}",
            "",
            cross_eval.render_markdown(m),
            f"![matrix](matrix_{tag}.png)",
            "",
        ]
        for g in sub.get("generation", []):
            if g["sparsity"] == m["sparsity"]:
                lines += [
                    "### Judged by generation",
                    "",
                    by_generation.render_markdown(g),
                    f"![generation](generation_{tag}.png)",
                    "",
                ]
        pairs = sub["overlap_summary"].get(f"{m['sparsity']:g}", {})
        if pairs:
            projs = list(next(iter(pairs.values()))["by_projection"])
            lines += [
                "Mask overlap (Jaccard of pruned sets; random = s/(2−s)):",
                "",
                "| pair | overall | random | " + " | ".join(p.split(".")[-1] for p in projs) + " |",
                "|---|---|---|" + "---|" * len(projs),
            ]
            for pair, r in pairs.items():
                lines.append(
                    f"| {pair.replace('|', ' vs ')} | {r['overall']:.3f} | {r['random_expectation']:.3f} | "
                    + " | ".join(f"{r['by_projection'][p]:.3f}" for p in projs)
                    + " |"
                )
            lines.append("")
    lines += [
        "## Data",
        "",
        "| language | role | description | licence | tokens |",
        "|---|---|---|---|---|",
    ]
    for lang, roles in sub["data"].items():
        for role, d in roles.items():
            lines.append(
                f"| {lang} | {role} | {d['description']} | {d['licence']} | {d['tokens']} |"
            )
    lines += ["", "| stage | wall time (s) |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in report.get("timings_s", {}).items()]
    return "\n".join(lines) + "\n"
