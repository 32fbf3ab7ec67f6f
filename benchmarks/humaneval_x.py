"""HumanEval-X per language (issue 30): qwen2.5-coder-0.5b dense in every language, and the
language sub-model matrix judged by generation (Wanda 50% calibrated on each language's corpus x
pass@1 in each language, paired McNemar tests of the diagonal against each off-diagonal cell).

Each cell is one model (runs/hx-<cell>): the dense model linked, a `prunekit prune` student, or
(optional matrix) a `prunekit run` recipe with the language-specific vocabulary step. It is judged
by one `prunekit eval FOLDER --benchmark humaneval-x:<lang> --dtype auto` per language (full 164
problems, greedy, chat mode: the model has a chat template; bfloat16 where the CPU computes in
it); a language already in the folder's report is not run again, so every cell and every
(cell, language) resumes and runs alone:

    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/humaneval_x.py --run dense wanda50-java
    .venv/bin/python benchmarks/humaneval_x.py --run wanda50-java:cpp   # one language of a cell
    .venv/bin/python benchmarks/humaneval_x.py --list                   # cells, languages, commands
    .venv/bin/python benchmarks/humaneval_x.py                          # only render the record

Every number is read from the folders' report.json and per-problem rows and recorded per cell in
benchmarks/results/humaneval_x_qwen2.5-coder-0.5b.json (machine, CPU flags, wall and CPU seconds
per command, per-problem outcomes), from which the .md and the heatmaps are made.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from repair import _call, _cpu_flags  # noqa: E402

from recovery import _link_dense, _report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"
MODEL = "qwen2.5-coder-0.5b"
OUT = ROOT / "benchmarks" / "results" / f"humaneval_x_{MODEL}"
RECORD = Path(f"{OUT}.json")
ALL = ("cpp", "java", "js", "go", "python")  # every HumanEval-X language
MATRIX = ("cpp", "java", "js", "python")  # the languages with a calibration corpus
CALIB = ("python", "java", "cpp", "javascript")  # prunekit.data.corpora names
BENCH_OF = {"javascript": "js"}  # corpus name -> HumanEval-X language

# Published pass@1 (%) for Qwen2.5-Coder-0.5B-Instruct (the built-in model is the instruct one):
# language -> (figure, what it is). None of them is HumanEval-X: see render_dense for why they
# may differ.
PUBLISHED: dict[str, tuple[float, str]] = {
    "python": (
        61.6,
        "HumanEval (Python), Qwen2.5-Coder tech report (arXiv:2409.12186v3), instruct table",
    ),
    "java": (
        57.3,
        "MultiPL-E Java as listed in arXiv:2412.05210 Table 4 (check: its four MultiPL-E "
        "values before TS repeat the row's HE/HE+/MBPP/MBPP+ exactly)",
    ),
    "cpp": (52.4, "MultiPL-E C++, same source and caveat as Java"),
    "js": (50.3, "MultiPL-E JavaScript, arXiv:2412.05210 Table 4"),
}
OWN_HUMANEVAL = "benchmarks/results/repair_qwen2.5-coder-0.5b.json"  # the dense cell's HumanEval


def _prune(calib: str) -> list[str]:
    return ["prune", MODEL, "--method", "wanda", "--sparsity", "0.5", "--calib", calib]


def _vocab(calib: str) -> dict:
    return {"steps": [{"vocabulary": {"corpus": calib}}]}


# name -> (what it is, matrix it belongs to, its calibration corpus, how it is made, languages)
CELLS: dict[str, tuple[str, str, str | None, list[str] | dict, tuple[str, ...]]] = {
    "dense": ("the built-in model unchanged", "dense", None, [], ALL),
    **{
        f"wanda50-{c}": (f"Wanda 50% unstructured, calib {c}", "wanda50", c, _prune(c), MATRIX)
        for c in CALIB
    },
    **{
        f"vocab-{c}": (f"vocabulary of the {c} corpus only", "vocab", c, _vocab(c), MATRIX)
        for c in CALIB
    },
}
MATRICES = {"wanda50": "Wanda 50% sub-models", "vocab": "language-specific vocabulary"}
# Why a completion did not compile, read from the compiler's own message (first match counts):
# harness conventions that MultiPL-E's prompts do not share (its C++ prompts include
# <bits/stdc++.h>), then names the completion uses but never defines.
COMPILE_CAUSES: dict[str, re.Pattern] = {
    "missing header/import": re.compile(
        r"is defined in header|is not a member of ‘std’|initializer but incomplete type|"
        r"symbol:\s+(?:variable|class) (?:Collectors|IntStream|Stream|Pattern|Matcher|"
        r"BigInteger|BigDecimal)\b"
    ),
    "undefined name": re.compile(
        r"‘\w+’ was not declared in this scope|undefined: [A-Za-z_]\w*(?![.\w])"
    ),
}


def parse_targets(names: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """'wanda50-java' (all its languages) or 'wanda50-java:cpp,go' -> (cell, languages);
    an unknown cell or language exits with one line."""
    out = []
    for name in names:
        cell, _, langs = name.partition(":")
        if cell not in CELLS:
            sys.exit(f"unknown cell '{cell}'; choose from: {', '.join(CELLS)}")
        chosen = tuple(x for x in langs.split(",") if x) or CELLS[cell][4]
        bad = [x for x in chosen if x not in ALL]
        if bad:
            sys.exit(f"unknown language {bad} in '{name}'; choose from: {', '.join(ALL)}")
        out.append((cell, chosen))
    return out


def _make_args(name: str, spec: list[str] | dict) -> list[str]:
    """`prunekit prune ...`, or `prunekit run` on a recipe file written under runs/."""
    if isinstance(spec, list):
        return spec
    import yaml

    RUNS.mkdir(exist_ok=True)
    path = RUNS / f"hx-{name}.recipe.yaml"
    path.write_text(yaml.safe_dump({"model": MODEL, **spec}, sort_keys=False))
    return ["run", str(path)]


def run_cell(name: str, langs: tuple[str, ...], dtype: str = "auto") -> None:
    """Make the model if missing, then judge it on each language not yet in its report."""
    spec = CELLS[name][3]
    folder = RUNS / f"hx-{name}"
    times: dict = {}
    if name == "dense" and not folder.exists():
        _link_dense(folder)
    elif not folder.exists():
        make = [*_make_args(name, spec), "-o", str(folder)]
        if dtype != "auto" and make[0] == "prune":
            make += ["--dtype", dtype]  # pruned in the dtype it is judged in
        times["make"] = _call(make)
    for lang in langs:
        if f"humaneval-x:{lang}" in _report(folder).get("evaluation", {}):
            continue
        args = ["eval", str(folder), "--benchmark", f"humaneval-x:{lang}", "--dtype", dtype]
        times[f"eval_{lang}"] = _call(args)
        record(name, times, dtype)  # a language at a time: a cut-short cell keeps what it finished
    record(name, times, dtype)


def _problem_rows(folder: Path, section: dict) -> list[dict]:
    path = folder / (section.get("problems_file") or "")
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _solved(rows: list[dict]) -> dict[str, bool] | None:
    return {r["task_id"]: bool(r["passed"]) for r in rows} if rows else None


def compile_causes(rows: list[dict]) -> dict[str, int]:
    """Compile failures by the cause their compiler message names (COMPILE_CAUSES), rest 'other'."""
    out = dict.fromkeys([*COMPILE_CAUSES, "other"], 0)
    for r in rows:
        if r.get("error") == "compile":
            detail = r.get("detail") or ""
            cause = next((k for k, rx in COMPILE_CAUSES.items() if rx.search(detail)), "other")
            out[cause] += 1
    return out


def record(name: str, times: dict, dtype: str = "auto") -> None:
    """Store one cell's judged languages (numbers, per-problem outcomes, machine, times)."""
    from prunekit.reports.report import machine

    folder = RUNS / f"hx-{name}"
    ev = _report(folder).get("evaluation", {})
    data = _load()
    old = data["cells"].get(name, {})
    evals = dict(old.get("evals", {}))
    here = {**machine(), "cpu_flags": _cpu_flags()}
    for lang in ALL:
        sec = ev.get(f"humaneval-x:{lang}")
        if not sec:
            continue
        keep = ("pass@1", "problems", "limited", "mode", "dtype", "outcomes", "toolchain")
        rows = _problem_rows(folder, sec)
        # the machine that judged this language: a cell's languages may run on different machines
        judged_here = f"eval_{lang}" in times or lang not in evals
        evals[lang] = {k: sec.get(k) for k in keep} | {
            "solved": _solved(rows),
            "compile_causes": compile_causes(rows),
            "command": f"prunekit eval runs/hx-{name} --benchmark humaneval-x:{lang} "
            f"--dtype {sec.get('dtype', 'auto')}",
            "machine": here if judged_here else evals[lang].get("machine", old.get("machine")),
        }
    for e in evals.values():  # languages judged before per-language machines were recorded
        e.setdefault("machine", old.get("machine"))
    data["cells"][name] = {
        "what": CELLS[name][0],
        "command": f"benchmarks/humaneval_x.py --run {name}"
        + ("" if dtype == "auto" else f" --dtype {dtype}"),
        "evals": evals,
        "times": {**old.get("times", {}), **times},
        "machine": here if "make" in times or not old else old["machine"],
    }
    if CELLS[name][1] == "vocab":
        data["cells"][name]["tokens"] = old.get("tokens") or token_cost(folder)
    RECORD.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _token_counts(tokenizer) -> dict[str, int]:
    """Tokens of every problem's prompt + reference solution, summed per matrix language."""
    from prunekit.evaluation.humaneval_x import load_problems

    return {
        lang: sum(
            len(tokenizer(p.prompt + p.canonical_solution, add_special_tokens=False).input_ids)
            for p in load_problems(lang)
        )
        for lang in MATRIX
    }


