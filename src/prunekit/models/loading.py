"""Resolve a MODEL argument (built-in name, local folder, .gguf file, hub id) and load it safely.

Safely: safetensors only (never unpickled .bin files) and no checkpoint code unless asked
(trust_remote_code off by default). A checkpoint with per-layer widths (config.json lists
`layer_num_attention_heads` etc., exported by prunekit) carries a modeling file for plain
transformers (trust_remote_code=True there); prunekit never runs that file: it builds the stock
family from the config, rebuilds each layer at its listed widths with its own copy of those
classes, checks every weight's shape against them and then loads the safetensors.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from prunekit.errors import PrunekitError
from prunekit.export.per_layer import has_layer_widths, load_per_layer
from prunekit.models.adapters import adapter_for
from prunekit.models.registry import BUILTIN_MODELS, builtin_dir, is_installed
from prunekit.utils import protect_input, sha256_file

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A model with its tokenizer and provenance (what was loaded, from where, with which hash)."""

    model: torch.nn.Module
    tokenizer: object
    info: dict = field(default_factory=dict)


DTYPE_CHOICES = ("auto", *DTYPES)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX-512/AMX, aarch64 FEAT_BF16


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bfloat16 arithmetic (per /proc/cpuinfo flags), not just conversion."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = {
        flag
        for line in cpuinfo.splitlines()
        if line.split(":")[0].strip() in ("flags", "Features")
        for flag in line.split(":", 1)[-1].split()
    }
    return any(f in flags for f in BF16_CPU_FLAGS)


def auto_dtype(device: torch.device | str = "cpu") -> str:
    """'bfloat16' where `device` computes in it natively, else 'float32'."""
    device = resolve_device(device) if device == "auto" else torch.device(device)
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if device.type == "cpu" and cpu_has_bf16() else "float32"


def dtype_name(name: str, device: torch.device | str = "cpu") -> str:
    """A --dtype value as a concrete name ('auto' resolved for `device`), checked."""
    if name == "auto":
        return auto_dtype(device)
    if name not in DTYPES:
        raise PrunekitError(f"unknown dtype '{name}'; choose one of: {', '.join(DTYPE_CHOICES)}")
    return name


def parse_dtype(name: str, device: torch.device | str = "cpu") -> torch.dtype:
    return DTYPES[dtype_name(name, device)]


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto' → a device; a clear error when CUDA is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PrunekitError(
            "--device cuda was asked for but no CUDA GPU is visible; use --device cpu"
        )
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise PrunekitError(f"unknown device '{name}'; use cpu, cuda, cuda:N or auto") from exc


def _hash_weights(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.glob("*.safetensors"))}


def _verify_builtin(folder: Path, name: str) -> dict:
    manifest = json.loads((folder / "prunekit_source.json").read_text())
    hashes = _hash_weights(folder)
    if hashes != manifest.get("files"):
        raise PrunekitError(
            f"the cached files of '{name}' do not match their recorded hashes (corrupted); "
            f"reinstall with: prunekit install {name} --force"
        )
    return {
        "source": "builtin",
        "id": name,
        "gguf_sha256": manifest["gguf_sha256"],
        "packages": manifest["source_packages"],
        "weights_sha256": hashes,
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:120]}" if text else type(exc).__name__


