"""A model folder whose config.json and weights disagree is refused with one line (issue 31,
item 8): every weight the config implies must be in the files and no file weight unused, so a
config claiming more layers never yields random ones. Damaged JSON files are one line too (item 7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from prunekit.errors import PrunekitError
from prunekit.models.loading import load_model


@pytest.fixture
def model_dir(tmp_path, tiny_model_dir) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


def _set_config(folder: Path, **fields) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config))


def _edit_weights(folder: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def test_the_untouched_folder_loads(model_dir):
    assert load_model(model_dir).info["num_layers"] == 3


@pytest.mark.parametrize(
    ("layers", "needle"),
    [(5, "no weights for layer(s) 3-4"), (2, "weights for layer(s) 2 it does not describe")],
)
def test_a_config_with_another_layer_count_is_refused(model_dir, layers, needle):
    _set_config(model_dir, num_hidden_layers=layers)
    with pytest.raises(PrunekitError) as err:
        load_model(model_dir)
    assert f"config.json says {layers} layers but the weights hold 3" in str(err.value)
    assert needle in str(err.value)


def test_a_missing_weight_is_refused(model_dir):
    _edit_weights(model_dir, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(PrunekitError, match=r"missing: model\.layers\.1\.mlp\.up_proj\.weight"):
        load_model(model_dir)


def test_an_unexpected_weight_is_refused(model_dir):
    _edit_weights(model_dir, lambda t: t.update({"model.extra.weight": torch.zeros(4)}))
    with pytest.raises(PrunekitError, match=r"unexpected: model\.extra\.weight"):
        load_model(model_dir)


def test_tied_embeddings_need_no_lm_head(tmp_path):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from conftest import TINY, _train_tokenizer

    tokenizer = _train_tokenizer()
    config = LlamaConfig(**{**TINY, "vocab_size": len(tokenizer), "tie_word_embeddings": True})
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "tied")
    tokenizer.save_pretrained(tmp_path / "tied")
    assert load_model(tmp_path / "tied").info["num_layers"] == 3


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("config.json", '{"model_type": "llama", ', "config.json' is not readable JSON"),
        ("config.json", "[1, 2]", "is not a model config"),
        ("config.json", '{"model_type": "llama", "num_hidden_layers": -1}', "positive whole"),
        ("tokenizer.json", '{"version": "1.0", "model": ', "tokenizer.json' is not readable JSON"),
        ("tokenizer_config.json", "\xff\xfe garbage", "tokenizer_config.json' is not readable"),
    ],
)
def test_damaged_json_files_are_one_line(model_dir, name, content, needle):
    (model_dir / name).write_text(content, encoding="latin-1")
    with pytest.raises(PrunekitError) as err:
        load_model(model_dir)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_config_transformers_rejects_is_one_line(model_dir):
    _set_config(model_dir, model_type="no-such-architecture")
    with pytest.raises(PrunekitError, match="is not a usable model config"):
        load_model(model_dir)
