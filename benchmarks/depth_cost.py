"""Depth scoring cost as a multiple of one forward, and how well one-shot scoring (no re-scoring
after each removal) agrees with the exact greedy order.

    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/depth_cost.py \\
        --model smollm2-135m --samples 2 --seq-len 128 --remove 4
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--remove", type=int, default=4)
    p.add_argument("--criteria", default="kl,angular")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()

    import torch

    import prunekit
    from prunekit.api import calibration_data
    from prunekit.calibration.context import RunContext
    from prunekit.config.depth import DepthConfig
    from prunekit.models.adapters import adapter_for
    from prunekit.reports.report import machine, versions
    from prunekit.structural.depth import greedy_depth, ranking_agreement

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = prunekit.load_model(args.model, "float32")
    windows, _ = calibration_data(lm.tokenizer, "python", args.samples, args.seq_len, 0)
    batches = list(windows.split(args.batch_size))
    adapter = adapter_for(lm.model)
    rows = []
    for criterion in args.criteria.split(","):
        results = {}
        for rescore in (True, False):
            c0 = _cpu_s()
            res = greedy_depth(
                RunContext(lm.model, adapter, batches, progress=False),
                DepthConfig(remove=args.remove, criterion=criterion),
                rescore=rescore,
            )
            results[rescore] = res
            rows.append(
                {
                    "criterion": criterion,
                    "rescore": rescore,
                    "removed": res.removed,
                    "cpu_s": _cpu_s() - c0,
                    **res.cost,
                }
            )
        rows[-1]["agreement"] = ranking_agreement(results[True], results[False])
    meta = {
        "model": args.model,
        "tokens": int(windows.numel()),
        "remove": args.remove,
        "machine": machine(),
        "versions": versions(),
        "command": " ".join(sys.argv),
    }
    lines = [
        f"# Depth scoring cost on `{args.model}` ({meta['tokens']} tokens, remove {args.remove})",
        "",
        "| criterion | rescore | removed | s | CPU s | ÷ one forward (time) "
        "| layer passes ÷ layers | same set / order as exact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        agree = r.get("agreement")
        agree_s = f"{agree['same_set']} / {agree['same_order']}" if agree else "(exact)"
        lines.append(
            f"| {r['criterion']} | {r['rescore']} | {r['removed']} | {r['seconds']:.1f} | "
            f"{r['cpu_s']:.1f} | {r['forwards_by_time']:.1f} | "
            f"{r['forwards_by_layer_passes']:.1f} | {agree_s} |"
        )
    md = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"depth_cost_{args.model}"
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    Path(f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
