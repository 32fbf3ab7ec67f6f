"""Checkpoints whose layers have different widths: writing them, and loading them in prunekit.

Writing: config.json keeps the stock model_type plus per-layer lists and an `auto_map` to the
small modeling file the folder carries (modeling_prunekit_widths.py), so plain transformers
loads it with trust_remote_code=True. The class it names is made from the family's stock class
(any family with an adapter entry; the export checks that it rebuilds every weight's shape).
Loading in prunekit never runs that file: prunekit makes the same classes from its own copy,
checks every weight's shape against the per-layer lists, then loads the safetensors.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from prunekit.errors import PrunekitError
from prunekit.export.modeling_prunekit_widths import per_layer_class
from prunekit.export.widths import LAYER_KEYS, config_fields, head_dim, is_uniform, layer_widths
from prunekit.models.adapters import DecoderAdapter, adapter_for, supported

MODELING_FILE = "modeling_prunekit_widths.py"
MODELING_SOURCE = Path(__file__).with_name(MODELING_FILE)


def stock_class(model: nn.Module) -> type:
    """The transformers class a (possibly per-layer-width) model is built on."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("transformers."):
            return cls
    return type(model)


def stock_class_name(model: nn.Module) -> str:
    return stock_class(model).__name__


def layer_modules(adapter: DecoderAdapter) -> dict[str, str]:
    """A layer's attention and MLP modules, by the adapter's roles (config.json's `layer_modules`)."""
    return {
        "attention": adapter.attention.output.rpartition(".")[0],
        "mlp": adapter.mlp.output.rpartition(".")[0],
    }


def write_widths(model: nn.Module, out_dir: Path) -> bool:
    """Describe the saved model's widths in out_dir/config.json (and, when layers differ, add the
    modeling file and its auto_map, after checking the family's classes rebuild these widths).
    Returns whether the layers differ."""
    adapter = adapter_for(model)
    widths = layer_widths(model, adapter)
    path = Path(out_dir) / "config.json"
    data = json.loads(path.read_text())
    for key in (*LAYER_KEYS.values(), "layer_modules", "auto_map"):
        data.pop(key, None)
    data.update(config_fields(model, widths, head_dim(model, adapter)))
    stock = stock_class(model)
    data["architectures"] = [stock.__name__]
    per_layer = not is_uniform(widths)
    if per_layer:
        data["layer_modules"] = layer_modules(adapter)
        _check_rebuild(model, stock, type(model.config).from_dict(data))
        name = per_layer_class(stock).__name__
        data["auto_map"] = {"AutoModelForCausalLM": f"{MODELING_FILE[:-3]}.{name}"}
        shutil.copyfile(MODELING_SOURCE, Path(out_dir) / MODELING_FILE)
    tmp = path.with_name(".config.json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)  # config.json last and whole: a folder never half-describes its weights
    return per_layer


def _skeleton(stock: type, config) -> nn.Module:
    """The family's model resized per layer by `config`, on the meta device (no memory)."""
    with torch.device("meta"):
        return per_layer_class(stock)(config)


def _check_rebuild(model: nn.Module, stock: type, config) -> None:
    """The per-layer class must rebuild every tensor of `model` at its shape (else the folder
    would not load): the family's attention takes (config, layer_idx), its MLP (config)."""
    family = adapter_for(model).family
    try:
        built = {k: list(v.shape) for k, v in _skeleton(stock, config).state_dict().items()}
    except Exception as exc:  # the family's modules do not rebuild this way
        raise PrunekitError(
            f"per-layer widths cannot be exported for '{family}': its layers do not rebuild "
            f"from a per-layer config ({type(exc).__name__}: {exc})"
        ) from None
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    for key in sorted(set(built) | set(shapes)):
        if built.get(key) != shapes.get(key):
            raise PrunekitError(
                f"per-layer widths cannot be exported for '{family}': rebuilt from config.json, "
                f"{key} would be {built.get(key)}, not {shapes.get(key)}"
            )


def has_layer_widths(config) -> bool:
    """Whether a config describes per-layer widths (any of the lists present)."""
    return any(getattr(config, key, None) is not None for key in LAYER_KEYS.values())


def _check_lists(folder: Path, config) -> None:
    n = config.num_hidden_layers
    for key in LAYER_KEYS.values():
        values = getattr(config, key, None)
        if not isinstance(values, list) or len(values) != n:
            raise PrunekitError(
                f"'{folder}': config.json's {key} must list one width per layer ({n}), "
                f"got {values!r}; re-export the checkpoint"
            )
        if not all(isinstance(v, int) and v > 0 for v in values):
            raise PrunekitError(f"'{folder}': config.json's {key} must hold positive whole numbers")


def _check_shapes(folder: Path, model: nn.Module) -> None:
    """Every tensor in the safetensors files must exist in `model` with the same shape."""
    from safetensors import safe_open

    expected = {k: list(v.shape) for k, v in model.state_dict().items()}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not iterable
                shape = list(handle.get_slice(key).get_shape())
                if key not in expected:
                    raise PrunekitError(
                        f"'{folder}': the weights hold {key}, which the config does not describe; "
                        "re-export the checkpoint"
                    )
                if shape != expected[key]:
                    raise PrunekitError(
                        f"'{folder}': the per-layer widths in config.json contradict the weights: "
                        f"{key} is {shape} in {file.name} but {expected[key]} by the config; "
                        "re-export the checkpoint"
                    )


def load_per_layer(folder: Path, config, dtype: torch.dtype) -> nn.Module:
    """Build the stock family resized per layer (prunekit's own classes, never the folder's
    .py file), check every weight shape, then load the safetensors strictly."""
    from transformers import AutoModelForCausalLM

    if config.model_type not in supported():
        raise PrunekitError(
            f"'{folder}': per-layer widths are not supported for '{config.model_type}'; "
            f"supported: {', '.join(supported())}"
        )
    stock = AutoModelForCausalLM._model_mapping[type(config)]
    _check_lists(folder, config)
    _check_shapes(folder, _skeleton(stock, config))
    cls = per_layer_class(stock)
    model, info = cls.from_pretrained(
        folder, config=config, dtype=dtype, use_safetensors=True, output_loading_info=True
    )
    problems = {k: v for k, v in info.items() if k.endswith("_keys") and v}
    if problems:
        raise PrunekitError(
            f"'{folder}': the weights do not fill the model ({problems}); re-export the checkpoint"
        )
    return model
