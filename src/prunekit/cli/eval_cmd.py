"""`prunekit eval MODEL ...`: perplexity per corpus (and, with eval_code, code benchmarks such as
HumanEval and HumanEval-X, and speed)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from prunekit.cli.common import (
    PPL_MINIMUMS,
    add_model_args,
    add_ppl_args,
    check_at_least,
    held_out_sets,
    perplexities,
    print_table,
    read_report,
)
from prunekit.errors import PrunekitError


def _code_eval():
    import importlib.util

    if importlib.util.find_spec("prunekit.cli.eval_code") is None:
        return None
    return importlib.import_module("prunekit.cli.eval_code")


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model or a prune run folder")
    add_model_args(p)
    add_ppl_args(p, "--ppl")
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="write results here (default: into MODEL/report.json when MODEL is a run folder)",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "llama.cpp", "transformers"],
        help="engine for a .gguf MODEL: llama.cpp runs the file itself (perplexity, generation "
        "and speed as llama.cpp users get them); transformers dequantizes it into torch; "
        "auto = llama.cpp when installed (default)",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="llama.cpp threads (default: all cores)"
    )
    p.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="llama.cpp: sequences generated together in one batch, each with its own context "
        "(llama-server's --parallel slots); default 1, one request at a time",
    )
    code = _code_eval()
    if code is not None:
        code.register_args(p)
    p.set_defaults(func=run)


def _run_folder(model: str) -> Path | None:
    path = Path(model)
    return path if (path / "report.json").is_file() else None


def _check_target(target: Path | None) -> dict | None:
    """Before the model loads: the report to update parses, and its folder is writable."""
    if target is None:
        return None
    from prunekit.utils import check_output_file

    check_output_file(target, "--report")
    if not target.parent.is_dir():
        raise PrunekitError(
            f"the folder of --report '{target}' does not exist; create it first "
            f"(mkdir -p {target.parent}) or choose another path"
        )
    return read_report(target) if target.is_file() else None


def _write_report(target: Path, report: dict) -> Path:
    """report.json (and report.md beside it) replaced whole; if the location fails now (disk
    full, read-only), the results go to the temp directory instead and one line says where."""
    import tempfile

    from prunekit.reports.report import render_markdown

    text = json.dumps(report, indent=2, default=str)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        try:
            tmp.write_text(text)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        if target.name == "report.json":
            (target.parent / "report.md").write_text(render_markdown(report))
        return target
    except OSError as exc:
        fd, rescue = tempfile.mkstemp(prefix=f"prunekit-{target.stem}-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        raise PrunekitError(
            f"could not write '{target}' ({exc.strerror}); the evaluation was saved to "
            f"'{rescue}' instead (move it where it belongs)"
        ) from None


def run(args: argparse.Namespace) -> int:
    from prunekit.evaluation.llamacpp_eval import N_CTX, load_llamacpp, resolve_backend
    from prunekit.models.loading import load_model, resolve_device
    from prunekit.reports.report import new_report

    device = resolve_device(args.device)
    ppl_sets = held_out_sets(args.ppl)
    code = _code_eval()
    if code is not None:
        code.check_args(args)  # the sandbox can score, the results file is writable, ...
    check_at_least(args, **PPL_MINIMUMS)
    folder = _run_folder(args.model)
    target = args.report or (folder / "report.json" if folder else None)
    existing = _check_target(target)
    backend = resolve_backend(str(args.model), args.backend)
    if args.parallel < 1 or (args.parallel > 1 and backend != "llama.cpp"):
        raise PrunekitError(
            f"--parallel {args.parallel}: give 1 or more, and more than 1 only for a .gguf run "
            "by llama.cpp (transformers batches generation with --gen-batch-size)"
        )
    if backend == "llama.cpp":  # a context that holds a whole perplexity window
        lm = load_llamacpp(args.model, args.threads, max(N_CTX, args.ppl_seq_len), args.parallel)
    else:
        lm = load_model(args.model, args.dtype, args.trust_remote_code, device)
    lm.model.to(device)
    results: dict = {}
    if ppl_sets:
        results["perplexity"] = perplexities(lm, ppl_sets, args, device)
        for entry in results["perplexity"].values():
            entry.setdefault("backend", backend)  # llama.cpp's entries also name its runtime
    if code is not None:
        results.update(
            code.run(args, lm, device, folder or (args.report.parent if args.report else None))
        )
    if not results:
        raise PrunekitError("nothing to evaluate; ask for e.g. --ppl python")
    dtype = getattr(lm.model, "dtype_label", None) or str(
        next(lm.model.parameters()).dtype
    ).removeprefix("torch.")
    code_keys = code.benchmark_keys(args) if code is not None else []
    for entry in [*results.get("perplexity", {}).values(), *(results.get(k) for k in code_keys)]:
        if isinstance(entry, dict):
            entry["dtype"] = dtype  # both depend on the dtype the forwards ran in

    if target is not None:
        report = existing if existing is not None else {**new_report(), "model": lm.info}
        evaluation = report.setdefault("evaluation", {})
        for key, value in results.items():
            if isinstance(value, dict) and isinstance(evaluation.get(key), dict):
                evaluation[key].update(value)
            else:
                evaluation[key] = value
        _write_report(target, report)
    rows = [
        [d, f"{r['ppl']:.4f}", r["tokens"], r["seq_len"], r["backend"]]
        for d, r in results.get("perplexity", {}).items()
    ]
    if rows:
        print_table(["data", "perplexity", "tokens", "window", "backend"], rows)
    return 0
