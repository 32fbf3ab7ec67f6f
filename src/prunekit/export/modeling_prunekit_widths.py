"""Stock transformers decoders whose layers have their own head counts and MLP widths.

Written by prunekit next to a pruned checkpoint whose layers differ in width. config.json keeps
the stock `model_type` (every other setting means what it means there) and adds three lists,
one entry per layer: `layer_num_attention_heads`, `layer_num_key_value_heads`,
`layer_intermediate_sizes`; `head_dim` is written explicitly, and `layer_modules` names each
layer's attention and MLP modules. `auto_map` names `Prunekit<StockClass>` (e.g.
`PrunekitLlamaForCausalLM`): this module makes that class on first use from the stock class of
that name, so any family works without a class written for it, and

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

builds the stock model, then rebuilds each layer's attention and MLP with the family's own
classes (attention: `(config, layer_idx)`, MLP: `(config)`) from a per-layer copy of the config,
before the weights load. Only the shapes change; the forward, KV cache, attention kernels (sdpa,
flash) and generate() are the stock ones. Needs only torch and transformers.
"""

from __future__ import annotations

import copy
import functools

import transformers

PREFIX = "Prunekit"
LAYER_KEYS = {
    "num_attention_heads": "layer_num_attention_heads",
    "num_key_value_heads": "layer_num_key_value_heads",
    "intermediate_size": "layer_intermediate_sizes",
}
LAYER_MODULES = {"attention": "self_attn", "mlp": "mlp"}  # when config.json names none


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


def layer_modules(config) -> tuple[str, str]:
    """The names of a layer's attention and MLP modules (config.json's `layer_modules`)."""
    names = {**LAYER_MODULES, **(getattr(config, "layer_modules", None) or {})}
    return names["attention"], names["mlp"]


def resize_layers(model, config) -> None:
    """Rebuild every decoder layer's attention and MLP at that layer's widths (stock classes)."""
    attention, mlp = layer_modules(config)
    for index, layer in enumerate(model.model.layers):
        cfg = layer_config(config, index)
        setattr(layer, attention, type(getattr(layer, attention))(config=cfg, layer_idx=index))
        setattr(layer, mlp, type(getattr(layer, mlp))(cfg))


class PerLayerWidthsMixin:
    """Builds the stock model, then gives each layer its widths from the config's lists."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        resize_layers(self, self.config)

    def set_attn_implementation(self, *args, **kwargs):
        """Keep the per-layer config copies on the model's attention implementation."""
        super().set_attn_implementation(*args, **kwargs)
        for layer in self.model.layers:
            for name in layer_modules(self.config):
                module = getattr(layer, name)
                if getattr(module, "config", None) is not None:
                    module.config._attn_implementation = self.config._attn_implementation


@functools.cache
def per_layer_class(stock: type) -> type:
    """`Prunekit<Stock>`: the stock causal-LM class with per-layer widths (one class per stock)."""
    name = PREFIX + stock.__name__
    return type(name, (PerLayerWidthsMixin, stock), {"__module__": __name__, "__qualname__": name})


def __getattr__(name: str) -> type:
    """`Prunekit<Stock>` for any stock transformers model class `<Stock>` (what auto_map names)."""
    stock = getattr(transformers, name[len(PREFIX) :], None) if name.startswith(PREFIX) else None
    if isinstance(stock, type) and issubclass(stock, transformers.PreTrainedModel):
        return per_layer_class(stock)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