def token_cost(folder: Path) -> dict:
    """How much longer the code of each language gets under a cell's pruned vocabulary: tokens of
    prompt + reference solution over all problems, against the dense tokenizer's."""
    from transformers import AutoTokenizer

    from prunekit.models.registry import builtin_dir

    mine = AutoTokenizer.from_pretrained(folder)
    dense = _token_counts(AutoTokenizer.from_pretrained(builtin_dir(MODEL)))
    return {
        "vocabulary": len(mine),
        "by_language": {
            lang: {"tokens": n, "dense_tokens": dense[lang], "ratio": round(n / dense[lang], 4)}
            for lang, n in _token_counts(mine).items()
        },
    }


def render_tokens(cells: dict) -> list[str]:
    """Token inflation of each language-specific vocabulary, per judged language."""
    rows = [(n, c["tokens"]) for n, c in cells.items() if c.get("tokens")]
    if not rows:
        return []
    head = "| vocabulary of | tokens kept | " + " | ".join(MATRIX) + " |"
    lines = [
        "Tokens of prompt + reference solution over all 164 problems under each vocabulary, "
        "relative to the dense tokenizer (what a language's code costs to read and to write):",
        "",
        head,
        "|" + "---|" * (2 + len(MATRIX)),
    ]
    for name, t in rows:
        ratios = " | ".join(f"{t['by_language'][x]['ratio']:.2f}×" for x in MATRIX)
        lines.append(f"| {CELLS[name][2]} | {t['vocabulary']:,} | {ratios} |")
    return [*lines, ""]


