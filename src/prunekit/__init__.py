"""prunekit: prune code LLMs layer by layer, measure what each cut costs, export standard checkpoints.

Python API: `prunekit.prune(...)`, `prunekit.structured(...)`, `prunekit.depth(...)`,
`prunekit.width(...)`, `prunekit.recover(...)`, `prunekit.load_model(...)`, `prunekit.perplexity(...)`,
`prunekit.search(...)`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "load_model",
    "prune",
    "structured",
    "depth",
    "width",
    "perplexity",
    "recover",
    "RecoveryConfig",
    "save",
    "search",
]


def __getattr__(name: str):
    # Lazy: `import prunekit` must stay cheap (the CLI imports torch only when it needs it).
    if name in ("prune", "structured", "depth", "width", "perplexity", "save"):
        from prunekit import api

        return getattr(api, name)
    if name in ("recover", "RecoveryConfig"):
        from prunekit import recovery

        return getattr(recovery, name)
    if name == "search":  # the package is callable: prunekit.search(model, tokenizer, budget=…)
        import importlib

        return importlib.import_module("prunekit.search")
    if name == "load_model":
        from prunekit.models.loading import load_model

        return load_model
    raise AttributeError(name)
