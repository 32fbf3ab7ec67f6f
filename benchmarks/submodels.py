"""Issue 4 benchmark: language-specific Wanda sub-models of one model, cross-evaluated.

Runs `prunekit submodels` (five calibration sources, 50% and 60% unstructured), a check of the
statistics variant (dense-stream reuse vs the standard sequential prune, python at 50%), and a
token-coverage table for the diagonal analysis; writes benchmarks/results/submodels.{json,md}
and the heatmaps / overlap plots as benchmarks/results/submodels_*.png.

    flock /tmp/prunekit-bench.lock python benchmarks/submodels.py --samples 32 --eval-tokens 8192
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
LANGS = "python,java,cpp,javascript,text"


def cli(args: list[str]) -> float:
    """Run the prunekit CLI in a subprocess (stderr progress passes through); return wall seconds."""
    cmd = [str(Path(sys.executable).parent / "prunekit"), *args]
    print("$ prunekit " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def coverage(model: str, samples: int, seq_len: int, eval_tokens: int, langs: list[str]) -> dict:
    """Share of each language's held-out tokens whose token id occurs in each calibration set, and
    each calibration set's number of distinct token ids (data / tokenization facts for the diagonal)."""
    from transformers import AutoTokenizer

    from prunekit.data.windows import calibration_windows, evaluation_windows
    from prunekit.models.registry import builtin_dir
    from prunekit.submodels.languages import Language

    tok = AutoTokenizer.from_pretrained(builtin_dir(model))
    calib = {
        lang: set(
            calibration_windows(Language(lang, lang).source("calib"), tok, samples, seq_len, 0)
            .flatten()
            .tolist()
        )
        for lang in langs
    }
    evals = {
        lang: evaluation_windows(Language(lang, lang).source("eval"), tok, 512, eval_tokens)
        .flatten()
        .tolist()
        for lang in langs
    }
    return {
        "distinct_calibration_tokens": {lang: len(s) for lang, s in calib.items()},
        "eval_token_coverage": {
            c: {e: sum(t in calib[c] for t in evals[e]) / len(evals[e]) for e in langs}
            for c in langs
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--eval-tokens", type=int, default=8192)
    ap.add_argument("--sparsity", default="0.5,0.6")
    ap.add_argument("--run-dir", type=Path, default=Path("/tmp/prunekit-bench-submodels"))
    ap.add_argument("--reuse", action="store_true", help="reuse finished runs in --run-dir")
    ap.add_argument(
        "--no-stream-check",
        dest="stream_check",
        action="store_false",
        help="skip the dense-stream vs sequential statistics check",
    )
    args = ap.parse_args()

    from prunekit.reports.report import machine

    common = [
        "--calib-samples",
        str(args.samples),
        "--seq-len",
        str(args.seq_len),
        "--ppl-tokens",
        str(args.eval_tokens),
        "--ppl-seq-len",
        "512",
        "--force",
    ]
    sweep_dir, check_dir = args.run_dir / "sweep", args.run_dir / "stream_check"
    commands, walls = {}, {}
    sweep_args = [
        "submodels",
        args.model,
        "--languages",
        LANGS,
        "--method",
        "wanda",
        "--sparsity",
        args.sparsity,
        *common,
        "-o",
        str(sweep_dir),
    ]
    check_args = [
        "submodels",
        args.model,
        "--languages",
        "python",
        "--eval-languages",
        "python,text",
        "--sparsity",
        "0.5",
        "--stats-stream",
        "pruned",
        "--save",
        "none",
        *common,
        "-o",
        str(check_dir),
    ]
    commands["sweep"] = "prunekit " + " ".join(sweep_args)
    if not (args.reuse and (sweep_dir / "report.json").is_file()):
        walls["sweep"] = cli(sweep_args)
    sweep = json.loads((sweep_dir / "report.json").read_text())
    cov = coverage(args.model, args.samples, args.seq_len, args.eval_tokens, LANGS.split(","))
    result = {
        "machine": machine(),
        "commands": commands,
        "wall_s": walls,
        "settings": {
            "model": args.model,
            "calibration": f"{args.samples} × {args.seq_len} tokens per language",
            "evaluation": f"{args.eval_tokens} held-out tokens per language, windows of 512 "
            "spread over the files in a fixed order",
        },
        "sweep": sweep,
        "stream_check": {},
        "coverage": cov,
    }
    write(result, sweep_dir)  # the main results are kept even if the check below is cut short
    if args.stream_check:
        commands["stream_check"] = "prunekit " + " ".join(check_args)
        if not (args.reuse and (check_dir / "report.json").is_file()):
            walls["stream_check"] = cli(check_args)
        check = json.loads((check_dir / "report.json").read_text())
        m50 = next(m for m in sweep["submodels"]["matrices"] if m["sparsity"] == 0.5)
        result["stream_check"] = {
            "python@0.5 dense-stream statistics (reused)": {
                e: m50["ppl"]["python"][e] for e in ("python", "text")
            },
            "python@0.5 pruned-stream (standard sequential Wanda)": check["submodels"]["matrices"][
                0
            ]["ppl"]["python"],
        }
        write(result, sweep_dir)


def write(result: dict, sweep_dir: Path) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "submodels.json").write_text(json.dumps(result, indent=2, default=str))
    for png in sweep_dir.glob("matrix_*.png"):
        shutil.copy(png, RESULTS / f"submodels_{png.name}")
    for png in (sweep_dir / "overlap").glob("*.png"):
        shutil.copy(png, RESULTS / f"submodels_overlap_{png.name}")
    (RESULTS / "submodels.md").write_text(render(result, sweep_dir))


def render(result: dict, sweep_dir: Path) -> str:
    from prunekit.evaluation.cross_eval import render_markdown

    sub = result["sweep"]["submodels"]
    langs = list(result["coverage"]["distinct_calibration_tokens"])
    lines = [
        "# Language-specific sub-models (issue 4)",
        "",
        f"Machine: {result['machine']}",
        "",
        f"Settings: {result['settings']['model']}, Wanda unstructured, calibration "
        f"{result['settings']['calibration']} (scaled down from 64 × 512: 2 shared CPU cores), "
        f"evaluation {result['settings']['evaluation']}; statistics taken once per language on the "
        "dense stream and reused for every sparsity.",
        "",
        "Commands:",
        "",
        *[f"    {c}" for c in result["commands"].values()],
        "",
        "## Generated summary",
        "",
        *sub["summary"],
        "",
    ]
    for m in sub["matrices"]:
        tag = f"s{m['sparsity']:.2f}"
        lines += [
            f"## Sparsity {m['sparsity']:g}",
            "",
            render_markdown(m),
            f"![matrix](submodels_matrix_{tag}.png)",
            "",
        ]
        pairs = sub["overlap_summary"][f"{m['sparsity']:g}"]
        projs = list(next(iter(pairs.values()))["by_projection"])
        lines += [
            "| mask pair | Jaccard | random s/(2−s) | "
            + " | ".join(p.split(".")[-1] for p in projs)
            + " | lowest block |",
            "|---|---|---|" + "---|" * len(projs) + "---|",
        ]
        for pair, r in pairs.items():
            lo = min(range(len(r["by_block"])), key=r["by_block"].__getitem__)
            lines.append(
                f"| {pair.replace('|', ' vs ')} | {r['overall']:.3f} | {r['random_expectation']:.3f} | "
                + " | ".join(f"{r['by_projection'][p]:.3f}" for p in projs)
                + f" | {lo} ({r['by_block'][lo]:.3f}) |"
            )
        lines.append("")
    lines += [
        "## Statistics variant check (python, 50%)",
        "",
        "| variant | ppl python | ppl text |",
        "|---|---|---|",
    ]
    for k, v in result["stream_check"].items():
        lines.append(f"| {k} | {v['python']:.3f} | {v['text']:.3f} |")
    cov = result["coverage"]
    lines += [
        "",
        "## Token coverage (for the diagonal analysis)",
        "",
        "Share of each language's evaluation tokens whose token id occurs in the calibration set "
        "(rows = calibration); last column = distinct token ids in the calibration set.",
        "",
        "| calibration | " + " | ".join(langs) + " | distinct ids |",
        "|---|" + "---|" * (len(langs) + 1),
    ]
    for c in langs:
        lines.append(
            f"| {c} | "
            + " | ".join(f"{cov['eval_token_coverage'][c][e]:.3f}" for e in langs)
            + f" | {cov['distinct_calibration_tokens'][c]} |"
        )
    lines += [
        "",
        "Overlap by depth per pair: `submodels_overlap_<a>__<b>_s0.50.png` (and s0.60).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
