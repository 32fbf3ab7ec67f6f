"""The level database: every decoder layer's compressed variants, computed once from the dense
model's calibration activations, so that a candidate is stitched from stored choices.

A layer's variants are the product of an FFN ladder (MLP channels kept, e.g. 1, .875 … .5 of the
width, rounded to `multiple`) and a head ladder (grouped-query kv groups kept), ordered by their
parameter count (level 0 = the dense layer), plus, last, the layer dropped. Channels are ranked
once per layer by the width step's `output` importance ‖down_:,j‖₂·a_j and head groups by its
analogue Σ_{j∈group} ‖o_:,j‖₂·a_j, both on the dense model's stream (each layer sees the dense
input, as in EvoPress's database); a level keeps the top of that ranking, so the stored state is
one ranking per layer (width + groups integers). With `refit`, each level's consumer projection
(down_proj, o_proj) is re-solved on the kept inputs (`structural.refit`) and stored on disk
(safetensors, read lazily): Σ_levels d × kept × itemsize per layer.

Optional sparsity levels multiply the ladder: a sparse variant is the cut layer with Wanda's mask
on each Linear (per output row, the lowest ⌊kept columns · s⌋ of |W_ij|·‖X_j‖₂, ‖X_j‖₂ on the
dense stream); the database then also stores every Linear's input norms (Σ_Linears d_in floats
per layer, no masks) and its cost is the layer's non-zero parameters.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from prunekit.calibration.engine import BlockContext, LayerwiseEngine, hooked_forward
from prunekit.calibration.stats import HESSIAN, SQ_NORM, LinearStats
from prunekit.errors import PrunekitError
from prunekit.methods.masks import row_mask, row_prune_counts, zero_masked_
from prunekit.methods.scores import wanda_scores
from prunekit.models.adapters import DecoderAdapter
from prunekit.structural.groups import ChannelGroups, GroupKind, HeadGroups
from prunekit.structural.refit import consumer_part, refit_columns
from prunekit.structural.width import keep_count, output_importance, slice_mlp

DB_FILE, META_FILE = "levels.safetensors", "levels.json"


@dataclass(frozen=True)
class Variant:
    """One compressed version of a layer: MLP channels and kv groups kept and the unstructured
    sparsity of its Linears, or the layer dropped."""

    ffn: int
    groups: int
    dropped: bool = False
    sparsity: float = 0.0

    def label(self, width: int, groups: int) -> str:
        if self.dropped:
            return "drop"
        heads = "" if self.groups == groups else f" h{self.groups}/{groups}"
        sparse = f" s{self.sparsity:g}" if self.sparsity else ""
        return f"ffn{self.ffn / width:.3g}{heads}{sparse}"


@dataclass
class LayerSpace:
    """A layer's variants (level order) and each one's parameter count."""

    width: int
    groups: int
    variants: list[Variant]
    costs: list[int]

    @property
    def top(self) -> int:
        return len(self.variants) - 1


@dataclass
class SearchSpace:
    """Every layer's ladder; a genome is one level per layer."""

    layers: list[LayerSpace]

    @property
    def sparse(self) -> bool:
        """Whether some variant is sparse (costs are then non-zero parameters)."""
        return any(v.sparsity for s in self.layers for v in s.variants)

    def cost(self, genome) -> int:
        return sum(s.costs[g] for s, g in zip(self.layers, genome))

    def variants(self, genome) -> list[Variant]:
        return [s.variants[g] for s, g in zip(self.layers, genome)]

    def dropped(self, genome) -> int:
        return sum(s.variants[g].dropped for s, g in zip(self.layers, genome))

    def feasible(self, genome, limit: float) -> bool:
        """Within the budget, and at least one layer left."""
        return self.cost(genome) <= limit and self.dropped(genome) < len(self.layers)

    def min_cost(self) -> int:
        """The cheapest genome with at least one layer left."""
        tops = [s.costs[s.top] for s in self.layers]
        if not any(s.variants[s.top].dropped for s in self.layers):
            return sum(tops)
        keep = min(
            (s.costs[s.top - 1] - s.costs[s.top] if s.top else 10**18, i)
            for i, s in enumerate(self.layers)
        )
        return sum(tops) + keep[0]

    def step(self) -> int:
        """The largest cost change of one level move: the band a candidate may sit below budget."""
        return max(
            (abs(a - b) for s in self.layers for a, b in itertools.pairwise(s.costs)), default=0
        )

    def labels(self, genome) -> list[str]:
        return [s.variants[g].label(s.width, s.groups) for s, g in zip(self.layers, genome)]

    def with_costs(self, costs: list[list[int]]) -> SearchSpace:
        """The same ladders with other per-level costs (e.g. predicted decode ns)."""
        return SearchSpace(
            [LayerSpace(s.width, s.groups, s.variants, list(c)) for s, c in zip(self.layers, costs)]
        )


