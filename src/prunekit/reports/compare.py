"""Side-by-side comparison of run reports: one table, a quality-vs-cost plot, problem diffs.

Every value is read from report.json (data first); a section a report lacks prints "—".
Reports that carry several code benchmarks (e.g. every HumanEval-X language) also get a pass@1
column per benchmark, a pooled pass@1 over the benchmarks every report has, and a paired
McNemar test over the union of (benchmark, problem) pairs (`evaluation.paired.pooled_paired`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from prunekit.errors import PrunekitError
from prunekit.reports.sections import MethodSection

MISSING = "—"


@dataclass
class Entry:
    """One report and the label it is shown under."""

    label: str
    path: Path
    report: dict


def load_entry(spec: str | Path) -> Entry:
    """A run folder holding report.json, or a report .json file itself."""
    path = Path(spec)
    file = path / "report.json" if path.is_dir() else path
    if not file.is_file():
        hint = (
            f"; evaluate it first, e.g. prunekit eval {spec} --humaneval --speed "
            f"--report DIR/report.json"
            if not path.exists()
            else ""
        )
        raise PrunekitError(f"no report.json in '{spec}'{hint}")
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PrunekitError(f"'{file}' is not a readable JSON report ({exc})") from None
    if not isinstance(report, dict):
        raise PrunekitError(f"'{file}' is not a prunekit report (expected a JSON object)")
    label = file.parent.name if file.name == "report.json" else file.stem
    return Entry(label=label, path=file, report=report)


def _get(d: dict, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def method_label(report: dict) -> str:
    """The run's method ('wanda 50%'); a recipe's steps in order ('depth → wanda 50%'); 'dense'."""
    section = MethodSection.from_report(report)
    if section:
        return section.label
    steps = [s for s in report.get("steps") or [] if isinstance(s, dict) and s.get("step")]
    labels = []
    for step in steps:
        inner = MethodSection.from_report(step)
        labels.append(inner.label if inner else str(step["step"]))
    return " → ".join(labels) or "dense"


def params_of(report: dict) -> dict:
    return report.get("params") or _get(report, "evaluation", "speed", "params") or {}


def code_sections(report: dict) -> dict[str, dict]:
    """The registered code benchmarks this report was scored on: name -> its section."""
    from prunekit.evaluation.benchmarks import REGISTRY

    ev = report.get("evaluation") or {}
    return {k: v for k, v in ev.items() if k in REGISTRY and isinstance(v, dict) and "pass@1" in v}


def pooled_benchmarks(entries: list[Entry]) -> list[str]:
    """The code benchmarks every report carries (pooled only when there are several)."""
    sets = [list(code_sections(e.report)) for e in entries]
    common = [b for b in sets[0] if all(b in s for s in sets[1:])] if sets else []
    return common if len(common) > 1 else []


def pooled_pass(report: dict, benchmarks: list[str]) -> float | None:
    """pass@1 over all problems of `benchmarks` (each benchmark weighted by its problems)."""
    secs = code_sections(report)
    if not benchmarks or any(b not in secs for b in benchmarks):
        return None
    problems = [secs[b]["problems"] for b in benchmarks]
    solved = sum(secs[b]["pass@1"] * n for b, n in zip(benchmarks, problems))
    return solved / sum(problems) if sum(problems) else None


def metrics(report: dict) -> dict:
    """The comparable numbers of one report (None where absent)."""
    ev = report.get("evaluation") or {}
    he = ev.get("humaneval") or {}
    sp = ev.get("speed") or {}
    decode = _get(sp, "decode") or {}
    batches = sorted(
        (v for k, v in decode.items() if k.startswith("batch_") and isinstance(v, dict)),
        key=lambda v: v.get("batch", 0),
    )
    params = params_of(report)
    ppl = {
        lang: v.get("ppl")
        for lang, v in (ev.get("perplexity") or {}).items()
        if isinstance(v, dict)
    }
    return {
        "method": method_label(report),
        "params_total": params.get("total"),
        "params_nonzero": params.get("nonzero"),
        "sparsity": _get(report, "sparsity", "achieved"),
        "ppl": ppl,
        "pass@1": he.get("pass@1"),
        "he_mode": he.get("mode"),
        "he_problems": he.get("problems"),
        "he_limited": he.get("limited"),
        "he_tokens_per_s": he.get("tokens_per_s"),
        "he_wall_s": he.get("wall_s"),
        "prefill_tps": _get(sp, "prefill", "tokens_per_s"),
        "decode_b1_tps": batches[0].get("tokens_per_s") if batches else None,
        "decode_bN": batches[-1].get("batch") if len(batches) > 1 else None,
        "decode_bN_tps": batches[-1].get("tokens_per_s") if len(batches) > 1 else None,
        "peak_rss_mb": _get(sp, "memory", "peak_rss_mb") or report.get("peak_rss_mb"),
        "disk_bytes": _get(sp, "disk", "bytes"),
        "energy_j": _get(ev, "energy", "energy_j"),
        "energy_estimate": _get(ev, "energy", "measured") is False,
        "benchmarks": {
            k: {"pass@1": v.get("pass@1"), "problems": v.get("problems")}
            for k, v in code_sections(report).items()
            if k != "humaneval"
        },
    }


NUMBERS = (
    "params_total",
    "params_nonzero",
    "sparsity",
    "pass@1",
    "he_problems",
    "prefill_tps",
    "decode_b1_tps",
    "decode_bN",
    "decode_bN_tps",
    "peak_rss_mb",
    "disk_bytes",
    "energy_j",
)


def check_numbers(report: dict) -> None:
    """Every value the table and plot compute with is a number (or absent): a ValueError
    naming the first that is not."""
    m = metrics(report)
    values = {k: m[k] for k in NUMBERS} | {f"ppl {k}": v for k, v in m["ppl"].items()}
    for bench, sec in m["benchmarks"].items():
        values |= {f"{bench} {k}": v for k, v in sec.items()}
    for key, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{key} is {value!r}, not a number")


def _fmt(value, spec: str = "", suffix: str = "") -> str:
    if value is None:
        return MISSING
    try:
        return f"{value:{spec}}{suffix}"
    except (TypeError, ValueError):
        return str(value)


def table(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the comparison table (all strings)."""
    ms = [metrics(e.report) for e in entries]
    langs = sorted({lang for m in ms for lang in m["ppl"]})
    benches = list(dict.fromkeys(b for m in ms for b in m["benchmarks"]))
    pooled = pooled_benchmarks(entries)
    bN = next((m["decode_bN"] for m in ms if m["decode_bN"]), None)
    headers = ["run", "method", "params (M)", "non-zero (M)", "sparsity"]
    headers += [f"ppl {lang}" for lang in langs]
    headers += ["pass@1", *(f"pass@1 {b}" for b in benches)]
    headers += [f"pooled pass@1 ({len(pooled)} benchmarks)"] if pooled else []
    headers += [
        "prefill tok/s",
        "decode b1 tok/s",
        f"decode b{bN or 'N'} tok/s",
        "peak RSS MiB",
        "disk MiB",
    ]
    rows = []
    for e, m in zip(entries, ms):
        p1 = MISSING
        if m["pass@1"] is not None:
            p1 = f"{m['pass@1'] * 100:.1f}%"
            if m["he_limited"]:
                p1 += f" ({m['he_problems']} probl.)"
            if m["he_mode"]:
                p1 += f" [{m['he_mode']}]"
        row = [
            e.label,
            m["method"],
            _fmt(m["params_total"] and m["params_total"] / 1e6, ".1f"),
            _fmt(m["params_nonzero"] and m["params_nonzero"] / 1e6, ".1f"),
            _fmt(m["sparsity"] if m["sparsity"] is None else m["sparsity"] * 100, ".1f", "%"),
        ]
        row += [_fmt(m["ppl"].get(lang), ".3f") for lang in langs]
        row += [p1]
        for b in benches:
            sec = m["benchmarks"].get(b) or {}
            row.append(_fmt(_scaled(sec.get("pass@1")), ".1f", "%"))
        if pooled:
            row.append(_fmt(_scaled(pooled_pass(e.report, pooled)), ".1f", "%"))
        row += [
            _fmt(m["prefill_tps"], ".1f"),
            _fmt(m["decode_b1_tps"], ".2f"),
            _fmt(m["decode_bN_tps"], ".2f"),
            _fmt(m["peak_rss_mb"], ".0f"),
            _fmt(m["disk_bytes"] and m["disk_bytes"] / 2**20, ".1f"),
        ]
        rows.append(row)
    return headers, rows


