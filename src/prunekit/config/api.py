"""API functions whose keyword arguments are an options model's fields."""

from __future__ import annotations

import inspect

from pydantic_core import PydanticUndefined

from prunekit.config.options import Options, Surface


def takes(config: type[Options]):
    """Decorator: the function's `**options` are `config`'s fields; its signature and docstring
    list them (for help() and editors); the function validates them with `config.parse`."""

    def wrap(fn):
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
        for field in config.fields_on(Surface.API):
            info = config.model_fields[field]
            default = inspect.Parameter.empty if info.default is PydanticUndefined else info.default
            params.append(
                inspect.Parameter(
                    config.spell(field, Surface.API),
                    inspect.Parameter.KEYWORD_ONLY,
                    default=default,
                    annotation=info.annotation,
                )
            )
        fn.__signature__ = sig.replace(parameters=params)
        lines = [
            f"    {config.spell(f, Surface.API)}: {config.model_fields[f].description or ''}"
            for f in config.fields_on(Surface.API)
        ]
        fn.__doc__ = (
            (fn.__doc__ or "") + f"\n\n    Options ({config.__name__}):\n" + "\n".join(lines)
        )
        return fn

    return wrap