def _load() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {"cells": {}}


def _rows(solved: dict[str, bool]) -> list[dict]:
    return [{"task_id": t, "passed": p, "n": 1, "correct": int(p)} for t, p in solved.items()]


def matrix_cells(cells: dict, matrix: str) -> dict:
    """by_generation's input for one matrix: dense, then each calibration row (corpus name)."""
    out = {}
    for name, (_, kind, calib, _, _) in CELLS.items():
        if kind not in ("dense", matrix) or name not in cells:
            continue
        row = "dense" if kind == "dense" else calib
        evals = cells[name]["evals"]
        out[row] = {
            f"humaneval-x:{lang}": _rows(evals[lang]["solved"])
            for lang in MATRIX
            if lang in evals and evals[lang].get("solved")
        }
    return out


def render_dense(cells: dict) -> list[str]:
    """Dense pass@1 per language beside the published figure for the model, and why they differ."""
    evals = cells.get("dense", {}).get("evals", {})
    lines = [
        "## Dense qwen2.5-coder-0.5b (instruct) per language",
        "",
        "| language | pass@1 (solved/problems) | dtype | published | difference | published figure |",
        "|---|---|---|---|---|---|",
    ]
    for lang in ALL:
        e = evals.get(lang)
        pub = PUBLISHED.get(lang)
        ours = (
            f"{100 * e['pass@1']:.1f}% ({sum(e['solved'].values())}/{e['problems']})" if e else "—"
        )
        diff = f"{100 * e['pass@1'] - pub[0]:+.1f} pt" if e and pub else "—"
        lines.append(
            f"| {lang} | {ours} | {e.get('dtype') if e else '—'} | "
            f"{f'{pub[0]:.1f}%' if pub else 'none published'} | {diff} | {pub[1] if pub else '—'} |"
        )
    lines += render_failures(evals)
    own = ROOT / OWN_HUMANEVAL
    if own.is_file():
        he = json.loads(own.read_text())["cells"].get("dense", {}).get("humaneval", {})
        if he.get("pass@1") is not None:
            lines += [
                "",
                f"This project's own HumanEval run of the same model (`{OWN_HUMANEVAL}`, same harness, "
                f"chat mode, {he.get('dtype')}): {100 * he['pass@1']:.1f}%.",
            ]
    lines += [
        "",
        "Why ours and the published figures may differ: (1) benchmark: the Qwen2.5-Coder reports "
        "give HumanEval (Python) and MultiPL-E (HumanEval translated per language by MultiPL-E's "
        "compilers, its own prompts and tests), not HumanEval-X (CodeGeeX's hand translations, "
        "other prompts, tests and signatures; no Go in MultiPL-E's table); (2) prompt: ours is "
        "this project's chat instruction with the reply prefilled by a code fence and the "
        "HumanEval-X prompt, theirs the evaluation kit's own chat prompt; (3) stops and "
        "extraction: ours stop at the first `}` in column 0 (braced languages) or HumanEval's "
        "stops (Python); (4) decoding dtype (bfloat16 here) and greedy decoding on both sides; "
        "(5) the model: the built-in model is the Instruct one, so the base model's figures "
        "(HumanEval 28.0) are not comparable. JavaScript can reach at most 161/164 here: "
        "JS/112 and JS/155 have wrong reference tests/solutions in the data and JS/162's "
        "reference needs the npm module js-md5 (see README, evaluation section).",
        "",
    ]
    return lines


