"""The Python API: the same power as the CLI, on models you already hold in memory.

import prunekit
lm = prunekit.load_model("qwen2.5-coder-0.5b")
result = prunekit.prune(lm.model, lm.tokenizer, method="wanda", sparsity=0.5, calib="python")
print(prunekit.perplexity(lm.model, lm.tokenizer, "python"))
prunekit.save(result, "runs/wanda50")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from prunekit.calibration.context import RunContext
from prunekit.calibration.sets import CalibrationSet, build_calibration
from prunekit.config.api import takes
from prunekit.config.prune import PruneConfig
from prunekit.data.sources import resolve_source
from prunekit.data.windows import evaluation_windows
from prunekit.errors import PrunekitError
from prunekit.export.checkpoint import save_checkpoint
from prunekit.methods.oneshot import LayerRecord, prune_model
from prunekit.methods.patterns import Pattern
from prunekit.models.adapters import adapter_for
from prunekit.reports.report import param_counts, write_report
from prunekit.reports.sections import MethodSection
from prunekit.utils import Timer, write_output


@dataclass
class PruneResult:
    """The pruned model (edited in place), what happened per layer, and the report so far."""

    model: nn.Module
    tokenizer: object
    records: dict[str, LayerRecord]
    report: dict = field(default_factory=dict)


def check_seq_len(model: nn.Module, seq_len: int) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and seq_len > limit:
        raise PrunekitError(
            f"--seq-len {seq_len} is beyond the model's context of {limit} tokens; lower it"
        )


def calibration_data(
    tokenizer, calib: str | torch.Tensor, samples: int, seq_len: int, seed: int
) -> tuple[torch.Tensor, dict]:
    """Calibration windows (N × T token ids) and their description for the report; for a spec
    without `answered:` parts (those need the model: use `calibration_set`)."""
    cal = build_calibration(
        calib, None, tokenizer, samples=samples, seq_len=seq_len, seed=seed, batch_size=samples
    )
    return cal.windows(), cal.describe()


def calibration_set(
    model: nn.Module,
    tokenizer,
    calib: str | torch.Tensor,
    size: dict,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> CalibrationSet:
    """Any calibration spec (see `prunekit.calibration.sets`) as batches for `model`, after the
    checks that there is data to calibrate on and that the model's context holds `seq_len`.
    `size`: samples, seq_len, seed, batch_size."""
    if tokenizer is None and not isinstance(calib, torch.Tensor):
        raise PrunekitError("calibration needs data: pass the tokenizer or token ids")
    check_seq_len(model, size["seq_len"])
    return build_calibration(calib, model, tokenizer, **size, device=device, progress=progress)


def sparsity_summary(records: dict[str, LayerRecord], target: float) -> dict:
    zeros = sum(r.zeros for r in records.values())
    numel = sum(r.numel for r in records.values())
    return {
        "target": target,
        "achieved": zeros / numel if numel else 0.0,
        "pruned_layers_numel": numel,
        "per_layer": {k: round(r.sparsity, 6) for k, r in records.items()},
    }


@takes(PruneConfig)
def prune(
    model: nn.Module,
    tokenizer=None,
    config: PruneConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **options,
) -> PruneResult:
    """Prune every decoder Linear of `model` in place with one method at one sparsity.

    Give a `PruneConfig` or its fields as keywords (the `prune` command's flags and the recipe's
    `unstructured` step are the same class). `calib`: token ids or any spec of
    `prunekit.calibration.sets` — a corpus, `instruct:CORPUS`, `answered:CORPUS` (answered by
    `model` itself), a path, or a comma mixture with even shares of `calib_samples`; the report's
    `calibration.parts` counts what each part gave. `allocation` (uniform / owl / neuroal) decides
    how many weights each layer and row loses, `allocation_options` are its parameters
    (`prunekit.allocation.options`), `method_options` the method's (e.g. sparsegpt's blocksize).
    `forward_dtype` ("bfloat16", "float16" or "auto"): calibration forwards autocast to it while
    weights and statistics stay in their own dtype; None: the weights' dtype. `stream="dense"`:
    statistics on the dense model's stream, one forward per block (not the published sequential
    variant; see `prune_model`).
    """
    from prunekit.allocation.build import build_allocation

    cfg = PruneConfig.of(config, options)
    pat, target, pruner = cfg.parsed_pattern, cfg.target, cfg.pruner()
    adapter = adapter_for(model)
    check_pattern_fits(model, adapter, pat)
    timer = Timer()
    section = MethodSection(cfg.method, str(pat), cfg.allocation, target)
    report: dict = {"method": section.to_dict(), "seed": cfg.seed}
    if cfg.method_options != type(pruner)().dump():  # recorded where not the defaults
        report["method"]["options"] = cfg.method_options
    batches = None
    if pruner.needs or cfg.allocation != "uniform":
        with timer("calibration_data"):
            cal = calibration_set(model, tokenizer, cfg.calib, cfg.size(), device, progress)
        batches, report["calibration"] = cal.batches, cal.describe()
    weights_dtype = next(model.parameters()).dtype
    fdtype = _forward_dtype(cfg.forward_dtype, device)
    if fdtype in (torch.float32, weights_dtype):
        fdtype = None  # autocast only lowers precision: the forwards run in the model's dtype
    report["calibration_forwards"] = {
        "dtype": str(fdtype or weights_dtype).replace("torch.", ""),
        "stream": cfg.stream,
    }
    torch.manual_seed(cfg.seed)
    with timer("allocation"):
        run = RunContext(model, adapter, batches, device, progress, fdtype)
        plan, report["allocation"] = build_allocation(
            cfg.allocation, cfg.allocation_options, run, pruner, pat, target
        )
    with timer("prune"):
        records = prune_model(
            model, adapter, pruner, plan.target, pat, batches, device, progress, cfg.stream, fdtype
        )
    report["sparsity"] = sparsity_summary(records, target)
    report["params"] = param_counts(model)
    report["timings_s"] = timer.stages
    return PruneResult(model, tokenizer, records, report)


def check_pattern_fits(model: nn.Module, adapter, pattern: Pattern) -> None:
    """An N:M pattern needs every pruned layer's input width to be a multiple of M."""
    if not pattern.is_nm:
        return
    from prunekit.allocation.plan import layer_shapes

    for key, shape in layer_shapes(model, adapter).items():
        if shape.d_in % pattern.m:
            raise PrunekitError(
                f"pattern {pattern} groups every {pattern.m} inputs, but {key} has {shape.d_in} "
                f"inputs (not a multiple of {pattern.m}); choose an M that divides the layer widths"
            )