def _layer_params(layer: nn.Module) -> int:
    return sum(p.numel() for p in layer.parameters())


def _cut_shapes(
    layer: nn.Module, adapter: DecoderAdapter, cuts: list[tuple[GroupKind, int]]
) -> list[tuple[int, int]]:
    """(rows, columns) of every Linear of `layer` once each (kind, n) in `cuts` lost n groups."""
    shapes = {n: [lin.out_features, lin.in_features] for n, lin in adapter.linears(layer).items()}
    for kind, removed in cuts:
        for part in kind.parts(layer):
            shapes[part.name][part.dim] -= removed * part.index.shape[1]
    return [(rows, cols) for rows, cols in shapes.values()]


def _zeroed(shapes: list[tuple[int, int]], sparsity: float) -> int:
    """Weights Wanda's row mask zeroes at `sparsity` in Linears of these shapes (`row_mask`)."""
    return sum(int(row_prune_counts(cols, sparsity, rows).sum()) for rows, cols in shapes)


def build_space(
    model: nn.Module,
    adapter: DecoderAdapter,
    ffn_levels: tuple[float, ...],
    head_levels: tuple[float, ...],
    multiple: int,
    drop: bool,
    sparsity_levels: tuple[float, ...] = (0.0,),
) -> SearchSpace:
    """Each layer's variants from the ladders (1 and sparsity 0 are always in: level 0 is the
    dense layer), ordered by (non-zero) parameter count."""
    channels, heads = ChannelGroups(adapter), HeadGroups(adapter)
    sparsity = sorted({0.0, *sparsity_levels})
    spaces = []
    for layer in adapter.layers(model):
        width, groups = channels.count(layer), heads.count(layer)
        dense = _layer_params(layer)
        ffn = sorted({keep_count(width, f, multiple) for f in (1.0, *ffn_levels)}, reverse=True)
        grp = sorted({max(1, round(groups * h)) for h in (1.0, *head_levels)}, reverse=True)
        per_ch, per_grp = channels.cost(layer), heads.cost(layer)
        options = []
        for k, g in itertools.product(ffn, grp):
            params = dense - (width - k) * per_ch - (groups - g) * per_grp
            cuts = [(channels, width - k), (heads, groups - g)]
            shapes = _cut_shapes(layer, adapter, cuts) if len(sparsity) > 1 else []
            options += [
                (params - _zeroed(shapes, s), -k, -g, s, Variant(k, g, sparsity=s))
                for s in sparsity
            ]
        options.sort(key=lambda o: (-o[0], o[1], o[2], o[3]))
        variants, costs = [o[4] for o in options], [o[0] for o in options]
        if drop:
            variants.append(Variant(0, 0, dropped=True))
            costs.append(0)
        spaces.append(LayerSpace(width, groups, variants, costs))
    return SearchSpace(spaces)