def _read_json_object(path: Path, what: str) -> dict:
    """A model folder's JSON file as a dict, or one line naming the file and what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PrunekitError(
            f"'{path}' is not readable JSON ({_first_line(exc)}); the {what} is damaged, "
            "re-create or re-download it"
        ) from None
    if not isinstance(data, dict):
        raise PrunekitError(
            f"'{path}' is not a {what} (expected a JSON object); re-create or re-download it"
        )
    return data


def check_model_folder(folder: Path) -> dict:
    """The cheap checks of a model folder (readable config.json and tokenizer files, safetensors
    present): one line before anything loads. Returns config.json's contents."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise PrunekitError(f"'{folder}' has no config.json; point at a Hugging Face model folder")
    config = _read_json_object(folder / "config.json", "model config")
    text_config = config.get("text_config")
    nested = text_config if isinstance(text_config, dict) else {}
    layers = config.get("num_hidden_layers", nested.get("num_hidden_layers"))
    if layers is not None and (
        not isinstance(layers, int) or isinstance(layers, bool) or layers < 1
    ):
        raise PrunekitError(
            f"'{folder / 'config.json'}': num_hidden_layers must be a positive whole number, "
            f"got {layers!r}; fix config.json"
        )
    for name, what in (
        ("tokenizer.json", "tokenizer"),
        ("tokenizer_config.json", "tokenizer config"),
    ):
        if (folder / name).exists():
            _read_json_object(folder / name, what)
    if not any(folder.glob("*.safetensors")):
        raise PrunekitError(
            f"'{folder}' has no .safetensors weights; prunekit never unpickles .bin files — "
            "convert them to safetensors first"
        )
    return config


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files transformers loads from `folder`: model.safetensors, else the shards
    its index lists, else every *.safetensors file."""
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json_object(index, "weights index").get("weight_map")
        if not isinstance(weight_map, dict):
            raise PrunekitError(f"'{index}' has no weight_map; re-create or re-download the model")
        return [folder / name for name in sorted(set(weight_map.values()))]
    return sorted(folder.glob("*.safetensors"))


LAYER_INDEX = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def check_layer_count(folder: Path, num_layers: int) -> None:
    """The weights hold exactly layers 0..num_layers-1 (read from the safetensors headers only):
    a config claiming more layers than the weights have would otherwise get random ones."""
    from safetensors import safe_open

    found: set[int] = set()
    for file in weight_files(folder):
        if not file.is_file():
            raise PrunekitError(
                f"'{file}' is listed in the weights index but missing; re-download the model"
            )
        try:
            with safe_open(str(file), framework="pt") as handle:
                keys = list(handle.keys())
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types
            raise PrunekitError(
                f"could not read the weights in '{file}' ({_first_line(exc)}); the file may be "
                "corrupted, re-create or re-download it"
            ) from None
        found.update(int(m.group(1)) for key in keys if (m := LAYER_INDEX.search(key)))
    if not found:
        return
    expected = set(range(num_layers))
    if found != expected:
        missing = sorted(expected - found)
        extra = sorted(found - expected)
        detail = "; ".join(
            part
            for part in (
                f"no weights for layer(s) {_ranges(missing)}" if missing else "",
                f"weights for layer(s) {_ranges(extra)} it does not describe" if extra else "",
            )
            if part
        )
        raise PrunekitError(
            f"'{folder}': config.json says {num_layers} layers but the weights hold "
            f"{len(found)} ({detail}); fix num_hidden_layers in config.json or re-export the model"
        )


def _ranges(values: list[int]) -> str:
    """[3, 4, 5, 9] → '3-5, 9'."""
    parts: list[str] = []
    for v in values:
        if parts and parts[-1][1] == v - 1:
            parts[-1][1] = v
        else:
            parts.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def check_loading_info(folder: Path, info: dict) -> None:
    """Every weight the config implies was in the files, and no file weight went unused."""
    problems = {k: sorted(v) for k, v in info.items() if k.endswith("_keys") and v}
    if problems or info.get("error_msgs"):
        detail = (
            "; ".join(
                f"{kind.removesuffix('_keys')}: {', '.join(map(str, keys[:4]))}"
                + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
                for kind, keys in problems.items()
            )
            or "; ".join(map(str, info["error_msgs"]))[:200]
        )
        raise PrunekitError(
            f"'{folder}': the weights do not match config.json ({detail}); a model built from "
            "it would hold random weights, re-export or re-download the model"
        )


def _load_folder(folder: Path, dtype: torch.dtype, trust_remote_code: bool):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    check_model_folder(folder)
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for a bad config
        raise PrunekitError(
            f"'{folder / 'config.json'}' is not a usable model config ({_first_line(exc)}); "
            "fix or re-download it"
        ) from None
    adapter_for(config.model_type)
    num_layers = getattr(config, "num_hidden_layers", None)
    if isinstance(num_layers, int):
        check_layer_count(folder, num_layers)
    try:
        if has_layer_widths(config):
            model = load_per_layer(folder, config, dtype)
        else:
            model, info = AutoModelForCausalLM.from_pretrained(
                folder,
                dtype=dtype,
                use_safetensors=True,
                trust_remote_code=trust_remote_code,
                output_loading_info=True,
            )
            check_loading_info(folder, info)
    except PrunekitError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors/transformers raise many types
        raise PrunekitError(
            f"could not read the weights in '{folder}' ({_first_line(exc)}); "
            "the files may be corrupted, re-create or re-download them"
        ) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - tokenizers raise many types for damaged files
        raise PrunekitError(
            f"could not read the tokenizer in '{folder}' ({_first_line(exc)}); "
            "the tokenizer files may be damaged, re-create or re-download them"
        ) from None
    return model, tokenizer


def _load_gguf(path: Path, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prunekit.export.checkpoint import strip_quantizer

    try:
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except Exception as exc:  # noqa: BLE001
        raise PrunekitError(
            f"could not read GGUF file '{path}' ({type(exc).__name__}); it may be corrupted or of an "
            "unsupported architecture"
        ) from exc
    strip_quantizer(model)
    adapter_for(model)
    return model, tokenizer


def _load_hub(repo_id: str, dtype: torch.dtype, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        from huggingface_hub import snapshot_download

        folder = Path(
            snapshot_download(
                repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]
            )
        )
    except Exception as exc:  # noqa: BLE001
        raise PrunekitError(
            f"could not fetch '{repo_id}' from the Hugging Face hub ({type(exc).__name__}); offline? "
            f"use a local folder, a .gguf file or a built-in ({', '.join(BUILTIN_MODELS)})"
        ) from exc
    del AutoModelForCausalLM, AutoTokenizer
    return _load_folder(folder, dtype, trust_remote_code)


def load_model(
    spec: str | os.PathLike,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    device: torch.device | str = "cpu",
) -> LoadedModel:
    """Load MODEL: a built-in name, a local HF folder, a .gguf file, or a hub id.

    `device` only decides what dtype 'auto' means; the model is loaded on the CPU.
    """
    dtype = dtype_name(dtype, device)
    torch_dtype = DTYPES[dtype]
    spec_str = str(spec)
    path = Path(spec_str).expanduser()
    if spec_str in BUILTIN_MODELS:
        if not is_installed(spec_str):
            raise PrunekitError(
                f"built-in model '{spec_str}' is not installed; install it with: prunekit install {spec_str}"
            )
        folder = builtin_dir(spec_str)
        info = _verify_builtin(folder, spec_str)
        model, tokenizer = _load_folder(folder, torch_dtype, False)
    elif path.is_dir():
        model, tokenizer = _load_folder(path, torch_dtype, trust_remote_code)
        info = {
            "source": "folder",
            "id": str(path.resolve()),
            "weights_sha256": _hash_weights(path),
        }
    elif path.suffix == ".gguf":
        if not path.is_file():
            raise PrunekitError(f"GGUF file '{path}' does not exist; check the path")
        model, tokenizer = _load_gguf(path, torch_dtype)
        info = {"source": "gguf", "id": str(path.resolve()), "gguf_sha256": sha256_file(path)}
    elif (
        spec_str.count("/") == 1 and not spec_str.startswith((".", "/", "~")) and not path.exists()
    ):
        model, tokenizer = _load_hub(spec_str, torch_dtype, trust_remote_code)
        info = {"source": "hub", "id": spec_str}
    else:
        raise PrunekitError(
            f"model '{spec_str}' not found: not a built-in ({', '.join(BUILTIN_MODELS)}), "
            "a local folder, a .gguf file or a hub id; run `prunekit models` to see the built-ins"
        )
    if info["source"] in ("folder", "gguf", "builtin"):  # an output must never replace these
        protect_input(builtin_dir(spec_str) if info["source"] == "builtin" else Path(info["id"]))
    model.eval()
    info.update(
        architecture=model.config.model_type,
        dtype=dtype,
        num_layers=model.config.num_hidden_layers,
        vocab_size=model.config.vocab_size,
    )
    return LoadedModel(model=model, tokenizer=tokenizer, info=info)
