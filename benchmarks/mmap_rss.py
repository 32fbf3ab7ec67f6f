"""Where a pruning job's peak RSS comes from when the checkpoint is memory-mapped.

transformers 5 maps safetensors lazily: a weight is resident only once something reads it, and
those pages are clean file-backed memory (RssFile) that the kernel may drop at any time, unlike
anonymous memory (RssAnon). VmHWM / ru_maxrss, the usual "peak RSS", counts both. This loads a
model as prunekit does and reads its parts one after another, printing VmRSS / RssAnon / RssFile
after each: what a job that never reads the output head (llm-compressor's pruning) is spared.

    .venv/bin/python benchmarks/mmap_rss.py --model qwen2.5-coder-0.5b
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def memory_mb() -> dict[str, float]:
    """VmRSS, RssAnon, RssFile and VmHWM of this process (MiB), from /proc/self/status."""
    keys = ("VmRSS", "RssAnon", "RssFile", "VmHWM")
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in keys:
            out[key] = int(line.split()[1]) / 1024
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    args = p.parse_args()

    import torch

    import prunekit
    from prunekit.models.adapters import adapter_for
    from prunekit.reports.report import machine, versions

    stages = [("start", memory_mb())]
    lm = prunekit.load_model(args.model, "float32")
    stages.append(("loaded (float32)", memory_mb()))
    model, adapter = lm.model, adapter_for(lm.model)
    parts = {
        "decoder blocks read": [p for layer in adapter.layers(model) for p in layer.parameters()],
        "output head read": [model.get_output_embeddings().weight],
        "input embedding read": [model.get_input_embeddings().weight],
    }
    with torch.no_grad():
        for name, params in parts.items():
            for t in params:
                torch.count_nonzero(t)
            stages.append((name, memory_mb()))
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    rows = [{"stage": s, **m} for s, m in stages]
    lines = [
        f"# Memory-mapped weights and peak RSS: `{args.model}`",
        "",
        f"`{' '.join(['python', *sys.argv])}` — float32 weights, tied embeddings: {tied}. Each row "
        "is read after the stage (MiB). RssFile = clean pages of the mapped checkpoint (the kernel "
        "can drop them); VmHWM counts them too.",
        "",
        "| stage | VmRSS | RssAnon | RssFile | VmHWM |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['stage']} | {r['VmRSS']:.0f} | {r['RssAnon']:.0f} | {r['RssFile']:.0f} "
        f"| {r['VmHWM']:.0f} |"
        for r in rows
    ]
    meta = {"command": " ".join(["benchmarks/mmap_rss.py", *sys.argv[1:]]), "tied": tied}
    meta |= {"machine": machine(), "versions": versions()}
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"mmap_rss_{args.model}"
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
