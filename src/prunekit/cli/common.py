"""Argument helpers shared by sub-commands."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from prunekit.errors import PrunekitError


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", help="built-in name (see `prunekit models`), HF folder, .gguf file or hub id"
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="weights and forwards; auto = bfloat16 where the CPU/GPU has it, else float32",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow model code from the hub (off by default)",
    )


def add_config_args(
    parser: argparse.ArgumentParser,
    title: str,
    config: type,
    helps: dict[str, str],
    choices: dict[str, list[str]] | None = None,
    keep_defaults: bool = False,
) -> None:
    """One flag per field of the dataclass `config` (the config is the schema, the CLI follows it):
    `--field-name` without a trailing `_s`, bools as --x/--no-x; unset flags stay out of the
    namespace (the config's own defaults apply) unless `keep_defaults` puts the field's default in."""
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(config):
        flag = "--" + f.name.removesuffix("_s").replace("_", "-")
        default = f.default if keep_defaults else argparse.SUPPRESS
        if str(f.type) == "bool":
            kind = {"action": argparse.BooleanOptionalAction}
        else:
            kind = {
                "type": float if "float" in str(f.type) else int if "int" in str(f.type) else str,
                "choices": (choices or {}).get(f.name),
            }
        group.add_argument(flag, default=default, dest=f.name, help=helps.get(f.name), **kind)


def calib_kwargs(args: argparse.Namespace, device) -> dict:
    """The calibration arguments every calibrated command passes to its API call."""
    keys = ("calib", "calib_samples", "seq_len", "seed", "batch_size")
    return {k: getattr(args, k) for k in keys} | {"device": device}


def add_ppl_args(parser: argparse.ArgumentParser, flag: str = "--ppl") -> None:
    parser.add_argument(
        flag,
        default=None,
        help="comma-separated corpora or paths for held-out perplexity, e.g. python",
    )
    parser.add_argument("--ppl-seq-len", type=int, default=512, help="window length for perplexity")
    parser.add_argument(
        "--ppl-tokens", type=int, default=32768, help="max held-out tokens per corpus"
    )
    parser.add_argument("--ppl-batch-size", type=int, default=4)


def perplexities(lm, names: list[str], args: argparse.Namespace, device) -> dict:
    """Held-out perplexity on each named corpus/path, with the model on `device` meanwhile."""
    from prunekit import api

    home = next(lm.model.parameters()).device
    lm.model.to(device)
    try:
        return {
            name: api.perplexity(
                lm.model,
                lm.tokenizer,
                name,
                args.ppl_seq_len,
                args.ppl_tokens,
                args.ppl_batch_size,
                device,
            )
            for name in names
        }
    finally:
        lm.model.to(home)


def split_list(text: str | None) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else []


def print_table(headers: list[str], rows: list[list]) -> None:
    """A plain aligned text table (stdout is for results, progress goes to stderr)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def check_at_least(args: argparse.Namespace, **minimums: int) -> None:
    """Numeric options in range before any model loads: one line naming the flag and the bound."""
    for name, low in minimums.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise PrunekitError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")


PPL_MINIMUMS = {"ppl_seq_len": 2, "ppl_tokens": 1, "ppl_batch_size": 1}


def read_report(path: Path) -> dict:
    """An existing report.json as a dict, or one clear line on why it cannot be used."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PrunekitError(
            f"'{path}' is not a readable JSON report ({exc}); fix or remove it, or pass "
            "--report with another path"
        ) from None
    if not isinstance(report, dict):
        raise PrunekitError(f"'{path}' is not a prunekit report (expected a JSON object)")
    return report


def prune_and_save(lm, ppl_sets: list[str], args, device, timer, report: dict, step) -> dict:
    """The shared tail of the pruning commands: held-out perplexity before and after `step()`
    (which prunes `lm` in place and returns an api result), then the report and an atomic save."""
    from prunekit import api
    from prunekit.utils import peak_rss_mb

    if ppl_sets:
        with timer("eval_before"):
            report["evaluation_before"] = {"perplexity": perplexities(lm, ppl_sets, args, device)}
    result = step()
    timer.stages.update(result.report.pop("timings_s"))
    report.update(result.report)
    if ppl_sets:
        with timer("eval_after"):
            report["evaluation"] = {"perplexity": perplexities(lm, ppl_sets, args, device)}
    report["timings_s"] = timer.stages
    report["peak_rss_mb"] = peak_rss_mb()
    result.report = report
    with timer("save"):
        api.save(result, args.output, force=args.force)
    return report
