"""`prunekit export RUN --format gguf --quant q8_0 -o FILE.gguf`: a prunekit output folder (or any
HF safetensors folder, or a built-in model) as one file that llama.cpp runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from prunekit.export.gguf import QUANTS

FORMATS = ("gguf",)


def register(sub) -> None:
    p = sub.add_parser("export", help="write a run folder or model as a GGUF file for llama.cpp")
    p.add_argument("run", help="prunekit run folder, HF safetensors folder or built-in model name")
    p.add_argument("--format", default="gguf", choices=FORMATS, help="output format (gguf)")
    p.add_argument(
        "--quant",
        default="f16",
        help=f"tensor type: {', '.join(QUANTS)} (norms and biases stay f32; q8_0/q4_0 apply "
        "to matrices whose rows are a multiple of 32; q4_0 keeps the output head at q8_0)",
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="the .gguf file to write")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def _folder(spec: str) -> Path:
    """The folder RUN names: a built-in model's cache folder, else the path itself."""
    from prunekit.errors import PrunekitError
    from prunekit.models.registry import BUILTIN_MODELS, builtin_dir, is_installed

    if spec in BUILTIN_MODELS:
        if not is_installed(spec):
            raise PrunekitError(
                f"built-in model '{spec}' is not installed; run: prunekit install {spec}"
            )
        return builtin_dir(spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise PrunekitError(
            f"'{spec}' not found: give a prunekit run folder, HF folder or built-in"
        )
    if not path.is_dir():
        raise PrunekitError(f"'{spec}' is a file; give a prunekit run folder or HF model folder")
    return path


def run(args: argparse.Namespace) -> int:
    from prunekit.errors import PrunekitError
    from prunekit.export.gguf import check_quant, export_gguf

    check_quant(args.quant)
    if args.output.suffix != ".gguf":
        raise PrunekitError(f"-o '{args.output}' should end in .gguf")
    result = export_gguf(
        _folder(args.run),
        args.output,
        args.quant,
        force=args.force,
        progress=not args.no_progress,
    )
    types = ", ".join(f"{n} {k}" for k, n in sorted(result.tensors.items()))
    print(
        f"{result.path}: {result.arch}, {result.quant}, {result.bytes / 2**20:.1f} MiB "
        f"({types} tensors); vocabulary {result.vocab} tokens, {result.merges} merges, "
        f"pre-tokenizer {result.pre_tokenizer}"
    )
    print(f"run it: prunekit eval {result.path} --humaneval --speed")
    return 0
