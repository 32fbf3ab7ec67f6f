"""Block-wise reconstruction of depth- and vocabulary-pruned students: each student layer is lined
up with the teacher layer it was cut from, and its targets are the teacher's own hidden states after
the removed layers it stands for (checked against a full teacher forward)."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
import torch
from recovery_helpers import config, load_pair

from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.recovery import reconstruct as reconstruct_mod
from prunekit.recovery.lineup import layer_sources, teacher_groups
from prunekit.recovery.run import pruned_layers, recover
from prunekit.structural.depth import remove_layers
from prunekit.structural.groups import ChannelGroups
from prunekit.structural.vocabulary import prune_vocabulary


def test_groups_cover_every_teacher_layer_once():
    assert teacher_groups([0, 2], 3) == [range(0, 2), range(2, 3)]
    assert teacher_groups([1, 2], 3) == [range(0, 2), range(2, 3)]  # layer 0 removed
    assert teacher_groups([0, 1], 4) == [range(0, 1), range(1, 4)]  # the last two removed
    assert teacher_groups([0, 1, 2], 3) == [range(0, 1), range(1, 2), range(2, 3)]


@pytest.mark.parametrize("drop", [[0], [1], [2]])
def test_student_layers_are_found_by_their_weights(tiny_model_dir, drop):
    teacher, student, _ = load_pair(tiny_model_dir)
    adapter = adapter_for(student)
    remove_layers(student, adapter, drop)
    kept = [i for i in range(3) if i not in drop]
    assert layer_sources(student, teacher, adapter) == kept
    # narrower and sparser layers still line up
    ChannelGroups(adapter).keep(adapter.layers(student)[0], torch.arange(8))
    with torch.no_grad():
        adapter.linears(adapter.layers(student)[1])["self_attn.q_proj"].weight[:, ::2] = 0
    assert layer_sources(student, teacher, adapter) == kept
    assert pruned_layers(student, teacher, adapter) == [0, 1]


def test_a_trained_layer_matches_nothing(tiny_model_dir):
    teacher, student, _ = load_pair(tiny_model_dir)
    adapter = adapter_for(student)
    with torch.no_grad():
        adapter.layers(student)[1].input_layernorm.weight.add_(0.01)
    with pytest.raises(PrunekitError, match="student layer 1 matches no teacher layer"):
        layer_sources(student, teacher, adapter)


def test_only_the_layer_standing_for_a_removed_one_counts_as_pruned(tiny_model_dir):
    teacher, student, _ = load_pair(tiny_model_dir)
    adapter = adapter_for(student)
    remove_layers(student, adapter, [1])
    assert pruned_layers(student, teacher, adapter) == [0]  # layer 0 now stands for 0 and 1


def _targets(monkeypatch) -> dict[int, list[torch.Tensor]]:
    seen: dict[int, list[torch.Tensor]] = {}

    def spy(model, adapter, ctx, targets, masks, cfg, log):
        seen[ctx.index] = [t.clone() for t in targets]

    monkeypatch.setattr(reconstruct_mod, "_train_block", spy)
    return seen


def test_depth_student_targets_are_the_teachers_hidden_states(tiny_model_dir, monkeypatch):
    teacher, student, tok = load_pair(tiny_model_dir)
    remove_layers(student, adapter_for(student), [1])
    seen = _targets(monkeypatch)
    cfg = config(method="reconstruct", windows=2, data="python")
    recover(student, tok, teacher, tok, cfg, progress=False)
    ids = torch.tensor([s for s in _windows(tok, 2)])
    with torch.no_grad():
        hidden = teacher(ids, output_hidden_states=True).hidden_states
    # block 0 stands for teacher layers 0 and 1, block 1 for layer 2 (the last hidden state has the
    # final norm applied, so layer 2's raw output is compared through the norm)
    torch.testing.assert_close(torch.cat(seen[0]), hidden[2], rtol=1e-4, atol=1e-5)
    final = teacher.model.norm(torch.cat(seen[1]))
    torch.testing.assert_close(final, hidden[3], rtol=1e-4, atol=1e-5)


def _windows(tok, n: int) -> list[list[int]]:
    """The recovery data's corpus windows for config(windows=n, seq_len=64) on 'python'."""
    from prunekit.recovery.data import build_training_data

    data = build_training_data("python", tok, seq_len=64, windows=n, instructions=0, seed=0)
    return [s.ids for s in data.samples]


