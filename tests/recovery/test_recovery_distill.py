"""Distillation on tiny models: zeros stay zero, the loss falls, resume equals an uninterrupted run."""

import json
import sys

import pytest
import torch
from recovery_helpers import config, load_pair, magnitude_prune, text_jsonl

from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.recovery.data import Sample, TrainingData
from prunekit.recovery.lora import MaskedLoRALinear
from prunekit.recovery.masks import SparsityMasks
from prunekit.recovery.run import recover
from prunekit.recovery.state import latest_state
from prunekit.recovery.trainable import select_trainable
from prunekit.recovery.trainer import Distiller


@pytest.mark.parametrize("train", ["norms", "lora", "full"])
@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_pruned_weights_stay_exactly_zero(tiny_model_dir, tmp_path, train, nm):
    teacher, student, tok = load_pair(tiny_model_dir)
    magnitude_prune(student, 0.5, nm)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    result = recover(
        student,
        tok,
        teacher,
        tok,
        config(data=str(text_jsonl(tmp_path)), train=train, lr=1e-2, max_steps=3),
        progress=False,
    )
    masks = result.report["masks"]
    assert masks["pruned_weights_still_zero"] and masks["pruned_weights"] > 0
    assert masks.get("pattern_valid", True) and (masks.get("pattern") == "2:4") == (nm is not None)
    after = student.state_dict()
    assert set(after) == set(before)  # LoRA merged away: the same tensors as before
    for name, w in before.items():
        if name.endswith("proj.weight"):
            assert torch.equal(after[name][w == 0], w[w == 0])
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert changed, "training changed nothing"
    if train == "norms":
        assert all("norm" in n or n.endswith(".bias") for n in changed)


def _peaky_teacher(path):
    """A teacher the student clearly disagrees with, in a way its trainable norms can learn."""
    teacher, student, tok = load_pair(path)
    with torch.no_grad():
        teacher.model.norm.weight.mul_(2.0)
    return teacher, student, tok


def test_loss_decreases_on_a_toy_task(tiny_model_dir, tmp_path):
    teacher, student, tok = _peaky_teacher(tiny_model_dir)
    magnitude_prune(student, 0.5)
    cfg = config(
        data=str(text_jsonl(tmp_path)), train="norms", lr=5e-2, max_steps=30, warmup_steps=2
    )
    log = recover(student, tok, teacher, tok, cfg, progress=False).log
    first, last = sum(log.losses[:3]) / 3, sum(log.losses[-3:]) / 3
    assert last < 0.3 * first


