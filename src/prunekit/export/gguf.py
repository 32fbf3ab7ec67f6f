"""Write a model folder (a prunekit output or any stock HF safetensors checkpoint) as one GGUF
file that llama.cpp runs.

Tensor types (llama.cpp's converter and llama-quantize, in spirit):
- 1-D tensors (norms, biases) stay float32 whatever the quant;
- f16 / bf16 / f32: every matrix in that type (f32: exact, for checking);
- q8_0: every matrix whose rows (the last dimension) are a multiple of 32 values, else f16;
- q4_0: the same with q4_0, except the output head (or, when tied, the embedding that serves as
  it) which stays q8_0: it is the most sensitive matrix (llama-quantize keeps it at q6_K);
- rows that are no multiple of 32 (e.g. an FFN pruned to an odd width) fall back to f16.

The file is written under a temporary name beside FILE and renamed when complete: a failure or
an interrupt never leaves a half-written .gguf.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prunekit.errors import PrunekitError
from prunekit.export.gguf_arch import ArchPlan, add_hparams, permute_rows, plan_arch
from prunekit.export.gguf_tokenizer import GGUFVocab, add_vocab, check_tokenizer_json, read_vocab

QUANTS = ("f16", "bf16", "q8_0", "q4_0", "f32")
BLOCK = 32  # values per q8_0 / q4_0 block
SKIPPED = ("rotary_emb.inv_freq",)  # buffers some checkpoints carry; llama.cpp computes them


def _qtype(name: str):
    import gguf

    return getattr(gguf.GGMLQuantizationType, name)


def file_type(quant: str):
    import gguf

    return {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
    }[quant]


def tensor_type(gguf_name: str, shape: tuple[int, ...], quant: str, is_head: bool):
    """The GGML type one tensor is stored in (the rule in this module's docstring)."""
    if len(shape) < 2 or quant == "f32":
        return _qtype("F32")
    if quant in ("f16", "bf16"):
        return _qtype(quant.upper())
    if shape[-1] % BLOCK:
        return _qtype("F16")
    if quant == "q4_0" and is_head:
        return _qtype("Q8_0")
    return _qtype(quant.upper())


def check_quant(quant: str) -> None:
    if quant not in QUANTS:
        raise PrunekitError(f"unknown --quant '{quant}'; choose one of: {', '.join(QUANTS)}")


@dataclass
class TensorJob:
    """One tensor to write: where it comes from, its GGUF name, type and transform."""

    source: str
    file: Path
    name: str
    shape: tuple[int, ...]
    qtype: object
    permute_heads: int = 0  # >0: permute rows for llama.cpp's pair rotation with this many heads

    @property
    def nbytes(self) -> int:
        from gguf.quants import quant_shape_to_byte_shape

        return int(np.prod(quant_shape_to_byte_shape(self.shape, self.qtype)))


@dataclass
class GGUFPlan:
    """Everything decided before a byte is written."""

    folder: Path
    quant: str
    arch: ArchPlan
    vocab: GGUFVocab
    jobs: list[TensorJob] = field(default_factory=list)
    name: str = ""  # general.name; empty: the folder's name

    @property
    def nbytes(self) -> int:
        return sum(j.nbytes for j in self.jobs)


def _headers(folder: Path) -> dict[str, tuple[Path, tuple[int, ...]]]:
    from safetensors import safe_open

    from prunekit.models.loading import weight_files

    out = {}
    for file in weight_files(folder):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not iterable
                out[key] = (file, tuple(handle.get_slice(key).get_shape()))
    return out


def _permute_heads(arch: ArchPlan, source: str) -> int:
    """Heads to permute this tensor's rows over (0 = leave as is)."""
    if not arch.norm_rope:
        return 0
    parts = source.split(".")
    if "layers" not in parts or parts[-2] not in ("q_proj", "k_proj"):
        return 0
    layer = int(parts[parts.index("layers") + 1])
    return arch.heads[layer] if parts[-2] == "q_proj" else arch.kv_heads[layer]


def _allowed(arch_name: str) -> set[str]:
    """GGUF tensor base names the architecture defines (per block `blk.N.` stripped)."""
    import gguf

    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch_name)
    return {gguf.TENSOR_NAMES[t].split(".")[-1] for t in gguf.MODEL_TENSORS[arch]}


def _jobs(folder: Path, arch: ArchPlan, quant: str) -> list[TensorJob]:
    import gguf

    headers = _headers(folder)
    if "model.embed_tokens.weight" not in headers:
        raise PrunekitError(f"'{folder}': the weights have no model.embed_tokens.weight")
    model_arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch.arch)
    names = gguf.get_tensor_name_map(model_arch, arch.layers)
    allowed = _allowed(arch.arch)
    has_head = "lm_head.weight" in headers and not arch.tied
    if not arch.tied and not has_head:
        raise PrunekitError(
            f"'{folder}': config.json says the embeddings are not tied but the weights have no "
            "lm_head.weight; re-export the checkpoint"
        )
    jobs = []
    for source, (file, shape) in headers.items():
        if source.endswith(SKIPPED) or (source == "lm_head.weight" and arch.tied):
            continue
        name = names.get_name(source, try_suffixes=(".weight", ".bias"))
        if name is None or _base(name) not in allowed:
            raise PrunekitError(
                f"'{folder}': tensor {source} has no place in llama.cpp's '{arch.arch}' "
                "architecture; GGUF export would drop it"
            )
        head = name == "output.weight" or (name == "token_embd.weight" and not has_head)
        jobs.append(
            TensorJob(
                source=source,
                file=file,
                name=name,
                shape=shape,
                qtype=tensor_type(name, shape, quant, head),
                permute_heads=_permute_heads(arch, source),
            )
        )
    return jobs


