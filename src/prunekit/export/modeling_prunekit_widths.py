"""Stock transformers decoders whose layers have their own head counts and MLP widths.

Written by prunekit next to a pruned checkpoint whose layers differ in width. config.json keeps
the stock `model_type` (every other setting means what it means there) and adds three lists,
one entry per layer: `layer_num_attention_heads`, `layer_num_key_value_heads`,
`layer_intermediate_sizes`; `head_dim` is written explicitly. `auto_map` names the class below
for the checkpoint's family, so

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

builds the stock model, then rebuilds each layer's attention and MLP with the family's own
classes from a per-layer copy of the config, before the weights load. Only the shapes change;
the forward, KV cache, attention kernels (sdpa, flash) and generate() are the stock ones.
Needs only torch and transformers.
"""

from __future__ import annotations

import copy

from transformers import (
    Gemma3ForCausalLM,
    GraniteForCausalLM,
    LlamaForCausalLM,
    MistralForCausalLM,
    Phi3ForCausalLM,
    Qwen2ForCausalLM,
    Qwen3ForCausalLM,
    Starcoder2ForCausalLM,
)

LAYER_KEYS = {
    "num_attention_heads": "layer_num_attention_heads",
    "num_key_value_heads": "layer_num_key_value_heads",
    "intermediate_size": "layer_intermediate_sizes",
}


def layer_config(config, index: int):
    """A shallow copy of `config` carrying layer `index`'s head counts and MLP width."""
    layer = copy.copy(config)
    for key, list_key in LAYER_KEYS.items():
        values = getattr(config, list_key)
        if len(values) != config.num_hidden_layers:
            raise ValueError(
                f"{list_key} has {len(values)} entries for {config.num_hidden_layers} layers"
            )
        setattr(layer, key, int(values[index]))
    layer.head_dim = config.head_dim  # never re-derived from hidden_size / heads
    return layer


def resize_layers(model, config) -> None:
    """Rebuild every decoder layer's attention and MLP at that layer's widths (stock classes)."""
    for index, layer in enumerate(model.model.layers):
        cfg = layer_config(config, index)
        layer.self_attn = type(layer.self_attn)(config=cfg, layer_idx=index)
        layer.mlp = type(layer.mlp)(cfg)


class PerLayerWidthsMixin:
    """Builds the stock model, then gives each layer its widths from the config's lists."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        resize_layers(self, self.config)

    def set_attn_implementation(self, *args, **kwargs):
        """Keep the per-layer config copies on the model's attention implementation."""
        super().set_attn_implementation(*args, **kwargs)
        for layer in self.model.layers:
            for module in (layer.self_attn, layer.mlp):
                if getattr(module, "config", None) is not None:
                    module.config._attn_implementation = self.config._attn_implementation


class PrunekitLlamaForCausalLM(PerLayerWidthsMixin, LlamaForCausalLM):
    pass


class PrunekitQwen2ForCausalLM(PerLayerWidthsMixin, Qwen2ForCausalLM):
    pass


class PrunekitQwen3ForCausalLM(PerLayerWidthsMixin, Qwen3ForCausalLM):
    pass


class PrunekitMistralForCausalLM(PerLayerWidthsMixin, MistralForCausalLM):
    pass


class PrunekitGemma3ForCausalLM(PerLayerWidthsMixin, Gemma3ForCausalLM):
    pass


class PrunekitStarcoder2ForCausalLM(PerLayerWidthsMixin, Starcoder2ForCausalLM):
    pass


class PrunekitPhi3ForCausalLM(PerLayerWidthsMixin, Phi3ForCausalLM):
    pass


class PrunekitGraniteForCausalLM(PerLayerWidthsMixin, GraniteForCausalLM):
    pass


CLASSES = {
    "llama": PrunekitLlamaForCausalLM,
    "qwen2": PrunekitQwen2ForCausalLM,
    "qwen3": PrunekitQwen3ForCausalLM,
    "mistral": PrunekitMistralForCausalLM,
    "gemma3_text": PrunekitGemma3ForCausalLM,
    "starcoder2": PrunekitStarcoder2ForCausalLM,
    "phi3": PrunekitPhi3ForCausalLM,
    "granite": PrunekitGraniteForCausalLM,
}