def _head_scores(layer: nn.Module, kind: HeadGroups, a_out: torch.Tensor) -> torch.Tensor:
    """Σ_{j∈group} ‖o_:,j‖₂ · a_j per kv group (the `output` importance of its o_proj columns)."""
    part = consumer_part(kind, layer)
    weight = layer.get_submodule(part.name).weight.float()
    per_col = weight.norm(dim=0) * a_out.float().to(weight.device)
    return per_col[part.index.to(weight.device)].sum(1)


def _ranking(scores: torch.Tensor) -> torch.Tensor:
    """Indices by descending score (ties: the lower index first)."""
    return torch.sort(scores.float().cpu(), descending=True, stable=True).indices


class LevelDB:
    """Per layer: the channel ranking, the head-group ranking, (with refit) the refit consumer
    weights of every level, on disk, and (with sparsity levels) every Linear's input norms."""

    def __init__(
        self,
        channel_order,
        group_order,
        refit_file: Path | None,
        meta: dict,
        norms: list[dict[str, torch.Tensor]] | None = None,
    ) -> None:
        self.channel_order = channel_order
        self.group_order = group_order
        self.refit_file = refit_file
        self.meta = meta
        self.norms = norms or []
        self._handle = None

    def kept_channels(self, i: int, k: int) -> torch.Tensor:
        return torch.sort(self.channel_order[i][:k]).values

    def kept_groups(self, i: int, g: int) -> torch.Tensor:
        return torch.sort(self.group_order[i][:g]).values

    def input_norms(self, i: int) -> dict[str, torch.Tensor]:
        """‖X_j‖₂ of every Linear's input in layer `i` (dense stream), by Linear name."""
        if i >= len(self.norms):
            raise PrunekitError("this level database has no input norms; sparse variants need one")
        return self.norms[i]

    def refit(self, key: str) -> torch.Tensor | None:
        if self.refit_file is None:
            return None
        if self._handle is None:
            from safetensors import safe_open

            self._handle = safe_open(str(self.refit_file), framework="pt")
        return self._handle.get_tensor(key)

    @staticmethod
    def ffn_key(i: int, k: int) -> str:
        return f"refit.{i}.ffn.{k}"

    @staticmethod
    def head_key(i: int, g: int) -> str:
        return f"refit.{i}.heads.{g}"

    def memory_bytes(self) -> int:
        """RAM held: the rankings and input norms (refit weights stay on disk)."""
        norms = [t for layer in self.norms for t in layer.values()]
        held = (*self.channel_order, *self.group_order, *norms)
        return sum(t.numel() * t.element_size() for t in held)

    def disk_bytes(self) -> int:
        return self.refit_file.stat().st_size if self.refit_file else 0