def _scaled(v: float | None) -> float | None:
    return None if v is None else v * 100


def render_text(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def render_markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def rows_file(entry: Entry, bench: str) -> Path | None:
    """The per-problem JSONL a report's section `bench` points to (None if absent)."""
    name = _get(entry.report, "evaluation", bench, "problems_file")
    if not name:
        return None
    path = Path(name)
    if not path.is_absolute():
        path = entry.path.parent / path
    return path if path.is_file() else None


def pooled_tests(entries: list[Entry]) -> list[dict]:
    """Against the first report: the pooled paired counts over every code benchmark both have
    per-problem rows for (pairs one of them lacks are `unpaired`), when that is more than one."""
    from prunekit.evaluation.paired import pooled_paired, read_rows

    if len(entries) < 2:
        return []

    def files(e: Entry) -> dict[str, Path]:
        found = {b: rows_file(e, b) for b in code_sections(e.report)}
        return {b: p for b, p in found.items() if p is not None}

    base = files(entries[0])
    out = []
    for e in entries[1:]:
        other = files(e)
        shared = [b for b in base if b in other]
        if len(shared) < 2:
            continue
        try:
            counts = pooled_paired(
                read_rows({b: base[b] for b in shared}), read_rows({b: other[b] for b in shared})
            )
        except PrunekitError as exc:  # sampled rows, no common problems: say so, compare the rest
            out.append({"run": e.label, "against": entries[0].label, "error": str(exc)})
            continue
        out.append({"run": e.label, "against": entries[0].label, **counts.as_dict()})
    return out


def render_pooled(test: dict) -> str:
    """One line: the pooled paired result of `run` against `against`."""
    head = f"pooled code benchmarks, {test['run']} vs {test['against']}"
    if "error" in test:
        return f"{head}: not compared ({test['error']})"
    benches = ", ".join(test["by_benchmark"])
    unpaired = f", {test['unpaired']} unpaired" if test["unpaired"] else ""
    return (
        f"{head} ({benches}): {test['pairs']} paired problems{unpaired}; pass@1 "
        f"{100 * test['pass_b']:.1f}% vs {100 * test['pass_a']:.1f}%; {test['run']} solves "
        f"{test['only_b']} that {test['against']} does not and loses {test['only_a']} "
        f"(exact McNemar p = {test['p_value']:.3g})"
    )


def problem_results(entry: Entry) -> dict[str, bool] | None:
    """task_id → passed from the per-problem JSONL the report points to (None if absent)."""
    name = _get(entry.report, "evaluation", "humaneval", "problems_file")
    if not name:
        return None
    path = Path(name)
    if not path.is_absolute():
        path = entry.path.parent / path
    if not path.is_file():
        return None
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["task_id"]] = bool(row.get("correct", 0) > 0 or row.get("passed"))
    return out


