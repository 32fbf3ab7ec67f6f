"""Side-by-side reference: llm-compressor's Wanda / SparseGPT on the same calibration tokens.

Optional (not a dependency): llmcompressor lives in its own venv because it pins its own
transformers. Create it with
    python3 -m venv /tmp/lcvenv && /tmp/lcvenv/bin/pip install torch==2.13.0 llmcompressor
then run, from prunekit's venv:
    python benchmarks/llmcompressor_reference.py --lc-python /tmp/lcvenv/bin/python
Perplexity of every output is measured by prunekit on the same held-out windows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CONFIGS = [("wanda", "0:0"), ("sparsegpt", "0:0"), ("wanda", "2:4"), ("sparsegpt", "2:4")]


class PeakAnon:
    """Peak anonymous resident memory (RssAnon, MiB), sampled every 10 ms from /proc/self/status.

    VmHWM (ru_maxrss) also counts clean pages of the memory-mapped checkpoint that the process
    merely read — pages the kernel can drop at any time; RssAnon is what a job cannot give back.
    """

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def now_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, self.now_mb())
            if self._stop.wait(0.01):
                return

    def start(self) -> PeakAnon:
        self._thread.start()
        return self

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.now_mb())
        return self.peak_mb


def lc_worker(args: argparse.Namespace) -> None:
    """Runs inside the llmcompressor venv: prune the model folder on the given token ids."""
    import resource

    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    ids = load_file(args.ids)["input_ids"]
    anon = PeakAnon().start()  # load + prune, as ru_maxrss below
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    data = Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist()}
    )
    cls = WandaPruningModifier if args.method == "wanda" else SparseGPTModifier
    sparsity = getattr(args, "sparsity", None) or 0.5
    modifier = cls(
        sparsity=sparsity,
        mask_structure=args.structure,
        targets=["Linear"],
        ignore=["re:.*lm_head"],
    )
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    oneshot(
        model=model,
        dataset=data,
        recipe=[modifier],
        num_calibration_samples=ids.shape[0],
        max_seq_length=ids.shape[1],
        shuffle_calibration_samples=False,
        pipeline="sequential",
    )
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak up to the end of pruning
    anon.stop()
    model.save_pretrained(args.out, save_compressed=False)
    tokenizer.save_pretrained(args.out)
    versions = {"llmcompressor": _version("llmcompressor"), "torch": torch.__version__}
    versions["transformers"] = _version("transformers")
    print(
        json.dumps(
            {
                "prune_s": elapsed,
                "cpu_s": cpu_s,
                "peak_rss_mb": rss,
                "peak_anon_mb": anon.peak_mb,
                "threads": torch.get_num_threads(),
                "versions": versions,
            }
        )
    )


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--ppl-tokens", type=int, default=32768)
    p.add_argument("--lc-python", default="/tmp/lcvenv/bin/python")
    p.add_argument("--lc-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ids", help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--method", help=argparse.SUPPRESS)
    p.add_argument("--structure", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--sparsity", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.lc_worker:
        lc_worker(args)
        return

    from safetensors.torch import save_file

    import prunekit
    from prunekit.api import calibration_data
    from prunekit.models.registry import builtin_dir
    from prunekit.reports.report import machine

    if not Path(args.lc_python).exists():
        sys.exit(f"llmcompressor venv not found at {args.lc_python}; see this script's docstring")
    lm = prunekit.load_model(args.model)
    ids, _ = calibration_data(lm.tokenizer, "python", args.samples, args.seq_len, 0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        save_file({"input_ids": ids.contiguous()}, f"{tmp}/ids.safetensors")
        for method, structure in CONFIGS:
            out = f"{tmp}/{method}-{structure.replace(':', '_')}"
            cmd = [
                args.lc_python,
                __file__,
                "--lc-worker",
                "--ids",
                f"{tmp}/ids.safetensors",
                "--model-dir",
                str(builtin_dir(args.model)),
                "--method",
                method,
                "--structure",
                structure,
                "--out",
                out,
            ]
            print(f"llmcompressor {method} {structure} …", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                rows.append(
                    {"method": method, "pattern": structure, "error": f"exit {proc.returncode}"}
                )
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            pruned = prunekit.load_model(out)
            ppl = prunekit.perplexity(
                pruned.model, pruned.tokenizer, "python", args.seq_len, args.ppl_tokens
            )
            row.update(
                method=method,
                pattern="unstructured" if structure == "0:0" else structure,
                ppl=ppl["ppl"],
            )
            rows.append(row)
            del pruned
    meta = {
        "model": args.model,
        "samples": args.samples,
        "seq_len": args.seq_len,
        "ppl_tokens": args.ppl_tokens,
        "machine": machine(),
        "command": " ".join(sys.argv),
    }
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"llmcompressor_{args.model}"
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"# llm-compressor reference on `{args.model}`",
        "",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores. Same {args.samples} × "
        f"{args.seq_len} calibration windows as benchmarks/oneshot.py; perplexity by prunekit on "
        f"{args.ppl_tokens} held-out Python tokens.",
        "",
        "| method | pattern | ppl (python) | prune time (s) | peak RSS (MiB) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['pattern']} | failed ({r['error']}) | | |")
        else:
            lines.append(
                f"| {r['method']} | {r['pattern']} | {r['ppl']:.3f} | {r['prune_s']:.1f} | {r['peak_rss_mb']:.0f} |"
            )
    md = "\n".join(lines) + "\n"
    Path(f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