def render_failures(evals: dict) -> list[str]:
    """How the dense model's completions fail per language: outcome counts, and the compile
    failures split by the cause the compiler names (COMPILE_CAUSES)."""
    if not evals:
        return []
    kinds = sorted({k for e in evals.values() for k in e.get("outcomes") or {}} - {"passed"})
    causes = [*COMPILE_CAUSES, "other"]
    head = ["language", "passed", *kinds, *(f"compile: {c}" for c in causes)]
    lines = [
        "",
        "Outcomes of the dense model's completions (compile failures split by the "
        "cause the compiler names):",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for lang in ALL:
        e = evals.get(lang)
        if not e:
            continue
        out, cc = e.get("outcomes") or {}, e.get("compile_causes") or {}
        cols = [str(out.get(k, 0)) for k in ["passed", *kinds]]
        cols += [str(cc[c]) if c in cc else "—" for c in causes]
        lines.append(f"| {lang} | " + " | ".join(cols) + " |")
    cc = evals.get("cpp", {}).get("compile_causes")
    if cc:
        fixable = cc["missing header/import"] + cc["undefined name"]
        lines += [
            "",
            f"C++: {cc['missing header/import']} compile failures name a standard header that "
            "HumanEval-X's nine includes lack (MultiPL-E's C++ prompts include <bits/stdc++.h>), "
            f"{cc['undefined name']} a name the completion uses but never defines (a helper not "
            "written, or written after the function, where the stop at the first `}` in column 0 "
            f"cuts it off): together at most {fixable} problems "
            f"({100 * fixable / evals['cpp']['problems']:.1f} pt) that a harness with "
            "MultiPL-E's headers and extraction might judge differently.",
        ]
    return lines


def _languages(c) -> str:
    n = len(c.paired_benchmarks)
    return f"{n} language" + ("s" if n != 1 else "")


def render_matrix(cells: dict, matrix: str) -> list[str]:
    """One matrix: the pass@1 table with the diagonal tests, and each cell pooled against dense."""
    from prunekit.errors import PrunekitError
    from prunekit.evaluation.paired import pooled_paired
    from prunekit.submodels.by_generation import build_matrix, plot_heatmap, render_markdown

    mc = matrix_cells(cells, matrix)
    if not any(r != "dense" and mc[r] for r in mc):
        return [f"## {MATRICES[matrix]}: not run yet", ""]
    m = build_matrix(mc, 0.5 if matrix == "wanda50" else None)
    png = Path(f"{OUT}.png") if matrix == "wanda50" else Path(f"{OUT}_{matrix}.png")
    plot_heatmap(m, png)
    lines = [f"## {MATRICES[matrix]} judged by generation", "", render_markdown(m)]
    lines += provenance(cells, matrix)
    lines += [f"![{matrix}]({png.name})", "", "Pooled over the languages both were judged on:", ""]
    for row in mc:
        if row == "dense" or "dense" not in mc:
            continue
        try:
            c = pooled_paired(mc["dense"], mc[row])
        except PrunekitError as exc:
            lines.append(f"- {row}: not compared ({exc})")
            continue
        lines.append(
            f"- {row}: {100 * c.pass_b:.1f}% vs dense {100 * c.pass_a:.1f}% over {c.pairs} "
            f"problems ({_languages(c)}): +{c.only_b}/−{c.only_a}, exact McNemar "
            f"p = {c.p_value:.3g}"
        )
    return [*lines, ""]


def _where(evaluation: dict, cell_machine: dict) -> str:
    mach = evaluation.get("machine") or cell_machine  # recorded before per-language machines
    flags = " ".join(mach.get("cpu_flags", [])) or "no bf16/avx512 flags"
    return f"{evaluation.get('dtype')} on {mach.get('cpu', '?')} ({flags})"


def provenance(cells: dict, matrix: str) -> list[str]:
    """A line per column whose cells were judged in more than one dtype or on more than one
    machine: which rows ran where, since comparisons across them mix numerics."""
    lines = []
    for lang in MATRIX:
        rows: dict[str, list[str]] = {}
        for name, (_, kind, calib, _, _) in CELLS.items():
            evaluation = cells.get(name, {}).get("evals", {}).get(lang)
            if kind in ("dense", matrix) and evaluation:
                where = _where(evaluation, cells[name]["machine"])
                rows.setdefault(where, []).append(calib or "dense")
        if len(rows) > 1:
            where = "; ".join(f"{', '.join(r)}: {w}" for w, r in rows.items())
            lines.append(
                f"- humaneval-x:{lang} was judged in more than one setting ({where}); "
                "comparisons inside one setting are like for like, across them they mix numerics "
                "(a sub-model judged on a second machine from a fresh runs/ was pruned again "
                "there: a cell's `machine` in the JSON names where its model was last made)."
            )
    return [*lines, ""] if lines else []


def render() -> str:
    cells = _load()["cells"]
    machines = {
        json.dumps(m, sort_keys=True)
        for c in cells.values()
        for m in [c["machine"], *(e.get("machine") for e in c["evals"].values())]
        if m
    }
    lines = [
        f"# HumanEval-X per language on {MODEL} (issue 30)",
        "",
        "Full 164 problems per language, greedy, chat mode, generation in the dtype shown; programs "
        "built and run in the sandbox (toolchain versions per language in the JSON). Generated by "
        f"`benchmarks/humaneval_x.py` from `{RECORD.name}` (commands, machine, CPU flags, "
        "per-problem outcomes).",
        "",
        *render_dense(cells),
        *render_matrix(cells, "wanda50"),
        *render_matrix(cells, "vocab"),
        *render_tokens(cells),
    ]
    missing = [n for n in CELLS if n not in cells]
    if missing:
        lines += ["Not run yet: " + ", ".join(missing) + ".", ""]
    lines += ["Machines: " + ("; ".join(sorted(machines)) or "none yet")]
    text = "\n".join(lines) + "\n"
    Path(f"{OUT}.md").write_text(text)
    return text


def print_list() -> None:
    for name, (what, matrix, _, spec, langs) in CELLS.items():
        make = "link the built-in model" if name == "dense" else " ".join(_show(spec))
        print(f"{name:20s} [{matrix}] {what}; languages {','.join(langs)}")
        print(f"{'':20s}   make: {make}")
    print(
        "\neach language: prunekit eval runs/hx-<cell> --benchmark humaneval-x:<lang> --dtype auto"
    )


def _show(spec: list[str] | dict) -> list[str]:
    return ["prunekit", *spec] if isinstance(spec, list) else ["prunekit run", json.dumps(spec)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--run", nargs="*", default=[], help="cells (or CELL:lang,lang) to make and judge, in order"
    )
    p.add_argument("--list", action="store_true", help="show every cell and how it is made")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "bfloat16", "float32"),
        help="generation dtype (auto: bfloat16 where the CPU computes in it); name bfloat16 to "
        "match cells judged on a bfloat16 machine",
    )
    args = p.parse_args()
    if args.list:
        print_list()
        return
    targets = parse_targets(args.run)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name, langs in targets:
        run_cell(name, langs, args.dtype)
        render()
    print(render())


if __name__ == "__main__":
    main()