def problem_diffs(entries: list[Entry]) -> list[dict]:
    """Against the first report: problems each other report lost and gained."""
    if len(entries) < 2:
        return []
    base = problem_results(entries[0])
    if base is None:
        return []
    diffs = []
    for e in entries[1:]:
        other = problem_results(e)
        if other is None:
            continue
        common = sorted(
            set(base) & set(other),
            key=lambda t: int(t.split("/")[-1]) if t.split("/")[-1].isdigit() else 0,
        )
        lost = [t for t in common if base[t] and not other[t]]
        gained = [t for t in common if other[t] and not base[t]]
        both = sum(base[t] and other[t] for t in common)
        diffs.append(
            {
                "run": e.label,
                "against": entries[0].label,
                "common": len(common),
                "both_pass": both,
                "lost": lost,
                "gained": gained,
            }
        )
    return diffs


def plot(entries: list[Entry], path: Path) -> Path:
    """Quality against cost: pass@1 (or perplexity) vs non-zero params, and vs decode speed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = [metrics(e.report) for e in entries]
    if any(m["pass@1"] is not None for m in ms):
        quality = [m["pass@1"] * 100 if m["pass@1"] is not None else None for m in ms]
        qlabel = "HumanEval pass@1 (%)"
    else:
        lang = next((lang for m in ms for lang in m["ppl"]), None)
        quality = [m["ppl"].get(lang) for m in ms] if lang else [None] * len(ms)
        qlabel = f"perplexity ({lang}, lower is better)" if lang else "quality (none reported)"
    panels = [
        (
            "non-zero parameters (M)",
            [m["params_nonzero"] and m["params_nonzero"] / 1e6 for m in ms],
        ),
        ("decode tokens/s (batch 1)", [m["decode_b1_tps"] for m in ms]),
        ("size on disk (MiB)", [m["disk_bytes"] and m["disk_bytes"] / 2**20 for m in ms]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, (xlabel, xs) in zip(axes, panels):
        shown = 0
        for e, x, y in zip(entries, xs, quality):
            if x is None or y is None:
                continue
            ax.scatter([x], [y], s=40)
            ax.annotate(e.label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
            shown += 1
        ax.set_xlabel(xlabel)
        ax.set_ylabel(qlabel)
        ax.grid(alpha=0.3)
        if not shown:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")
    fig.suptitle("prunekit compare: quality vs cost")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