@torch.no_grad()
def build_db(
    model: nn.Module,
    adapter: DecoderAdapter,
    batches: list[torch.Tensor],
    space: SearchSpace,
    folder: Path,
    refit: bool,
    damp: float,
    meta: dict,
    device="cpu",
    progress: bool = True,
) -> LevelDB:
    """One pass of the dense model over `batches`: rank channels and groups per layer, solve
    every level's refit (optional), keep every Linear's input norms (sparse spaces), and write
    `folder`/levels.{safetensors,json}."""
    from safetensors.torch import save_file

    heads = HeadGroups(adapter)
    mlp_out, attn_out = adapter.mlp.output, adapter.attention.output
    channel_order: list[torch.Tensor] = []
    group_order: list[torch.Tensor] = []
    norms: list[dict[str, torch.Tensor]] = []
    tensors: dict[str, torch.Tensor] = {}
    kinds = [SQ_NORM, HESSIAN] if refit else [SQ_NORM]
    names = adapter.linear_names() if space.sparse else ()

    def block_fn(ctx: BlockContext) -> None:
        stats = _collect(ctx, kinds, [attn_out, mlp_out], names)
        if names:
            norms.append({n: stats[n].act_norm.cpu().contiguous() for n in names})
        layer, s = ctx.layer, space.layers[ctx.index]
        down = layer.get_submodule(mlp_out).weight
        ranking = _ranking(output_importance(down, stats[mlp_out].act_norm))
        groups = _ranking(_head_scores(layer, heads, stats[attn_out].act_norm))
        channel_order.append(ranking)
        group_order.append(groups)
        if not refit:
            return
        for k in sorted({v.ffn for v in s.variants if not v.dropped and v.ffn < s.width}):
            kept = torch.sort(ranking[:k]).values.to(down.device)
            new = refit_columns(down, stats[mlp_out].xtx, kept, damp)
            tensors[LevelDB.ffn_key(ctx.index, k)] = new.cpu().contiguous()
        o_proj = layer.get_submodule(attn_out).weight
        part = consumer_part(heads, layer)
        for g in sorted({v.groups for v in s.variants if not v.dropped and v.groups < s.groups}):
            cols = torch.sort(part.index[torch.sort(groups[:g]).values].flatten()).values
            new = refit_columns(o_proj, stats[attn_out].xtx, cols.to(o_proj.device), damp)
            tensors[LevelDB.head_key(ctx.index, g)] = new.cpu().contiguous()

    LayerwiseEngine(model, adapter, batches, device, progress, desc="search: level database").run(
        block_fn
    )
    folder.mkdir(parents=True, exist_ok=True)
    tensors |= {f"order.{i}.ffn": t for i, t in enumerate(channel_order)}
    tensors |= {f"order.{i}.heads": t for i, t in enumerate(group_order)}
    tensors |= {f"norm.{i}.{n}": t for i, layer in enumerate(norms) for n, t in layer.items()}
    tmp = folder / f".{DB_FILE}.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(folder / DB_FILE)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return load_db(folder, meta)


def load_db(folder: Path, meta: dict) -> LevelDB | None:
    """The database in `folder` if it was built with the same `meta` (model, data, ladders)."""
    from safetensors import safe_open

    path, meta_path = folder / DB_FILE, folder / META_FILE
    if not (path.exists() and meta_path.exists()):
        return None
    if json.loads(meta_path.read_text()) != json.loads(json.dumps(meta)):
        return None
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
        n = sum(1 for k in keys if k.endswith(".ffn") and k.startswith("order."))
        channels = [handle.get_tensor(f"order.{i}.ffn") for i in range(n)]
        groups = [handle.get_tensor(f"order.{i}.heads") for i in range(n)]
        has_refit = any(k.startswith("refit.") for k in keys)
        norms: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
        for key in sorted(k for k in keys if k.startswith("norm.")):
            _, i, name = key.split(".", 2)
            norms[int(i)][name] = handle.get_tensor(key)
    return LevelDB(
        channels, groups, path if has_refit else None, meta, norms if any(norms) else None
    )


def _collect(
    ctx: BlockContext, kinds: list[str], names: list[str], extra: tuple[str, ...]
) -> dict[str, LinearStats]:
    """One pass passing the dense stream on: `kinds` statistics of the Linears `names`, and the
    input norms (SQ_NORM only) of the `extra` Linears not among them."""
    others = {n: ctx.linears[n] for n in extra if n not in names}
    stats, inner = hooked_forward(
        others, [SQ_NORM], lambda: ctx.collect(kinds, names, pass_on=True), ctx.input_groups
    )
    return {**stats, **inner}


