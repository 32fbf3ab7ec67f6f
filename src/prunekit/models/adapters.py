"""One adapter per model family: where the decoder layers, projections, norms and heads live.

Methods ask the adapter; no method hard-codes `model.model.layers`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunekit.errors import PrunekitError

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class DecoderAdapter:
    """Llama-style decoder: `model.model.{embed_tokens,layers,norm}`, `self_attn.*_proj`, gated `mlp.*_proj`."""

    family: str
    model_types: tuple[str, ...]
    final_softcap_attr: str | None = None

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

    def linears(self, layer: nn.Module) -> dict[str, nn.Linear]:
        """The prunable Linear layers of one decoder block, keyed `self_attn.q_proj` etc."""
        out = {f"self_attn.{n}": getattr(layer.self_attn, n) for n in ATTENTION}
        out.update({f"mlp.{n}": getattr(layer.mlp, n) for n in MLP})
        return out

    def input_groups(self) -> tuple[tuple[str, ...], ...]:
        """Linears that read the same input tensor (statistics are collected once per group)."""
        return (
            tuple(f"self_attn.{n}" for n in ATTENTION[:3]),
            ("self_attn.o_proj",),
            ("mlp.gate_proj", "mlp.up_proj"),
            ("mlp.down_proj",),
        )

    def logits(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm, output head and (where the family has one) logit soft-capping."""
        logits = self.lm_head(model)(self.final_norm(model)(hidden))
        cap = (
            getattr(model.config, self.final_softcap_attr, None)
            if self.final_softcap_attr
            else None
        )
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def tied_embeddings(self, model: nn.Module) -> bool:
        return self.lm_head(model).weight is self.embed_tokens(model).weight


ADAPTERS: tuple[DecoderAdapter, ...] = (
    DecoderAdapter("llama", ("llama",)),
    DecoderAdapter("qwen2", ("qwen2",)),
    DecoderAdapter("qwen3", ("qwen3",)),
    DecoderAdapter("mistral", ("mistral",)),
    DecoderAdapter(
        "gemma3", ("gemma3_text", "gemma3"), final_softcap_attr="final_logit_softcapping"
    ),
)

SUPPORTED = tuple(t for a in ADAPTERS for t in a.model_types)


def adapter_for(model_or_type) -> DecoderAdapter:
    """The adapter for a model (or `config.model_type` string); a clear error if unsupported."""
    model_type = (
        model_or_type if isinstance(model_or_type, str) else model_or_type.config.model_type
    )
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise PrunekitError(
        f"unsupported architecture '{model_type}'; supported: {', '.join(SUPPORTED)}"
    )
