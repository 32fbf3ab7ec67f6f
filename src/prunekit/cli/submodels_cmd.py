"""`prunekit submodels MODEL --languages python,java,...`: one sub-model per calibration language,
evaluated on every language, with mask overlaps; `prunekit submodels materialize RUN ...` turns
saved masks into a checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prunekit.cli.common import add_model_args, add_output_args, load_reported, split_list
from prunekit.methods.pruners import PRUNERS

EPILOG = """examples:
  prunekit submodels qwen2.5-coder-0.5b --languages python,java,cpp,javascript,text --sparsity 0.5,0.6 -o runs/langs
  prunekit submodels smollm2-135m --languages python,mine=./my_code --save checkpoints -o runs/mine
  prunekit submodels materialize runs/langs --language java --sparsity 0.5 -o runs/java50
  prunekit submodels qwen2.5-coder-0.5b --languages python,java,cpp,javascript --benchmark humaneval-x:cpp,java,js,python -o runs/langs-gen
"""


def register(sub) -> None:
    p = sub.add_parser(
        "submodels",
        help="language-specific sub-models: cross-evaluation matrix and mask overlap",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(p)
    p.add_argument(
        "run_dir", nargs="?", type=Path, help="(materialize only) the folder a sweep wrote"
    )
    p.add_argument(
        "--languages",
        default="python,java,cpp,javascript,text",
        help="calibration languages: built-in corpora, NAME=PATH (file/folder/.jsonl) or hf:DATASET",
    )
    p.add_argument(
        "--eval-languages", default=None, help="evaluation languages (default: --languages)"
    )
    p.add_argument("--method", default="wanda", choices=list(PRUNERS))
    p.add_argument(
        "--sparsity", default="0.5", help="one or more, comma-separated: 0.5 or 0.5,0.6,0.7"
    )
    p.add_argument("--pattern", default="unstructured", help="unstructured, 2:4 or 4:8")
    p.add_argument("--calib-samples", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8, help="calibration windows per forward pass")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ppl-seq-len", type=int, default=512, help="window length for perplexity")
    p.add_argument("--ppl-tokens", type=int, default=32768, help="max held-out tokens per language")
    p.add_argument("--ppl-batch-size", type=int, default=4)
    p.add_argument(
        "--stats-stream",
        default="dense",
        choices=["dense", "pruned"],
        help="dense: statistics once per language on the dense stream, reused by every "
        "sparsity (default); pruned: standard sequential prune per (language, sparsity)",
    )
    p.add_argument(
        "--save",
        default="masks",
        choices=["masks", "checkpoints", "none"],
        help="masks: 1 bit per weight + `materialize` (default); checkpoints: a full "
        "checkpoint per sub-model (fp32 0.5B ≈ 2 GB each); none: only the reports",
    )
    p.add_argument("--language", default=None, help="(materialize) which sub-model")
    _add_generation_args(p)
    add_output_args(p)
    p.set_defaults(func=run)


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "judged by generation (pass@1 matrix with paired tests of the diagonal; greedy)"
    )
    g.add_argument(
        "--benchmark",
        default=None,
        help="also judge the dense model and every sub-model on these code benchmarks: "
        "humaneval-x (all five languages), humaneval-x:cpp,java,js,python, humaneval, ...",
    )
    g.add_argument("--mode", default="auto", choices=["auto", "chat", "completion"])
    g.add_argument("--limit", type=int, default=None, help="only the first K problems")
    g.add_argument("--max-new-tokens", type=int, default=512)
    g.add_argument("--gen-batch-size", type=int, default=16, help="sequences decoded together")
    g.add_argument(
        "--gen-dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="generate in this dtype (a copy of each sub-model); auto = bfloat16 where the "
        "CPU/GPU has it, else float32",
    )
    g.add_argument("--exec-timeout", type=float, default=10.0, help="seconds per candidate run")
    g.add_argument("--exec-memory-mb", type=int, default=1024)
    g.add_argument("--exec-workers", type=int, default=None)
    g.add_argument("--no-progress", action="store_true", help="hide generation progress bars")


def _judge(args: argparse.Namespace, device):
    """The generation judge the flags ask for (None without --benchmark), checked before loading."""
    if args.benchmark is None:
        return None
    from prunekit.cli.eval_code import run_settings
    from prunekit.errors import PrunekitError
    from prunekit.submodels.by_generation import Judge, parse_benchmarks

    if args.exec_timeout <= 0 or args.exec_memory_mb < 64:
        raise PrunekitError("--exec-timeout must be > 0 and --exec-memory-mb at least 64")
    settings = run_settings(args, device)
    judge = Judge(parse_benchmarks(args.benchmark), settings, dtype=args.gen_dtype)
    judge.preflight()
    return judge


def _floats(text: str) -> list[float]:
    from prunekit.errors import PrunekitError

    try:
        return [float(x) for x in split_list(text)]
    except ValueError as exc:
        raise PrunekitError(
            f"--sparsity '{text}' is not a comma-separated list of numbers, e.g. 0.5,0.6"
        ) from exc


def run(args: argparse.Namespace) -> int:
    if args.model == "materialize":
        return materialize(args)
    from prunekit.errors import PrunekitError

    if args.run_dir is not None:
        raise PrunekitError(
            f"unexpected argument '{args.run_dir}'; only `submodels materialize RUN` takes a run folder"
        )
    from prunekit.models.loading import resolve_device
    from prunekit.submodels.languages import parse_languages
    from prunekit.submodels.sweep import SweepConfig, render_report, run_sweep
    from prunekit.utils import atomic_output_dir, check_output_dir, peak_rss_mb

    langs = parse_languages(args.languages)
    cfg = SweepConfig(
        languages=langs,
        eval_languages=parse_languages(args.eval_languages) if args.eval_languages else langs,
        method=args.method,
        sparsities=_floats(args.sparsity),
        pattern=args.pattern,
        calib_samples=args.calib_samples,
        seq_len=args.seq_len,
        seed=args.seed,
        batch_size=args.batch_size,
        eval_tokens=args.ppl_tokens,
        eval_seq_len=args.ppl_seq_len,
        eval_batch_size=args.ppl_batch_size,
        stream=args.stats_stream,
        save=args.save,
    )
    cfg.validate()
    check_output_dir(args.output, args.force, inputs=[args.model])
    device = resolve_device(args.device)
    judge = _judge(args, device)

    lm, timer, report = load_reported(args)
    report["dtype"] = args.dtype
    from prunekit.api import check_seq_len

    check_seq_len(lm.model, max(args.seq_len, args.ppl_seq_len))
    with atomic_output_dir(args.output, force=args.force) as tmp:
        result = run_sweep(lm.model, lm.tokenizer, cfg, tmp, device, judge=judge)
        report.update(result)
        report["timings_s"] = {**timer.stages, **result["timings_s"]}
        report["peak_rss_mb"] = peak_rss_mb()
        (tmp / "report.json").write_text(json.dumps(report, indent=2, default=str))
        (tmp / "report.md").write_text(render_report(report))
    _print_summary(report, args.output)
    return 0


def _print_summary(report: dict, out: Path) -> None:
    from prunekit.cli.common import print_table

    sub = report["submodels"]
    for m in sub["matrices"]:
        print(
            f"\nsparsity {m['sparsity']:g}: held-out ppl (rows = calibration, columns = evaluation)"
        )
        rows = [["dense", *(f"{m['dense'][c]:.3f}" for c in m["evaluation"])]]
        rows += [[r, *(f"{m['ppl'][r][c]:.3f}" for c in m["evaluation"])] for r in m["calibration"]]
        print_table(["calib \\ eval", *m["evaluation"]], rows)
    for g in sub.get("generation", []):
        print(f"\nsparsity {g['sparsity']:g}: pass@1 (rows = calibration, columns = benchmark)")
        rows = [[r, *(_pct(g["cells"][r][b]) for b in g["benchmarks"])] for r in g["rows"]]
        print_table(["calib \\ judged", *g["benchmarks"]], rows)
    print()
    for line in sub["summary"]:
        print(line)
    extra = ", generation_*.png, generation/" if sub.get("generation") else ""
    print(f"\noutput: {out} (report.md, matrix_*.png, overlap/*.png{extra})")


def _pct(cell: dict | None) -> str:
    return "—" if cell is None else f"{100 * cell['pass@1']:.1f}%"


def _get(d, *keys):
    """d[k1][k2]... or None where a level is missing or not a dict."""
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _read_sweep(path: Path) -> tuple[dict, dict]:
    """A sweep's report.json and its submodels config, or one line saying what is wrong."""
    from prunekit.errors import PrunekitError

    try:
        sweep = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PrunekitError(
            f"'{path}' is not readable JSON ({type(exc).__name__}); pass the folder "
            "`prunekit submodels MODEL ... -o RUN` wrote"
        ) from None
    if not isinstance(sweep, dict):
        sweep = {}
    cfg = (
        sweep.get("submodels", {}).get("config")
        if isinstance(sweep.get("submodels"), dict)
        else None
    )
    model = sweep.get("model")
    problems = []
    if not isinstance(cfg, dict):
        problems.append("no submodels.config")
    else:
        langs = cfg.get("languages")
        if not isinstance(langs, (list, dict)) or not all(isinstance(x, str) for x in langs):
            problems.append("submodels.config.languages does not name the languages")
        for key in ("method", "pattern", "calib_samples", "seq_len", "seed"):
            if key not in cfg:
                problems.append(f"no submodels.config.{key}")
    if not isinstance(model, dict) or not isinstance(model.get("id"), str):
        problems.append("no model.id")
    data = sweep.get("submodels", {}).get("data") if isinstance(cfg, dict) else None
    if isinstance(cfg, dict) and not isinstance(data, dict):
        problems.append("no submodels.data")
    if problems:
        raise PrunekitError(
            f"'{path}' is not a submodels sweep report ({'; '.join(problems[:3])}); "
            "pass the folder `prunekit submodels MODEL ... -o RUN` wrote"
        )
    return sweep, cfg