@torch.no_grad()
def shape_layer(
    layer: nn.Module, adapter: DecoderAdapter, db: LevelDB, i: int, variant: Variant
) -> None:
    """Cut layer `i` (in place) to `variant` from the database: keep its top kv groups and MLP
    channels, put in the stored refit weights, then zero its sparsity's Wanda mask. A dropped
    variant is not handled here."""
    if variant.dropped:
        raise PrunekitError("shape_layer: a dropped layer is removed, not shaped")
    kept = _kept_columns(layer, adapter, db, i, variant) if variant.sparsity else {}
    heads = HeadGroups(adapter)
    if variant.groups < heads.count(layer):
        heads.keep(layer, db.kept_groups(i, variant.groups))
        new = db.refit(LevelDB.head_key(i, variant.groups))
        if new is not None:
            layer.get_submodule(adapter.attention.output).weight.data.copy_(new)
    if variant.ffn < adapter.mlp_width(layer):
        down = layer.get_submodule(adapter.mlp.output)
        slice_mlp(layer, adapter, db.kept_channels(i, variant.ffn).to(down.weight.device))
        new = db.refit(LevelDB.ffn_key(i, variant.ffn))
        if new is not None:
            layer.get_submodule(adapter.mlp.output).weight.data.copy_(new)
    if variant.sparsity:
        _sparsify(layer, adapter, db.input_norms(i), kept, variant.sparsity)


def _kept_columns(
    layer: nn.Module, adapter: DecoderAdapter, db: LevelDB, i: int, variant: Variant
) -> dict[str, torch.Tensor]:
    """The input columns each consumer Linear keeps under `variant` (o_proj: the kept groups',
    the MLP output: the kept channels), read from the dense layer before the cut."""
    kept: dict[str, torch.Tensor] = {}
    cuts = (
        (HeadGroups(adapter), variant.groups, db.kept_groups),
        (ChannelGroups(adapter), variant.ffn, db.kept_channels),
    )
    for kind, count, keep in cuts:
        if count < kind.count(layer):
            part = consumer_part(kind, layer)
            kept[part.name] = torch.sort(part.index[keep(i, count)].flatten()).values
    return kept


def _sparsify(
    layer: nn.Module,
    adapter: DecoderAdapter,
    norms: dict[str, torch.Tensor],
    kept: dict[str, torch.Tensor],
    sparsity: float,
) -> None:
    """Wanda within the (cut) layer: every Linear zeroes, per output row, the ⌊columns · s⌋
    lowest |W_ij|·‖X_j‖₂, the dense input norms taken at the columns the cut kept."""
    for name, linear in adapter.linears(layer).items():
        norm = norms[name][kept.get(name, slice(None))]
        weight = linear.weight.data
        zero_masked_(weight, row_mask(wanda_scores(weight, norm), sparsity))


class VariantCache:
    """Built variant modules (deep copies of dense layers, cut), least recently used evicted
    beyond `max_bytes`; level 0 is the dense layer itself."""

    def __init__(
        self, model: nn.Module, adapter: DecoderAdapter, db: LevelDB, space: SearchSpace, max_bytes
    ) -> None:
        self.layers = list(adapter.layers(model))
        self.adapter, self.db, self.space, self.max_bytes = adapter, db, space, max_bytes
        self._cache: dict[tuple[int, int], tuple[nn.Module, int]] = {}
        self.bytes = 0
        self.built = 0

    def module(self, i: int, level: int) -> nn.Module | None:
        variant = self.space.layers[i].variants[level]
        if variant.dropped:
            return None
        if level == 0:
            return self.layers[i]
        key = (i, level)
        if key in self._cache:
            self._cache[key] = self._cache.pop(key)  # most recent last
            return self._cache[key][0]
        layer = copy.deepcopy(self.layers[i])
        shape_layer(layer, self.adapter, self.db, i, variant)
        size = sum(p.numel() * p.element_size() for p in layer.parameters())
        self._cache[key] = (layer, size)
        self.bytes += size
        self.built += 1
        while self.bytes > self.max_bytes and len(self._cache) > 1:
            old = next(iter(self._cache))
            self.bytes -= self._cache.pop(old)[1]
        return layer


def space_summary(space: SearchSpace) -> list[dict]:
    """Per layer: its variants' labels and costs (for the report)."""
    return [
        {
            "variants": [v.label(s.width, s.groups) for v in s.variants],
            "costs": s.costs,
            "variant_shapes": [asdict(v) for v in s.variants],
        }
        for s in space.layers
    ]