def test_resume_gives_the_same_result_as_an_uninterrupted_run(
    tiny_model_dir, tmp_path, monkeypatch
):
    cfg = config(
        data=str(text_jsonl(tmp_path)), train="lora", lr=1e-2, max_steps=6, checkpoint_every=3
    )
    teacher, full, tok = _peaky_teacher(tiny_model_dir)
    magnitude_prune(full, 0.5)
    recover(full, tok, teacher, tok, cfg, progress=False)

    state = tmp_path / "state"
    step = Distiller._step

    def killed_at_4(self, data, n):
        if n == 4:
            raise KeyboardInterrupt
        return step(self, data, n)

    _, part, _ = _peaky_teacher(tiny_model_dir)
    magnitude_prune(part, 0.5)
    monkeypatch.setattr(Distiller, "_step", killed_at_4)
    with pytest.raises(KeyboardInterrupt):
        recover(part, tok, teacher, tok, cfg, progress=False, state_dir=state)
    monkeypatch.setattr(Distiller, "_step", step)
    assert json.loads((latest_state(state) / "state.json").read_text())["step"] == 3
    _, resumed, _ = _peaky_teacher(tiny_model_dir)
    magnitude_prune(resumed, 0.5)
    result = recover(resumed, tok, teacher, tok, cfg, progress=False, state_dir=state, resume=True)
    assert result.log.resumed_from == 3 and result.log.steps == 6
    for (n, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n


def _bf16_distiller(tiny_model_dir, max_steps: int):
    """A half-pruned student's full-training Distiller with bf16 asked for, and its data."""
    teacher, student, tok = _peaky_teacher(tiny_model_dir)
    magnitude_prune(student, 0.5)
    adapter = adapter_for(student)
    masks = SparsityMasks.from_model(student, adapter)
    cfg = config(train="full", bf16=True, lr=1e-3, max_steps=max_steps)
    params = select_trainable(student, adapter, "full", masks)
    d = Distiller(student, teacher, adapter, params, masks, None, cfg, torch.device("cpu"), 0)
    data = TrainingData([Sample(list(range(1, 30)), [1.0] * 29) for _ in range(4)])
    return student, d, data


def test_bf16_compute_keeps_float32_masters(tiny_model_dir, monkeypatch):
    monkeypatch.setattr("prunekit.recovery.trainer.auto_dtype", lambda device: "bfloat16")
    student, d, data = _bf16_distiller(tiny_model_dir, max_steps=2)
    log = d.train(data, progress=False)
    assert all(p.dtype == torch.float32 for p in student.parameters())
    assert next(d.compute.parameters()).dtype == torch.bfloat16
    assert log.as_dict()["compute_dtype"] == "bfloat16"
    live = dict(d.compute.named_parameters())
    for name, p in d.named.items():
        assert torch.equal(live[name], p.to(torch.bfloat16))


def test_bf16_is_not_emulated_on_a_cpu_without_it(tiny_model_dir, monkeypatch):
    """Without native bfloat16 (no avx512_bf16 / AMX) the forwards stay float32, and say so."""
    monkeypatch.setattr("prunekit.recovery.trainer.auto_dtype", lambda device: "float32")
    student, d, data = _bf16_distiller(tiny_model_dir, max_steps=1)
    assert d.compute is student
    assert d.train(data, progress=False).as_dict()["compute_dtype"] == "float32"


def _effective_weights(student, adapter) -> dict[str, torch.Tensor]:
    """Each decoder Linear's weight as the forward uses it (base + masked LoRA update)."""
    out = {}
    for i, layer in enumerate(adapter.layers(student)):
        for name, lin in adapter.linears(layer).items():
            w = lin.base.weight + lin.delta() if isinstance(lin, MaskedLoRALinear) else lin.weight
            out[f"layers.{i}.{name}"] = w.detach().clone()
    return out


@pytest.mark.parametrize("train", ["full", "lora"])
def test_pruned_weights_are_zero_after_every_step_without_the_final_reapply(tiny_model_dir, train):
    """The Distiller alone (no `recover`, whose last act re-applies the masks before verifying):
    a pruned weight that a step moved, zeroed only at the end, would show here."""
    teacher, student, _ = _peaky_teacher(tiny_model_dir)
    magnitude_prune(student, 0.5)
    adapter = adapter_for(student)
    masks = SparsityMasks.from_model(student, adapter)
    params = select_trainable(student, adapter, train, masks)
    cfg = config(train=train, lr=1e-2, max_steps=2)
    d = Distiller(student, teacher, adapter, params, masks, None, cfg, torch.device("cpu"), 0)
    data = TrainingData([Sample(list(range(1, 30)), [1.0] * 29) for _ in range(4)])
    start = _effective_weights(student, adapter)
    for step in range(2):
        d._step(data, step)
        weights = _effective_weights(student, adapter)
        for key, keep in masks.keeps.items():
            assert not bool(weights[key][~keep].any()), (step, key)
    assert any(not torch.equal(w, start[k]) for k, w in weights.items()), "nothing trained"


def test_a_pruned_weight_that_training_revived_fails_the_run(tiny_model_dir, tmp_path, monkeypatch):
    """The report's zero check sees what training left: with the trainer's per-step masking
    disabled, recovery must refuse (it used to re-apply the masks just before checking them)."""
    teacher, student, tok = load_pair(tiny_model_dir)
    magnitude_prune(student, 0.5)
    real_apply = SparsityMasks.apply

    def apply_outside_the_trainer(self, *args, **kwargs):
        if not sys._getframe(1).f_code.co_filename.endswith("trainer.py"):
            real_apply(self, *args, **kwargs)

    monkeypatch.setattr(SparsityMasks, "mask_grads", lambda *a, **k: None)
    monkeypatch.setattr(SparsityMasks, "apply", apply_outside_the_trainer)
    cfg = config(data=str(text_jsonl(tmp_path)), train="full", lr=1e-2, max_steps=2)
    with pytest.raises(PrunekitError, match="became non-zero"):
        recover(student, tok, teacher, tok, cfg, progress=False)
