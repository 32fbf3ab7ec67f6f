"""Build, write and render run reports (report.json first, report.md from it)."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
from pathlib import Path

import torch
from torch import nn


def versions() -> dict[str, str]:
    import transformers

    from prunekit import __version__

    return {
        "prunekit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def machine() -> dict[str, str | int]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    info: dict[str, str | int] = {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "os": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def param_counts(model: nn.Module) -> dict[str, int]:
    """Total and non-zero parameters (tied tensors counted once)."""
    seen: set[int] = set()
    total = nonzero = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        nonzero += int(torch.count_nonzero(p))
    return {"total": total, "nonzero": nonzero}


def new_report(command: list[str] | None = None) -> dict:
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command if command is not None else sys.argv),
        "versions": versions(),
        "machine": machine(),
    }


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_markdown(report: dict) -> str:
    """A short human summary of report.json."""
    lines = ["# prunekit report", ""]
    model = report.get("model", {})
    method = report.get("method", {})
    lines.append(f"- model: `{model.get('id', '?')}` ({model.get('architecture', '?')})")
    if method:
        lines.append(
            f"- method: {method.get('name')} · pattern {method.get('pattern')} · "
            f"target sparsity {_fmt(report.get('sparsity', {}).get('target'))}"
        )
    if report.get("allocation"):
        from prunekit.reports.allocation_plots import allocation_markdown

        lines.append(allocation_markdown(report["allocation"]))
    sp = report.get("sparsity", {})
    if "achieved" in sp:
        lines.append(f"- achieved sparsity of pruned layers: {sp['achieved']:.4f}")
    params = report.get("params", {})
    if params.get("total"):
        nonzero = params.get("nonzero")
        lines.append(
            f"- parameters: {params['total']:,} total"
            + (f", {nonzero:,} non-zero" if nonzero is not None else "")
        )
    cal = report.get("calibration")
    if cal:
        lines.append(
            f"- calibration: {cal.get('description')} — {cal.get('samples')} × {cal.get('seq_len')} tokens, seed {cal.get('seed')}"
        )
    lines += ["", "| stage | wall time (s) |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in report.get("timings_s", {}).items()]
    if "peak_rss_mb" in report:
        lines += ["", f"Peak RSS: {report['peak_rss_mb']:.0f} MiB"]
    ev = report.get("evaluation", {})
    ppl = ev.get("perplexity", {})
    before = report.get("evaluation_before", {}).get("perplexity", {})
    if ppl:
        lines += [
            "",
            "| data | ppl before | ppl after | tokens | window |",
            "|---|---|---|---|---|",
        ]
        for lang, r in ppl.items():
            b = before.get(lang, {}).get("ppl")
            lines.append(
                f"| {lang} | {_fmt(b) if b else '—'} | {_fmt(r['ppl'])} | {r['tokens']} | {r['seq_len']} |"
            )
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, report: dict) -> None:
    out_dir = Path(out_dir)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (out_dir / "report.md").write_text(render_markdown(report))
