"""One adapter per model family: where the decoder layers live and which role each Linear plays.

Algorithms ask the adapter for roles (attention input/output, MLP input/output, head counts,
logit post-processing); none hard-codes `model.model.layers` or a projection's name.
Adding a family = one `DecoderAdapter(...)` entry in `FAMILIES` and its tiny config in
tests/models/tiny_families.py (the contract test runs every adapter through the same checks);
per-layer-width exports follow from the entry (export/modeling_prunekit_widths.py makes the
family's class from its stock one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunekit.config.registry import Registry
from prunekit.errors import PrunekitError
from prunekit.models.roles import GATED, LLAMA_ATTENTION, AttentionRoles, MlpRoles


@dataclass(frozen=True)
class DecoderAdapter:
    """A decoder `model.model.{embed_tokens,layers,norm}` + `model.lm_head`, with its blocks' roles."""

    family: str
    model_types: tuple[str, ...]
    attention: AttentionRoles = LLAMA_ATTENTION
    mlp: MlpRoles = GATED
    final_softcap_attr: str | None = None  # config field: logits = tanh(l / cap) · cap
    logits_divisor_attr: str | None = None  # config field: logits = l / divisor (Granite)

    @property
    def name(self) -> str:
        """The family's name in `FAMILIES`."""
        return self.family

    def decoder(self, model: nn.Module) -> nn.Module:
        return model.model

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return self.decoder(model).layers

    def embed_tokens(self, model: nn.Module) -> nn.Embedding:
        return self.decoder(model).embed_tokens

    def final_norm(self, model: nn.Module) -> nn.Module:
        return self.decoder(model).norm

    def lm_head(self, model: nn.Module) -> nn.Linear:
        return model.lm_head

    def linear_names(self) -> tuple[str, ...]:
        """Every prunable Linear of a block, in forward order."""
        a, m = self.attention, self.mlp
        return (*a.inputs, a.output, *m.inputs, m.output)

    def linears(self, layer: nn.Module) -> dict[str, nn.Linear]:
        """The prunable Linear layers of one decoder block, keyed by path (`self_attn.q_proj` etc.)."""
        return {n: layer.get_submodule(n) for n in self.linear_names()}

    def input_groups(self) -> tuple[tuple[str, ...], ...]:
        """Linears that read the same input tensor (statistics are collected once per group)."""
        a, m = self.attention, self.mlp
        return (a.inputs, (a.output,), m.inputs, (m.output,))

    def consumer(self, name: str) -> str | None:
        """The Linear whose input channels are this Linear's output rows (None: the residual).

        q/k/v feed the attention output; the attention output (through residual and norm) feeds
        the MLP input; the MLP input feeds the MLP output; the MLP output feeds the next block.
        """
        a, m = self.attention, self.mlp
        if name in a.inputs:
            return a.output
        if name == a.output:
            return m.inputs[0]
        if name in m.inputs:
            return m.output
        return None

    def head_dim(self, config) -> int:
        return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads

    def kv_heads(self, config) -> int:
        return getattr(config, "num_key_value_heads", None) or config.num_attention_heads

    def rows_from_consumer(self, config, name: str, delta: torch.Tensor) -> torch.Tensor | None:
        """Map a per-input-channel value of `name`'s consumer onto `name`'s output rows.

        One to one where a row feeds one channel; grouped-query k/v rows, shared by several
        query heads, take the mean over the heads they feed; a fused Linear concatenates its
        parts. None when the sizes do not fit (the row keeps its block value).
        """
        parts = []
        for kind, size in self.row_parts(config, name):
            if kind == "kv":
                hd = self.head_dim(config)
                if delta.numel() % size or size % hd:
                    return None
                parts.append(delta.view(size // hd, -1, hd).mean(1).flatten())
            elif size == delta.numel():
                parts.append(delta)
            else:
                return None
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def row_parts(self, config, name: str) -> tuple[tuple[str, int], ...]:
        """`name`'s output rows as (kind, count) segments; kind 'kv' marks grouped-query rows."""
        a = self.attention
        q = config.num_attention_heads * self.head_dim(config)
        kv = self.kv_heads(config) * self.head_dim(config)
        if a.fused and name == a.inputs[0]:
            return (("q", q), ("kv", kv), ("kv", kv))
        if name in a.inputs:
            return (("kv", kv),) if name in a.inputs[1:] and kv != q else (("q", q),)
        if name in self.mlp.inputs:
            width = config.intermediate_size
            return (("channel", width),) * (2 if self.mlp.fused else 1)
        return (("hidden", config.hidden_size),)

    def mlp_width(self, layer: nn.Module) -> int:
        """The number of MLP channels (input features of the MLP output projection)."""
        return layer.get_submodule(self.mlp.output).in_features

    def mlp_input_weights(self, layer: nn.Module) -> list[torch.Tensor]:
        """The MLP input weights as (channels × hidden) matrices: gate and up, or the plain fc."""
        weights = [layer.get_submodule(n).weight for n in self.mlp.inputs]
        return list(weights[0].chunk(2)) if self.mlp.fused else weights

    def logits(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm, output head and the family's logit post-processing."""
        return self.finish_logits(model, self.lm_head(model)(self.final_norm(model)(hidden)))

    def finish_logits(self, model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
        """What the family applies after the head: Granite's divisor, Gemma's soft-capping."""
        cfg = model.config
        divisor = getattr(cfg, self.logits_divisor_attr, None) if self.logits_divisor_attr else None
        if divisor:
            logits = logits / divisor
        cap = getattr(cfg, self.final_softcap_attr, None) if self.final_softcap_attr else None
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def tied_embeddings(self, model: nn.Module) -> bool:
        return self.lm_head(model).weight is self.embed_tokens(model).weight


FAMILIES: Registry[DecoderAdapter] = Registry(
    "family",
    (
        DecoderAdapter("llama", ("llama",)),
        DecoderAdapter("qwen2", ("qwen2",)),
        DecoderAdapter("qwen3", ("qwen3",)),
        DecoderAdapter("mistral", ("mistral",)),
        DecoderAdapter(
            "gemma3", ("gemma3_text", "gemma3"), final_softcap_attr="final_logit_softcapping"
        ),
        DecoderAdapter("starcoder2", ("starcoder2",), mlp=MlpRoles(("mlp.c_fc",), "mlp.c_proj")),
        DecoderAdapter(
            "phi3",
            ("phi3",),
            attention=AttentionRoles(("self_attn.qkv_proj",), "self_attn.o_proj", fused=True),
            mlp=MlpRoles(("mlp.gate_up_proj",), "mlp.down_proj", fused=True),
        ),
        DecoderAdapter("granite", ("granite",), logits_divisor_attr="logits_scaling"),
    ),
)
ADAPTERS: tuple[DecoderAdapter, ...] = tuple(FAMILIES.values())  # the built-in families


def supported() -> tuple[str, ...]:
    """Every model_type a registered family covers (families registered later included)."""
    return tuple(t for a in FAMILIES.values() for t in a.model_types)


SUPPORTED = supported()  # the built-in families' model types


def adapter_for(model_or_type) -> DecoderAdapter:
    """The adapter for a model (or `config.model_type` string); a clear error if unsupported."""
    model_type = (
        model_or_type if isinstance(model_or_type, str) else model_or_type.config.model_type
    )
    for adapter in FAMILIES.values():
        if model_type in adapter.model_types:
            return adapter
    raise PrunekitError(
        f"unsupported architecture '{model_type}'; supported: {', '.join(supported())}"
    )
