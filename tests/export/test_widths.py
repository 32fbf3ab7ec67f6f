"""Per-layer widths: read from shapes, exported, and reloaded by prunekit (without running the
checkpoint's modeling file); uniform widths stay the plain stock family."""

from __future__ import annotations

import json

import pytest
import torch
from hetero_helpers import (
    FAMILIES,
    hetero_model,
    make_hetero,
    masked_dense,
    tiny_family_model,
    uniform_plan,
)

import prunekit
from prunekit.errors import PrunekitError
from prunekit.export import modeling_prunekit_widths as modeling
from prunekit.export.checkpoint import save_checkpoint
from prunekit.export.per_layer import MODELING_FILE, MODELING_SOURCE
from prunekit.export.widths import LAYER_KEYS, LayerWidths, is_uniform, layer_widths

IDS = torch.tensor(
    [[5, 17, 3, 99, 42, 8, 61, 7, 120, 33, 2, 64], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]
)


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def greedy(model: torch.nn.Module, use_cache: bool = True) -> torch.Tensor:
    return model.generate(
        IDS[:1],
        attention_mask=torch.ones_like(IDS[:1]),
        max_new_tokens=6,
        do_sample=False,
        use_cache=use_cache,
        pad_token_id=0,
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_widths_are_read_from_the_weights(family):
    dense = tiny_family_model(family)
    assert is_uniform(layer_widths(dense))
    model, _ = hetero_model(family)
    widths = layer_widths(model)
    assert widths[:3] == [LayerWidths(2, 1, 64), LayerWidths(4, 2, 42), LayerWidths(2, 1, 40)]
    assert all(w == LayerWidths(4, 2, 64) for w in widths[3:])  # gemma3's fourth layer: untouched
    assert not is_uniform(widths)


@pytest.mark.parametrize("family", FAMILIES)
def test_hetero_model_computes_the_masked_dense_model(family):
    """The test helper really removes whole kv groups and channels (reference for the exports)."""
    model, plan = hetero_model(family)
    reference = masked_dense(tiny_family_model(family), plan)
    torch.testing.assert_close(logits(model), logits(reference), atol=1e-5, rtol=0)
    assert torch.equal(greedy(model), greedy(model, use_cache=False))  # KV cache at these widths


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)  # load_model wants one in the folder


@pytest.mark.parametrize("family", FAMILIES)
def test_per_layer_export_reloads_in_prunekit_without_its_modeling_file(
    family, tmp_path, tokenizer
):
    model, _ = hetero_model(family)
    out = tmp_path / family
    save_checkpoint(model, tokenizer, out)
    config = json.loads((out / "config.json").read_text())
    widths = layer_widths(model)
    assert config["layer_num_attention_heads"] == [w.heads for w in widths]
    assert config["layer_num_key_value_heads"] == [w.kv_heads for w in widths]
    assert config["layer_intermediate_sizes"] == [w.mlp for w in widths]
    assert config["model_type"] == model.config.model_type
    stock = type(model).__name__  # e.g. LlamaForCausalLM
    assert config["auto_map"] == {
        "AutoModelForCausalLM": f"modeling_prunekit_widths.Prunekit{stock}"
    }
    assert getattr(modeling, f"Prunekit{stock}").__mro__[2] is type(model)
    assert config["layer_modules"] == {"attention": "self_attn", "mlp": "mlp"}
    assert (out / MODELING_FILE).read_text() == MODELING_SOURCE.read_text()
    # prunekit must not run the folder's code: a file that would fail on import changes nothing
    (out / MODELING_FILE).write_text("raise RuntimeError('checkpoint code was executed')\n")

    loaded = prunekit.load_model(out).model
    assert layer_widths(loaded) == widths
    torch.testing.assert_close(logits(loaded), logits(model), atol=1e-5, rtol=0)
    assert torch.equal(greedy(loaded), greedy(model))
    impls = {layer.self_attn.config._attn_implementation for layer in loaded.model.layers}
    assert impls == {loaded.config._attn_implementation} == {"sdpa"}

    again = tmp_path / "again"  # a reloaded student exports the same way (stock architectures)
    save_checkpoint(loaded, tokenizer, again)
    assert json.loads((again / "config.json").read_text()) == config


@pytest.mark.parametrize("family", FAMILIES)
def test_uniform_export_is_the_stock_family(family, tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_family_model(family)
    make_hetero(model, uniform_plan(model))
    assert is_uniform(layer_widths(model))
    out = tmp_path / family
    save_checkpoint(model, None, out)
    config = json.loads((out / "config.json").read_text())
    assert "auto_map" not in config and not list(out.glob("*.py"))
    assert not set(LAYER_KEYS.values()) & set(config)
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (2, 1)
    assert config["intermediate_size"] == 48 and config["head_dim"] == 8
    reloaded = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=False).eval()
    assert type(reloaded).__module__.startswith("transformers.models.")
    torch.testing.assert_close(logits(reloaded), logits(model), atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_unpruned_export_writes_the_config_save_pretrained_writes(family, tmp_path):
    model = tiny_family_model(family)
    save_checkpoint(model, None, tmp_path / "ours")
    model.save_pretrained(tmp_path / "plain")
    ours, plain = (
        json.loads((tmp_path / d / "config.json").read_text()) for d in ("ours", "plain")
    )
    assert ours == plain


def test_layer_keys_match_the_modeling_file():
    assert LAYER_KEYS == modeling.LAYER_KEYS


@pytest.fixture(scope="module")
def llama_export(tmp_path_factory, tokenizer):
    model, _ = hetero_model("llama")
    out = tmp_path_factory.mktemp("hetero") / "llama"
    save_checkpoint(model, tokenizer, out)
    return out


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("layer_intermediate_sizes", [64, 64, 40], "contradict the weights: model.layers.1.mlp"),
        (
            "layer_num_key_value_heads",
            [1, 1, 1],
            "contradict the weights: model.layers.1.self_attn",
        ),
        ("layer_num_attention_heads", [2, 4], "must list one width per layer (3)"),
    ],
)
def test_lists_that_contradict_the_weights_are_refused_in_one_line(
    llama_export, tmp_path, key, value, message
):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(llama_export, bad)
    config = json.loads((bad / "config.json").read_text())
    config[key] = value
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(PrunekitError) as err:
        prunekit.load_model(bad)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_tied_embeddings_and_attention_switches_follow_the_per_layer_model(tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from conftest import TINY

    torch.manual_seed(0)
    config = LlamaConfig(**{**TINY, "tie_word_embeddings": True})
    model = AutoModelForCausalLM.from_config(config).eval()
    make_hetero(model)
    save_checkpoint(model, tokenizer, tmp_path / "tied")
    loaded = prunekit.load_model(tmp_path / "tied").model
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    loaded.set_attn_implementation("eager")
    assert {layer.self_attn.config._attn_implementation for layer in loaded.model.layers} == {
        "eager"
    }
    torch.testing.assert_close(logits(loaded), logits(model), atol=1e-5, rtol=0)
