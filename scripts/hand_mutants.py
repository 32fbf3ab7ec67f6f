"""Hand-applied mutants of structural/ (SAAP) and recovery/ masks: tests/MUTATION.md section 3.

Each mutant is one exact text edit (it must occur exactly once) applied to a scratch copy of src/
($MUTANT_DIR, default /tmp/mutH); its tests run against the copy with
`PYTHONPATH=$MUTANT_DIR/src nice -n 19 .venv/bin/python -m pytest -q -x <tests>` after checking
that `prunekit.__file__` points into the copy. The working tree's src/ is never edited.

    nice -n 19 .venv/bin/python scripts/hand_mutants.py            # every mutant
    nice -n 19 .venv/bin/python scripts/hand_mutants.py S1 R5      # just these
    nice -n 19 .venv/bin/python scripts/hand_mutants.py --list     # ids and edits

One line per mutant: id, KILLED (first failing test) or SURVIVED, seconds. Slow-ish (minutes):
not part of ./test.sh or CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")

S = "tests/structural/"
R = "tests/recovery/"
IMPORTANCE = [S + "test_importance.py", S + "test_saap.py"]
RATIOS = [S + "test_ratios.py", S + "test_saap.py"]
GROUPS = [S + "test_groups.py", S + "test_importance.py"]
SAAP = [S + "test_saap.py"]
MASKS = [R + "test_recovery_masks.py", R + "test_recovery_lora.py", R + "test_recovery_distill.py"]
TRAIN = [R + "test_recovery_distill.py", R + "test_recovery_layers.py"]


@dataclass(frozen=True)
class Mutant:
    id: str
    what: str
    file: str  # under src/prunekit/
    old: str
    new: str
    tests: list[str]


MUTANTS = [
    # importance.py
    Mutant(
        "I1",
        "taylor_vector without |·| (signed sum)",
        "structural/importance.py",
        "terms.wg.double().sum(1).abs().unsqueeze(1)",
        "terms.wg.double().sum(1).unsqueeze(1)",
        IMPORTANCE,
    ),
    Mutant(
        "I2",
        "σ = mean (σ² squared: no sqrt)",
        "structural/importance.py",
        "metrics.double().mean(0).clamp_min(1e-300).sqrt()",
        "metrics.double().mean(0).clamp_min(1e-300)",
        IMPORTANCE,
    ),
    Mutant(
        "I3",
        "σ² over the wrong axis (per group, over metrics)",
        "structural/importance.py",
        "metrics.double().mean(0).clamp_min(1e-300).sqrt()",
        "metrics.double().mean(1, keepdim=True).clamp_min(1e-300).sqrt()",
        IMPORTANCE,
    ),
    Mutant(
        "I4",
        "gradient sign dropped: W·|g|",
        "structural/importance.py",
        "part.gather(w.detach().float() * stats.grad[w], bw)",
        "part.gather(w.detach().float() * stats.grad[w].abs(), bw)",
        IMPORTANCE,
    ),
    Mutant(
        "I5",
        "Fisher sums g, not g²",
        "structural/importance.py",
        "fish[p].add_(g * g)",
        "fish[p].add_(g)",
        IMPORTANCE,
    ),
    Mutant(
        "I6",
        "Fisher read as (Σ_b g)² instead of Σ_b g²",
        "structural/importance.py",
        "w.detach().float().square() * stats.fisher[w]",
        "w.detach().float().square() * stats.grad[w].square()",
        IMPORTANCE,
    ),
    Mutant(
        "I7",
        "bias entries left out of a group's W·g",
        "structural/importance.py",
        "bw = None if b is None else b.detach().float() * stats.grad[b]",
        "bw = None",
        IMPORTANCE,
    ),
    Mutant(
        "I8",
        "fused σ per block instead of over the kind's groups in the model",
        "structural/importance.py",
        "scores = importance.combine(metrics).cpu().split(sizes)",
        "scores = [importance.combine(m).cpu() for m in per_layer]",
        IMPORTANCE,
    ),
    # ratios.py
    Mutant(
        "R1",
        "CV with the sample std (n − 1)",
        "structural/ratios.py",
        "s.std(unbiased=False)",
        "s.std()",
        RATIOS,
    ),
    Mutant(
        "R2",
        "skip: last block off by one (keeps none)",
        "structural/ratios.py",
        "i >= n - skip_last",
        "i > n - skip_last",
        RATIOS,
    ),
    Mutant(
        "R3",
        "skip default left at LLaMA-7B's 4 first blocks",
        "structural/saap.py",
        "skip_first: int = 3",
        "skip_first: int = 4",
        RATIOS,
    ),
    Mutant(
        "R4",
        "caps: min_keep floor dropped",
        "structural/ratios.py",
        "g - min_keep",
        "g",
        RATIOS,
    ),
    Mutant(
        "R5",
        "rounding stops a group early (left > unit)",
        "structural/ratios.py",
        "if left > unit / 2:",
        "if left > unit:",
        RATIOS,
    ),
    Mutant(
        "R6",
        "bisection stops after 8 halvings",
        "structural/ratios.py",
        "for _ in range(200):",
        "for _ in range(8):",
        RATIOS,
    ),
    Mutant(
        "R7",
        "reachable budget counts skipped (w = 0) blocks",
        "structural/ratios.py",
        "zip(costs, blocks.caps, weights) if w > 0)",
        "zip(costs, blocks.caps, weights) if w >= 0)",
        RATIOS,
    ),
    Mutant(
        "R8",
        "groups removed ∝ w (not the fraction ∝ w)",
        "structural/ratios.py",
        "min(k * w * g, cap)",
        "min(k * w, cap)",
        RATIOS,
    ),
    Mutant(
        "R9",
        "tie-break: the most important next group goes first",
        "structural/ratios.py",
        "next_score(i), i)",
        "-next_score(i), i)",
        RATIOS,
    ),
    Mutant(
        "R10",
        "rounding never fills a block up to its cap",
        "structural/ratios.py",
        "n[i] + step <= blocks.caps[i]",
        "n[i] + step < blocks.caps[i]",
        RATIOS,
    ),
    # groups.py
    Mutant(
        "G1",
        "one query head per kv group (q rows = head_dim)",
        "structural/groups.py",
        "return _blocks(s.kv_heads, s.per_kv * s.head_dim), _blocks(s.kv_heads, s.head_dim)",
        "return _blocks(s.kv_heads, s.head_dim), _blocks(s.kv_heads, s.head_dim)",
        GROUPS,
    ),
    Mutant(
        "G2",
        "o_proj: rows instead of input columns",
        "structural/groups.py",
        "out = Part(a.output, 1, q)",
        "out = Part(a.output, 0, q)",
        GROUPS,
    ),
    Mutant(
        "G3",
        "fused qkv: v segment at k's offset",
        "structural/groups.py",
        "[q, kv + q_rows, kv + q_rows + kv_rows]",
        "[q, kv + q_rows, kv + q_rows]",
        GROUPS,
    ),
    Mutant(
        "G4",
        "fused qkv: k and v segments swapped",
        "structural/groups.py",
        "[q, kv + q_rows, kv + q_rows + kv_rows]",
        "[q, kv + q_rows + kv_rows, kv + q_rows]",
        GROUPS,
    ),
    Mutant(
        "G5",
        "column gather without the transpose (columns dealt to the wrong groups)",
        "structural/groups.py",
        ".reshape(weight.shape[0], g, m).transpose(0, 1).reshape(g, -1)",
        ".reshape(g, -1)",
        GROUPS,
    ),
    Mutant(
        "G6",
        "group cost without its bias entries",
        "structural/groups.py",
        "return m * linear.in_features + (m if linear.bias is not None else 0)",
        "return m * linear.in_features",
        GROUPS,
    ),
    Mutant(
        "G7",
        "fused gate_up read as interleaved (2j, 2j+1)",
        "structural/groups.py",
        "torch.cat([_column(width), _column(width) + width], 1)",
        "torch.cat([_column(width) * 2, _column(width) * 2 + 1], 1)",
        GROUPS,
    ),
    Mutant(
        "G8",
        "keep without sorting the rows",
        "structural/groups.py",
        "rows = torch.sort(part.index[idx].flatten()).values",
        "rows = part.index[idx].flatten()",
        GROUPS,
    ),
    # saap.py
    Mutant(
        "S1",
        "adaptive CV taken with the fused log σ constant in",
        "structural/saap.py",
        "layer_weights(cfg.ratios, scores, offset,",
        "layer_weights(cfg.ratios, scores, 0.0,",
        SAAP,
    ),
    Mutant(
        "S2",
        "target counts embedding parameters",
        "structural/saap.py",
        "f = cfg.target * non_embedding(model, adapter) / prunable",
        'f = cfg.target * _params(model, adapter)["total"] / prunable',
        SAAP,
    ),
    Mutant(
        "S3",
        "no kv group must stay",
        "structural/saap.py",
        '* step if name == "ffn" else 1',
        '* step if name == "ffn" else 0',
        SAAP,
    ),
    Mutant(
        "S4",
        "min_channels ignored (one step kept)",
        "structural/saap.py",
        "low = math.ceil(cfg.min_channels / step) * step if",
        "low = step if",
        SAAP,
    ),
    Mutant(
        "S5",
        "heads and ffn fractions swapped",
        "structural/saap.py",
        '{"heads": cfg.heads or 0.0, "ffn": cfg.ffn or 0.0}',
        '{"heads": cfg.ffn or 0.0, "ffn": cfg.heads or 0.0}',
        SAAP,
    ),
    Mutant(
        "S6",
        "the highest-scored groups removed",
        "structural/saap.py",
        "select_channels(s.float(), g - r)",
        "select_channels(-s.float(), g - r)",
        SAAP,
    ),
    # recovery: masks.py, lora.py, and where the trainers apply them
    Mutant(
        "M1",
        "mask_grads does nothing",
        "recovery/masks.py",
        "w.grad.mul_(keep.to(w.grad.device))",
        "pass",
        MASKS,
    ),
    Mutant(
        "M2",
        "apply does nothing",
        "recovery/masks.py",
        "w.mul_(keep.to(w.device))",
        "pass",
        MASKS,
    ),
    Mutant(
        "M3",
        "masks recorded for unpruned layers too",
        "recovery/masks.py",
        "if not bool(keep.all()):",
        "if True:",
        MASKS,
    ),
    Mutant(
        "M4",
        "masks address the LoRA wrapper, not its base Linear",
        "recovery/masks.py",
        'getattr(lin, "base", lin)',
        "lin",
        MASKS,
    ),
    Mutant(
        "M5",
        "distillation re-applies masks before the optimiser step",
        "recovery/trainer.py",
        "        self.optimizer.step()\n"
        "        self.optimizer.zero_grad(set_to_none=True)\n"
        "        self.masks.apply(self.student, self.adapter)\n",
        "        self.masks.apply(self.student, self.adapter)\n"
        "        self.optimizer.step()\n"
        "        self.optimizer.zero_grad(set_to_none=True)\n",
        TRAIN,
    ),
    Mutant(
        "M6",
        "distillation with neither mask_grads nor a mask after the step (zeros only at the end)",
        "recovery/trainer.py",
        "        self.masks.mask_grads(self.student, self.adapter)\n"
        "        torch.nn.utils.clip_grad_norm_(self.params, 1.0)\n"
        "        self.optimizer.step()\n"
        "        self.optimizer.zero_grad(set_to_none=True)\n"
        "        self.masks.apply(self.student, self.adapter)\n",
        "        torch.nn.utils.clip_grad_norm_(self.params, 1.0)\n"
        "        self.optimizer.step()\n"
        "        self.optimizer.zero_grad(set_to_none=True)\n",
        TRAIN,
    ),
    Mutant(
        "M7",
        "block reconstruction re-applies masks before the optimiser step",
        "recovery/reconstruct.py",
        "                optimizer.step()\n"
        "                optimizer.zero_grad(set_to_none=True)\n"
        "                masks.apply(model, adapter, only=ctx.index)\n",
        "                masks.apply(model, adapter, only=ctx.index)\n"
        "                optimizer.step()\n"
        "                optimizer.zero_grad(set_to_none=True)\n",
        TRAIN,
    ),
    Mutant(
        "M8",
        "block reconstruction with neither mask_grads nor a mask after the step (zeros at block end)",
        "recovery/reconstruct.py",
        "                masks.mask_grads(model, adapter, only=ctx.index)\n"
        "                optimizer.step()\n"
        "                optimizer.zero_grad(set_to_none=True)\n"
        "                masks.apply(model, adapter, only=ctx.index)\n",
        "                optimizer.step()\n                optimizer.zero_grad(set_to_none=True)\n",
        TRAIN,
    ),
    Mutant(
        "L1",
        "LoRA merge without the mask",
        "recovery/lora.py",
        "self.base.weight += self.delta().to(self.base.weight.dtype)",
        "self.base.weight += (self.lora_B @ self.lora_A * self.scale).to(self.base.weight.dtype)",
        MASKS,
    ),
    Mutant(
        "L2",
        "LoRA forward without the mask (merge still masked)",
        "recovery/lora.py",
        "F.linear(x, self.base.weight + self.delta(), self.base.bias)",
        "F.linear(x, self.base.weight + (self.lora_B @ self.lora_A) * self.scale, self.base.bias)",
        MASKS,
    ),
    Mutant(
        "L3",
        "LoRA B initialised to ones (a fresh adapter changes the model)",
        "recovery/lora.py",
        "self.lora_B = nn.Parameter(torch.zeros(",
        "self.lora_B = nn.Parameter(torch.ones(",
        MASKS,
    ),
    Mutant(
        "L4",
        "attach_lora drops the keep masks",
        "recovery/lora.py",
        "MaskedLoRALinear(lin, rank, alpha, keeps.get(key))",
        "MaskedLoRALinear(lin, rank, alpha, None)",
        MASKS,
    ),
]


def run(m: Mutant, work: Path) -> tuple[str, str, float]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__"))
    path = work / "src" / "prunekit" / m.file
    text = path.read_text()
    if text.count(m.old) != 1:
        raise SystemExit(f"{m.id}: the edit's text occurs {text.count(m.old)} times in {m.file}")
    path.write_text(text.replace(m.old, m.new))
    env = {**os.environ, "PYTHONPATH": str(work / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    where = subprocess.run(
        [PY, "-c", "import prunekit; print(prunekit.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not where.startswith(str(work)):
        raise SystemExit(f"{m.id}: prunekit imported from {where}, not the copy")
    start = time.time()
    cmd = ["nice", "-n", "19", PY, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *m.tests]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.time() - start
    if out.returncode == 0:
        return "SURVIVED", "", seconds
    failed = [ln for ln in out.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
    return "KILLED", (failed[0] if failed else out.stdout.strip().splitlines()[-1]), seconds


def main(argv: list[str]) -> int:
    if argv[:1] == ["--list"]:
        for m in MUTANTS:
            print(f"{m.id}\t{m.file}\t{m.old!r} → {m.new!r}")
        return 0
    chosen = [m for m in MUTANTS if not argv or m.id in argv]
    work = Path(os.environ.get("MUTANT_DIR", "/tmp/mutH"))
    for m in chosen:
        verdict, detail, seconds = run(m, work)
        print(f"{m.id}\t{verdict}\t{seconds:.0f}s\t{m.what}\t{detail}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
