"""Argparse flags generated from an options model, and the values they give back."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from prunekit.config.options import MISSING, Choice, Options, Surface, _bare


def dest(config: type[Options], field: str) -> str:
    """The namespace attribute of a field's flag (argparse's own default for that flag)."""
    return config.spell(field, Surface.CLI).lstrip("-").replace("-", "_")


def add_flags(
    parser,
    config: type[Options],
    fields: Iterable[str] | None = None,
    helps: dict[str, str] | None = None,
    keep_defaults: bool = False,
) -> None:
    """One flag per field (all the CLI offers, or `fields` in that order). Unset flags stay None
    (the model's default applies) unless `keep_defaults` puts the field's default in the
    namespace. No argparse `choices`: the model checks them, so the CLI says what a recipe says;
    the help still lists them."""
    for field in config.fields_on(Surface.CLI) if fields is None else fields:
        info = config.model_fields[field]
        names = config.names(field)
        flag = config.spell(field, Surface.CLI)
        kwargs: dict = {"help": (helps or {}).get(field, info.description)}
        if not flag.startswith("-"):
            parser.add_argument(flag, **kwargs)
            continue
        default = info.default if keep_defaults else None
        kwargs |= {"dest": dest(config, field), "default": default}
        bare = _bare(info.annotation)
        if names.switch is not MISSING:
            kwargs |= {"action": "store_const", "const": names.switch}
        elif bare is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = bare if bare in (int, float) else str
            choice = config.meta(field, Choice)
            if choice is not None:
                kwargs["metavar"] = "{" + ",".join(choice.names()) + "}"
        parser.add_argument(flag, **kwargs)


def given(args: argparse.Namespace, config: type[Options], fields=None) -> dict:
    """The fields whose flags were given, by field name."""
    out = {}
    for field in config.fields_on(Surface.CLI) if fields is None else fields:
        value = getattr(args, dest(config, field), None)
        if value is not None:
            out[field] = value
    return out