def test_vocabulary_student_targets_use_the_teachers_own_ids(tiny_model_dir, monkeypatch):
    teacher, student, tok = load_pair(tiny_model_dir)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [(stdlib / "bisect.py").read_text()]
    new_tok, _ = prune_vocabulary(student, tok, adapter_for(student), texts)
    assert len(new_tok) < len(tok)
    remove_layers(student, adapter_for(student), [2])
    seen = _targets(monkeypatch)
    cfg = config(method="reconstruct", windows=2, data=str(stdlib / "bisect.py"))
    recover(student, new_tok, teacher, tok, cfg, progress=False)
    from prunekit.recovery.data import build_training_data

    data = build_training_data(cfg.data, new_tok, seq_len=64, windows=2, instructions=0, seed=0)
    text_ids = [
        tok(new_tok.decode(s.ids), add_special_tokens=False).input_ids for s in data.samples
    ]
    ids = torch.tensor(text_ids)  # the same text, tokenized by the teacher
    with torch.no_grad():
        hidden = teacher(ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(torch.cat(seen[0]), hidden[1], rtol=1e-4, atol=1e-5)
    final = teacher.model.norm(torch.cat(seen[1]))  # block 1 stands for teacher layers 1 and 2
    torch.testing.assert_close(final, hidden[3], rtol=1e-4, atol=1e-5)


def test_reconstruction_brings_a_depth_student_closer_to_its_teacher(tiny_model_dir):
    teacher, student, tok = load_pair(tiny_model_dir)
    remove_layers(student, adapter_for(student), [1])
    ids = torch.tensor(_windows(tok, 2))
    with torch.no_grad():
        want = teacher(ids, output_hidden_states=True).hidden_states[-1]
        before = (student(ids, output_hidden_states=True).hidden_states[-1] - want).pow(2).mean()
    cfg = config(method="reconstruct", windows=2, lr=1e-2, epochs=20, layers="pruned")
    result = recover(student, tok, teacher, tok, cfg, progress=False)
    assert result.report["trained_layers"] == [0]
    block = result.report["training"]["blocks"]["0"]
    assert block["mse_after"] < block["mse_before"]
    with torch.no_grad():
        after = (student(ids, output_hidden_states=True).hidden_states[-1] - want).pow(2).mean()
    assert after < 0.5 * before, (float(before), float(after))


def test_reconstruct_cuts_instructions_into_windows(tiny_model_dir):
    from prunekit.recovery.data import build_training_data
    from prunekit.recovery.run import _window_parts

    teacher, student, tok = load_pair(tiny_model_dir)
    assert (
        _window_parts("instruct:python,answered:python,x.jsonl,python") == "instruct:python,python"
    )
    with pytest.raises(PrunekitError, match="equal-length windows"):
        _window_parts("answered:python")
    data = build_training_data(
        "instruct:python", tok, seq_len=48, windows=3, instructions=0, seed=0, windows_only=True
    )
    assert [len(s.ids) for s in data.samples] == [48, 48, 48]
    from prunekit.data.sources import resolve_source

    docs = "\n\n".join(resolve_source("instruct:python", "calib").documents(tok))
    pieces = [t for s in data.samples for t in tok.decode(s.ids).split("\n\n") if t.strip()]
    assert pieces and all(t in docs for t in pieces)  # cut from the instructions only
    remove_layers(student, adapter_for(student), [1])
    cfg = config(method="reconstruct", windows=2, data="instruct:python", layers="pruned")
    result = recover(student, tok, teacher, tok, cfg, progress=False)
    assert result.report["data"]["sources"]["instruct:python"]["samples"] == 2
