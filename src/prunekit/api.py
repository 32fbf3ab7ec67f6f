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
from prunekit.config.depth import DepthConfig
from prunekit.config.prune import PruneConfig
from prunekit.config.structured import StructuredConfig
from prunekit.config.width import WidthConfig
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
    batches, weights = None, None
    if pruner.needs or cfg.allocation != "uniform":
        with timer("calibration_data"):
            cal = calibration_set(model, tokenizer, cfg.calib, cfg.size(), device, progress)
        batches, weights, report["calibration"] = cal.batches, cal.weights, cal.describe()
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
            cfg.allocation, cfg.allocation_options, run, pruner, pat, target, weights
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


def _structural(model: nn.Module, tokenizer, cfg, device, progress, needs_data: bool = True):
    """The timer, run context and report start of a structural step: its calibration set
    (timed; none where the step needs no data) and the seed set for what follows."""
    timer = Timer()
    cal, report = None, {"seed": cfg.seed}
    if needs_data:
        with timer("calibration_data"):
            cal = calibration_set(model, tokenizer, cfg.calib, cfg.size(), device, progress)
        report["calibration"] = cal.describe()
    torch.manual_seed(cfg.seed)
    return timer, RunContext.calibrated(model, tokenizer, cal, device, progress), report


def _structural_result(model, tokenizer, report: dict, timer) -> PruneResult:
    """The PruneResult of a structural step: its report with params and timings."""
    report["params"] = param_counts(model)
    report["timings_s"] = timer.stages
    return PruneResult(model, tokenizer, {}, report)


@takes(StructuredConfig)
def structured(
    model: nn.Module,
    tokenizer=None,
    config: StructuredConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **options,
) -> PruneResult:
    """Remove attention head groups and MLP channels in place with per-block ratios (SAAP).

    Give a `StructuredConfig` or its fields as keywords (the `structured` command's flags and
    the recipe's `structured` step are the same class), e.g. `heads=0.25, ffn=0.25,
    importance="fused", ratios="adaptive"` or `target=0.2` (of the non-embedding parameters).
    `calib` takes every form `prune` does (answered sequences give gradients unweighted).
    """
    from prunekit.structural.saap import check_budget, prune_structured

    cfg = StructuredConfig.of(config, options)
    check_budget(model, adapter_for(model), cfg)
    timer, ctx, report = _structural(model, tokenizer, cfg, device, progress)
    with timer("prune"):
        report["structured"] = prune_structured(ctx, cfg)
    return _structural_result(model, tokenizer, report, timer)


@takes(DepthConfig)
def depth(
    model: nn.Module,
    tokenizer=None,
    config: DepthConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **options,
) -> PruneResult:
    """Remove `remove` decoder layers in place: greedy single removals or the best run of
    consecutive layers (`selection="run"`), or the given `layers`; optionally repaired by a
    least-squares linear map folded into the block before each removed run (`repair="linear"`,
    no training).

    Give a `DepthConfig` or its fields as keywords (the recipe's `depth` step is the same class).
    `calib` takes every form `prune` does; with `answered:` parts, layers are scored (and the
    maps fitted) on the answer tokens of the model's own checked answers.
    """
    from prunekit.structural.depth_runs import prune_depth, remove_given

    cfg = DepthConfig.of(config, options)
    given = cfg.layers is not None
    needs_data = not given or cfg.repair == "linear"
    timer, ctx, report = _structural(model, tokenizer, cfg, device, progress, needs_data)
    with timer("prune"):
        report["depth"] = remove_given(ctx, cfg) if given else prune_depth(ctx, cfg)
    return _structural_result(model, tokenizer, report, timer)


@takes(WidthConfig)
def width(
    model: nn.Module,
    tokenizer=None,
    config: WidthConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **options,
) -> PruneResult:
    """Keep `ffn_keep` of every MLP's channels (the same width in every layer, a stock config);
    with `refit`, each down projection's kept columns are re-solved by least squares so the
    block output tracks the dense one on the calibration data (no training).

    Give a `WidthConfig` or its fields as keywords (the recipe's `width` step is the same class).
    """
    from prunekit.structural.width import prune_width

    cfg = WidthConfig.of(config, options)
    timer, ctx, report = _structural(model, tokenizer, cfg, device, progress)
    with timer("prune"):
        report["width"] = prune_width(ctx, cfg)
    return _structural_result(model, tokenizer, report, timer)


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
    """Held-out perplexity of `model` on a built-in corpus's eval split or a user path; `model`
    may be a GGUF run by llama.cpp (`llamacpp_eval.LlamaCppBackend`): the same windows, scored
    on its logits, with the backend named in the result."""
    in_llamacpp = getattr(model, "generates_itself", False)
    if in_llamacpp:
        model.check_window(seq_len)
    else:
        check_seq_len(model, seq_len)
    source = resolve_source(data, "eval")
    windows = evaluation_windows(source, tokenizer, seq_len, max_tokens)
    from prunekit.evaluation.perplexity import perplexity as _ppl

    if in_llamacpp:
        result = model.perplexity(windows, progress, desc=f"ppl {data}")
    else:
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