def structured(
    model: nn.Module,
    tokenizer=None,
    *,
    calib: str | torch.Tensor = "python",
    calib_samples: int = 64,
    seq_len: int = 512,
    seed: int = 0,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **options,
) -> PruneResult:
    """Remove attention head groups and MLP channels in place with per-block ratios (SAAP).

    `calib` takes every form `prune` does (answered sequences give gradients unweighted).
    `options` are `prunekit.structural.saap.SaapConfig` fields, e.g. `heads=0.25, ffn=0.25,
    importance="fused", ratios="adaptive"` or `target=0.2` (of the non-embedding parameters).
    """
    from dataclasses import fields

    from prunekit.structural.saap import SaapConfig, check_budget, prune_structured

    valid = [f.name for f in fields(SaapConfig)]
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise PrunekitError(
            f"structured: unknown option '{unknown[0]}'; valid options: {', '.join(valid)}"
        )
    cfg = SaapConfig(**options).validated()
    adapter = adapter_for(model)
    check_budget(model, adapter, cfg)
    timer = Timer()
    report: dict = {"seed": seed}
    size = {"samples": calib_samples, "seq_len": seq_len, "seed": seed, "batch_size": batch_size}
    with timer("calibration_data"):
        cal = calibration_set(model, tokenizer, calib, size, device, progress)
    report["calibration"] = cal.describe()
    batches = cal.batches
    torch.manual_seed(seed)
    with timer("prune"):
        report["structured"] = prune_structured(model, adapter, batches, cfg, device, progress)
    report["params"] = param_counts(model)
    report["timings_s"] = timer.stages
    return PruneResult(model, tokenizer, {}, report)


def _structural_calibration(model, tokenizer, calib, size: dict, device, progress, timer):
    """The calibration set of a structural step, timed, and its report description."""
    with timer("calibration_data"):
        cal = calibration_set(model, tokenizer, calib, size, device, progress)
    return cal, cal.describe()


def _structural_result(model, tokenizer, seed: int, described: dict, step: dict, timer):
    """The PruneResult of a structural step: seed, calibration, the step's report, params, timings."""
    report = {"seed": seed, "calibration": described, **step}
    report["params"] = param_counts(model)
    report["timings_s"] = timer.stages
    return PruneResult(model, tokenizer, {}, report)