def materialize(args: argparse.Namespace) -> int:
    """Apply a saved sub-model's masks to the run's base model and save a standard checkpoint."""
    from prunekit.errors import PrunekitError
    from prunekit.export.checkpoint import save_checkpoint
    from prunekit.models.adapters import adapter_for
    from prunekit.models.loading import load_model
    from prunekit.reports.report import new_report, param_counts, write_report
    from prunekit.reports.sections import MethodSection
    from prunekit.submodels.masks import apply_masks, load_masks
    from prunekit.submodels.sweep import sparsity_tag
    from prunekit.utils import atomic_output_dir, check_output_dir

    run_dir = args.run_dir
    if run_dir is None or not (run_dir / "report.json").is_file():
        raise PrunekitError(
            "usage: prunekit submodels materialize RUN_DIR --language L --sparsity S -o OUT, "
            "where RUN_DIR holds a sweep's report.json"
        )
    sweep, cfg = _read_sweep(run_dir / "report.json")
    sparsities = _floats(args.sparsity)
    if args.language is None or len(sparsities) != 1:
        raise PrunekitError("materialize needs one --language and one --sparsity of the sweep")
    if args.language not in cfg["languages"]:
        raise PrunekitError(
            f"the run has no language '{args.language}'; it has {', '.join(cfg['languages'])}"
        )
    path = run_dir / "masks" / f"{args.language}_{sparsity_tag(sparsities[0])}.safetensors"
    if not path.is_file():
        have = (
            sorted(p.stem for p in (run_dir / "masks").glob("*.safetensors"))
            if (run_dir / "masks").is_dir()
            else []
        )
        raise PrunekitError(
            f"no masks for {args.language} at sparsity {sparsities[0]:g} in {run_dir} "
            f"(saved: {', '.join(have) or 'none — the sweep ran without --save masks'})"
        )
    check_output_dir(args.output, args.force, inputs=[run_dir, sweep["model"]["id"]])
    try:
        masks, meta = load_masks(path)
    except PrunekitError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors/json raise many types for a bad file
        raise PrunekitError(
            f"'{path}' is not a readable mask file ({type(exc).__name__}); re-run the sweep"
        ) from None
    dtype = sweep.get("dtype", args.dtype)
    if dtype not in ("auto", "float32", "bfloat16", "float16"):
        dtype = args.dtype
    lm = load_model(sweep["model"]["id"], dtype, args.trust_remote_code)
    apply_masks(lm.model, adapter_for(lm.model), masks)
    report = new_report()
    report.update(
        {
            "model": lm.info,
            "materialized_from": {"run": str(run_dir.resolve()), "masks": str(path), **meta},
            "method": MethodSection(
                cfg["method"], cfg["pattern"], sparsity=sparsities[0]
            ).to_dict(),
            "calibration": {
                "description": _get(
                    sweep["submodels"]["data"], args.language, "calibration", "description"
                ),
                "samples": cfg["calib_samples"],
                "seq_len": cfg["seq_len"],
                "seed": cfg["seed"],
            },
            "params": param_counts(lm.model),
            "sparsity": {
                "target": sparsities[0],
                "achieved": sum(int(m.sum()) for m in masks.values())
                / sum(m.numel() for m in masks.values()),
            },
        }
    )
    with atomic_output_dir(args.output, force=args.force) as tmp:
        save_checkpoint(lm.model, lm.tokenizer, tmp)
        write_report(tmp, report)
    print(f"sub-model {args.language} at sparsity {sparsities[0]:g} written to {args.output}")
    return 0
