"""Which llama.cpp architecture a model folder becomes, with its hyperparameters, or why none.

Uniform shapes keep the family's own architecture (`llama`, `qwen2`, `qwen3`); per-layer head
counts or MLP widths (and Qwen2 with pruned query heads: llama.cpp's qwen2 block wants
heads × head_dim = hidden size) become `deci`, whose head_count, head_count_kv and feed_forward_length
are per-layer arrays. Checked in llama.cpp (b11739, tests/export/test_gguf_llamacpp.py): deci
builds a llama-style block (RMSNorm, rotary attention with optional q/k/v/o biases, SwiGLU),
so Llama and Qwen2 layers fit, Qwen2's q/k/v biases included (sliced with their heads).
deci rotates pairs the way `llama` does, so q/k rows are permuted per head as for `llama`.
It has no q/k norms (Qwen3), sliding windows, soft-capping or Gemma's norms: those are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from prunekit.errors import PrunekitError


@dataclass(frozen=True)
class Family:
    """A transformers model_type and how llama.cpp runs it."""

    arch: str  # llama.cpp architecture for uniform shapes
    norm_rope: bool  # llama.cpp rotates adjacent pairs: q/k rows are permuted on export
    per_layer: bool  # whether deci can hold its per-layer widths
    q_is_hidden: bool = False  # llama.cpp's block assumes heads × head_dim == hidden size


FAMILIES = {
    "llama": Family("llama", norm_rope=True, per_layer=True),
    "qwen2": Family("qwen2", norm_rope=False, per_layer=True, q_is_hidden=True),
    "qwen3": Family("qwen3", norm_rope=False, per_layer=False),  # q/k norms: deci has none
}
DECI = Family("deci", norm_rope=True, per_layer=True)


@dataclass
class ArchPlan:
    """The GGUF architecture and the per-layer widths its tensors and metadata use."""

    model_type: str
    arch: str
    norm_rope: bool
    hidden: int
    layers: int
    heads: list[int]
    kv_heads: list[int]
    ffn: list[int]
    head_dim: int
    context: int
    rope_theta: float
    rms_eps: float
    tied: bool

    @property
    def per_layer(self) -> bool:
        return self.arch == "deci"


def _get(config, name: str, default=None):
    return getattr(config, name, default)


def _rope_theta(config) -> float:
    params = _get(config, "rope_parameters") or _get(config, "rope_scaling") or {}
    kind = params.get("rope_type", params.get("type", "default")) if params else "default"
    if kind not in (None, "default"):
        raise PrunekitError(
            f"rope scaling '{kind}' is not written to GGUF by prunekit yet; export the model "
            "without it"
        )
    theta = params.get("rope_theta") if params else None
    return float(theta if theta is not None else _get(config, "rope_theta", 10000.0))


def _lists(config) -> tuple[list[int], list[int], list[int]]:
    n = config.num_hidden_layers
    heads = _get(config, "layer_num_attention_heads") or [config.num_attention_heads] * n
    kv = (
        _get(config, "layer_num_key_value_heads")
        or [_get(config, "num_key_value_heads") or config.num_attention_heads] * n
    )
    ffn = _get(config, "layer_intermediate_sizes") or [config.intermediate_size] * n
    for name, values in (("heads", heads), ("kv heads", kv), ("MLP widths", ffn)):
        if len(values) != n:
            raise PrunekitError(
                f"config.json lists {len(values)} {name} for {n} layers; re-export the checkpoint"
            )
    return list(heads), list(kv), list(ffn)


def _refuse_unsupported(config, family: Family, per_layer: bool) -> None:
    mt = config.model_type
    if per_layer and not family.per_layer:
        raise PrunekitError(
            f"per-layer widths of a '{mt}' model cannot be written to GGUF: llama.cpp's deci "
            "architecture (the one with per-layer widths) has no q/k norms; prune it with "
            "uniform widths to export it"
        )
    if _get(config, "use_sliding_window", False) or (
        mt == "llama" and _get(config, "sliding_window")
    ):
        raise PrunekitError(
            f"the '{mt}' model uses sliding-window attention, which its llama.cpp "
            "architecture does not; GGUF export would change its outputs"
        )
    if _get(config, "mlp_bias", False):
        raise PrunekitError("MLP biases have no place in llama.cpp's llama/deci blocks")
    if _get(config, "hidden_act", "silu") != "silu":
        raise PrunekitError(
            f"activation '{config.hidden_act}' is not SwiGLU; llama.cpp's "
            f"'{family.arch}' block would compute another function"
        )


def plan_arch(config) -> ArchPlan:
    """The GGUF architecture for a transformers config (stock or with prunekit's per-layer
    lists); one PrunekitError line for anything llama.cpp would run differently."""
    family = FAMILIES.get(config.model_type)
    if family is None:
        raise PrunekitError(
            f"GGUF export supports {', '.join(FAMILIES)} models, not '{config.model_type}'"
        )
    heads, kv, ffn = _lists(config)
    head_dim = _get(config, "head_dim") or config.hidden_size // config.num_attention_heads
    narrow_q = family.q_is_hidden and any(h * head_dim != config.hidden_size for h in heads)
    per_layer = len(set(zip(heads, kv, ffn))) > 1 or narrow_q
    _refuse_unsupported(config, family, per_layer)
    if any(k < 1 or h % k for h, k in zip(heads, kv)):
        raise PrunekitError(
            "every layer needs whole grouped-query heads (query heads a multiple of kv heads, "
            "at least one kv head) for llama.cpp; this checkpoint has "
            f"heads {heads} and kv heads {kv}"
        )
    target = DECI if per_layer else family
    return ArchPlan(
        model_type=config.model_type,
        arch=target.arch,
        norm_rope=target.norm_rope,
        hidden=config.hidden_size,
        layers=config.num_hidden_layers,
        heads=heads,
        kv_heads=kv,
        ffn=ffn,
        head_dim=int(head_dim),
        context=int(_get(config, "max_position_embeddings", 4096)),
        rope_theta=_rope_theta(config),
        rms_eps=float(config.rms_norm_eps),
        tied=bool(_get(config, "tie_word_embeddings", False)),
    )


def add_hparams(writer, plan: ArchPlan, vocab_rows: int) -> None:
    """The {arch}.* keys: per-layer arrays for deci, single values otherwise."""

    def one_or_all(values: list[int]):
        return values if plan.per_layer else values[0]

    writer.add_context_length(plan.context)
    writer.add_embedding_length(plan.hidden)
    writer.add_block_count(plan.layers)
    writer.add_feed_forward_length(one_or_all(plan.ffn))
    writer.add_head_count(one_or_all(plan.heads))
    writer.add_head_count_kv(one_or_all(plan.kv_heads))
    writer.add_key_length(plan.head_dim)
    writer.add_value_length(plan.head_dim)
    writer.add_rope_dimension_count(plan.head_dim)
    writer.add_rope_freq_base(plan.rope_theta)
    writer.add_layer_norm_rms_eps(plan.rms_eps)
    writer.add_vocab_size(vocab_rows)


def permute_rows(rows, heads: int):
    """Reorder a q or k projection's rows (or bias) per head from transformers' half-split
    rotation to llama.cpp's adjacent pairs (what llama.cpp's own converter does for llama)."""
    shape = rows.shape
    return rows.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