def depth(
    model: nn.Module,
    tokenizer=None,
    *,
    remove: int,
    criterion: str = "kl",
    selection: str = "greedy",
    repair: str = "none",
    ridge: float | None = None,
    prior: str | None = None,
    calib: str | torch.Tensor = "answered:python",
    calib_samples: int = 32,
    seq_len: int = 1024,
    seed: int = 0,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> PruneResult:
    """Remove `remove` decoder layers in place: greedy single removals or the best run of
    consecutive layers (`selection="run"`), optionally repaired by a least-squares linear map
    folded into the block before each removed run (`repair="linear"`, no training).

    `calib` takes every form `prune` does; with `answered:` parts, layers are scored (and the
    maps fitted) on the answer tokens of the model's own checked answers.
    """
    from prunekit.structural import depth_repair
    from prunekit.structural.depth_runs import prune_depth

    fit = {
        "ridge": depth_repair.RIDGE if ridge is None else ridge,
        "prior": depth_repair.PRIOR if prior is None else prior,
    }
    depth_repair.check_fit(**fit)
    adapter = adapter_for(model)
    timer = Timer()
    size = {"samples": calib_samples, "seq_len": seq_len, "seed": seed, "batch_size": batch_size}
    cal, described = _structural_calibration(model, tokenizer, calib, size, device, progress, timer)
    torch.manual_seed(seed)
    with timer("prune"):
        rep = prune_depth(
            model,
            adapter,
            cal.batches,
            remove,
            criterion,
            selection,
            repair,
            weights=cal.weights,
            device=device,
            progress=progress,
            **fit,
        )
    return _structural_result(model, tokenizer, seed, described, {"depth": rep}, timer)


def width(
    model: nn.Module,
    tokenizer=None,
    *,
    ffn_keep: float,
    criterion: str = "output",
    multiple: int = 64,
    refit: bool = False,
    refit_damp: float | None = None,
    calib: str | torch.Tensor = "python",
    calib_samples: int = 64,
    seq_len: int = 512,
    seed: int = 0,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> PruneResult:
    """Keep `ffn_keep` of every MLP's channels (the same width in every layer, a stock config);
    with `refit`, each down projection's kept columns are re-solved by least squares so the
    block output tracks the dense one on the calibration data (no training)."""
    from prunekit.structural.refit import DAMP
    from prunekit.structural.width import prune_width

    adapter = adapter_for(model)
    timer = Timer()
    size = {"samples": calib_samples, "seq_len": seq_len, "seed": seed, "batch_size": batch_size}
    cal, described = _structural_calibration(model, tokenizer, calib, size, device, progress, timer)
    with timer("prune"):
        rep = prune_width(
            model,
            adapter,
            cal.batches,
            ffn_keep,
            criterion,
            multiple,
            device,
            progress,
            refit=refit,
            refit_damp=DAMP if refit_damp is None else refit_damp,
        )
    return _structural_result(model, tokenizer, seed, described, {"width": rep}, timer)


def _forward_dtype(name: str | None, device) -> torch.dtype | None:
    """A forward dtype name ('auto': bfloat16 where the device computes in it) as a torch dtype."""
    if name is None:
        return None
    from prunekit.models.loading import parse_dtype

    return parse_dtype(name, device)


def perplexity(
    model: nn.Module,
    tokenizer,
    data: str = "python",
    seq_len: int = 512,
    max_tokens: int = 32768,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Held-out perplexity of `model` on a built-in corpus's eval split or a user path."""
    check_seq_len(model, seq_len)
    source = resolve_source(data, "eval")
    windows = evaluation_windows(source, tokenizer, seq_len, max_tokens)
    from prunekit.evaluation.perplexity import perplexity as _ppl

    result = _ppl(
        model, adapter_for(model), windows, batch_size, device, progress, desc=f"ppl {data}"
    )
    result["data"] = source.description
    return result


def save(result: PruneResult, out_dir: str | Path, force: bool = False) -> Path:
    """Write the checkpoint and report atomically (nothing appears unless all of it was written)."""

    def _write(tmp: Path) -> None:
        save_checkpoint(result.model, result.tokenizer, tmp)
        write_report(tmp, result.report)
        if result.report.get("allocation", {}).get("name", "uniform") != "uniform":
            from prunekit.reports.allocation_plots import write_allocation_plots

            write_allocation_plots(result.report["allocation"], tmp)
        if "structured" in result.report:
            from prunekit.reports.structured_plots import write_ratio_plot

            write_ratio_plot(result.report["structured"], tmp / "structured_ratios.png")

    write_output(Path(out_dir), _write, force=force)
    return Path(out_dir)