def _base(name: str) -> str:
    parts = name.split(".")
    return parts[2] if parts[0] == "blk" else parts[0]


def plan_export(folder: Path, quant: str) -> GGUFPlan:
    """Read the folder's config, tokenizer and weight headers; decide every tensor's type.
    Every refusal happens here, before anything is written."""
    from transformers import AutoConfig

    from prunekit.models.loading import check_model_folder

    check_quant(quant)
    folder = Path(folder)
    if not folder.is_dir():
        raise PrunekitError(f"'{folder}' is not a folder; give a prunekit run or HF model folder")
    check_model_folder(folder)
    try:
        config = AutoConfig.from_pretrained(folder)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for a bad config
        raise PrunekitError(
            f"'{folder / 'config.json'}' is not a usable model config ({exc})"
        ) from None
    arch = plan_arch(config)
    jobs = _jobs(folder, arch, quant)
    rows = next(j.shape[0] for j in jobs if j.name == "token_embd.weight")
    return GGUFPlan(
        folder=folder, quant=quant, arch=arch, vocab=read_vocab(folder, rows), jobs=jobs
    )


def check_exportable(config, tokenizer) -> None:
    """The refusals a loaded model shows before any pruning (family, rope scaling, sliding
    windows, tokenizer); per-layer widths are only known, and checked, on export."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise PrunekitError("the model has no fast tokenizer; GGUF export needs one")
    plan_arch(config)
    check_tokenizer_json(json.loads(backend.to_str()))


def _array(job: TensorJob) -> np.ndarray:
    """The tensor's bytes as GGUF stores them (float32 math, then the target type)."""
    import torch
    from gguf.quants import quantize
    from safetensors import safe_open

    with safe_open(str(job.file), framework="pt") as handle:
        data = handle.get_tensor(job.source).to(torch.float32).numpy()
    if job.permute_heads:
        data = permute_rows(data, job.permute_heads)
    kind = job.qtype.name
    if kind == "F32":
        return np.ascontiguousarray(data, dtype=np.float32)
    if kind == "F16":
        return np.ascontiguousarray(data, dtype=np.float16)
    return quantize(np.ascontiguousarray(data), job.qtype)


def _name(folder: Path) -> str:
    return folder.resolve().name or "model"


def write_plan(plan: GGUFPlan, out: Path, progress: bool = True) -> None:
    """Stream every tensor into `out` (one tensor in memory at a time) via a temporary file."""
    import gguf
    from tqdm.auto import tqdm

    from prunekit.utils import check_free_space

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    check_free_space(out.parent, plan.nbytes, "the GGUF file")
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    writer = gguf.GGUFWriter(tmp, plan.arch.arch)
    try:
        writer.add_name(plan.name or _name(plan.folder))
        writer.add_file_type(file_type(plan.quant))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_hparams(writer, plan.arch, len(plan.vocab.tokens))
        add_vocab(writer, plan.vocab)
        for job in plan.jobs:
            writer.add_tensor_info(job.name, job.shape, np.dtype(np.float32), job.nbytes, job.qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        with tqdm(
            total=plan.nbytes, unit="B", unit_scale=True, desc="gguf", disable=not progress
        ) as bar:
            for job in plan.jobs:
                writer.write_tensor_data(_array(job))
                bar.update(job.nbytes)
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class ExportResult:
    """What was written: the file, its architecture and size, and how tensors were stored."""

    path: Path
    arch: str
    quant: str
    bytes: int
    tensors: dict[str, int]  # GGML type name → how many tensors
    vocab: int
    merges: int
    pre_tokenizer: str

    def as_dict(self) -> dict:
        return {**self.__dict__, "path": str(self.path)}


def export_gguf(
    folder: Path,
    out: Path,
    quant: str = "f16",
    *,
    force: bool = False,
    progress: bool = True,
    name: str = "",
) -> ExportResult:
    """Write `folder` as the GGUF file `out` (see the module docstring for the tensor types);
    `name`: the model's name in the file (default: the folder's), for a folder not yet in place."""
    from prunekit.utils import check_output_file

    out = Path(out)
    check_quant(quant)
    check_output_file(out, "-o")
    if out.exists() and not force:
        raise PrunekitError(f"'{out}' already exists; pass --force to replace it")
    plan = plan_export(folder, quant)
    plan.name = name
    write_plan(plan, out, progress)
    counts: dict[str, int] = {}
    for job in plan.jobs:
        counts[job.qtype.name] = counts.get(job.qtype.name, 0) + 1
    return ExportResult(
        path=out,
        arch=plan.arch.arch,
        quant=quant,
        bytes=out.stat().st_size,
        tensors=counts,
        vocab=len(plan.vocab.tokens),
        merges=len(plan.vocab.merges),
        pre_tokenizer=plan.vocab.pre,
    )
