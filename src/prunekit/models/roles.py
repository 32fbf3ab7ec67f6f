"""The roles a decoder block's Linears play, by path inside the block (what adapters declare)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AttentionRoles:
    """q/k/v input projections (or one fused qkv: rows q | k | v) and the output projection."""

    inputs: tuple[str, ...]
    output: str
    fused: bool = False


@dataclass(frozen=True)
class MlpRoles:
    """MLP input projections — gate and up, one plain fc, or one fused gate_up (rows gate | up) —
    and the output projection whose input channels are the MLP's width."""

    inputs: tuple[str, ...]
    output: str
    fused: bool = False


LLAMA_ATTENTION = AttentionRoles(
    ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "self_attn.o_proj"
)
GATED = MlpRoles(("mlp.gate_proj", "mlp.up_proj"), "mlp.down_proj")
