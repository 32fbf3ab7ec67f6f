"""Options models: one pydantic class per operation, method or allocation is its own schema.

A field carries its default, bounds (`Field(ge=…)`), help (`description`) and, where it needs
them, a `Choice` (a closed set, maybe a registry), a `Msg` (its own error line) and `Names` (how
the CLI, a recipe or the API spell it). `parse(data, surface)` validates and turns the first
problem into one line naming the field as that surface spells it (`--seq-len` / `seq_len`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import NoneType, UnionType
from typing import Any, ClassVar, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticUndefined, core_schema

from prunekit.errors import PrunekitError


class Surface(Enum):
    """Where options come from; each spells a field its own way."""

    API = "option"
    CLI = "flag"
    RECIPE = "key"


MISSING = object()


@dataclass(frozen=True)
class Names:
    """Spellings other than the field name: `cli` a flag (no leading '-': positional), `recipe`
    a key, `api` a keyword; `switch`: a value-less flag storing this value; `hidden`: surfaces
    that do not offer the field."""

    cli: str | None = None
    recipe: str | None = None
    api: str | None = None
    switch: Any = MISSING
    hidden: tuple[Surface, ...] = ()


@dataclass(frozen=True)
class Msg:
    """The field's own error line for any bad value: `{value}` and `<field>` names in it."""

    template: str


class OptionError(PrunekitError):
    """A bad option as a template whose `<field>` markers each surface spells its own way."""

    def __init__(self, template: str, owner: type[Options] | None = None) -> None:
        super().__init__(template)
        self.template, self.owner = template, owner

    def render(self, surface: Surface) -> str:
        def spell(match: re.Match) -> str:
            field = match.group(1)
            owner = self.owner
            if owner and field in owner.model_fields:
                return owner.spell(field, surface)
            return "--" + field.replace("_", "-") if surface is Surface.CLI else field

        return re.sub(r"<(\w+)>", spell, self.template)

    def __str__(self) -> str:
        return self.render(Surface.API)


@dataclass(frozen=True)
class Choice:
    """The value must be one of `values` (a tuple, or a callable such as a registry read late)."""

    values: Iterable[str] | Callable[[], Iterable[str]]
    message: str = "<{field}> '{value}' is not one of: {choices}"

    def names(self) -> list[str]:
        return list(self.values() if callable(self.values) else self.values)

    def __get_pydantic_core_schema__(self, source, handler) -> core_schema.CoreSchema:
        return core_schema.with_info_after_validator_function(self._check, handler(source))

    def _check(self, value, info):
        names = self.names()
        if value is not None and value not in names:
            raise OptionError(
                self.message.format(field=info.field_name, value=value, choices=", ".join(names))
            )
        return value


def _bare(annotation) -> type:
    """`float | None` → float; `str | Tensor` → str: the type a flag parses its text to."""
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not NoneType]
        return _bare(args[0])
    return get_origin(annotation) or annotation


class _Shown:
    """A bad value as a message shows it: numbers alike whether typed 0 or parsed 0.0."""

    def __init__(self, value) -> None:
        self.value = value

    def __repr__(self) -> str:
        number = isinstance(self.value, int | float) and not isinstance(self.value, bool)
        return f"{self.value:g}" if number else repr(self.value)

    __str__ = __repr__


class Options(BaseModel):
    """Base of every options model: unknown keys and loose types are errors, on every surface."""

    model_config = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True)
    prefix: ClassVar[str] = ""  # flags of this model are --PREFIX-field (e.g. --owl-m)

    @classmethod
    def meta(cls, field: str, kind: type):
        """The field's metadata object of type `kind` (Names, Choice, Msg, a bound), or None."""
        return next((m for m in cls.model_fields[field].metadata if isinstance(m, kind)), None)

    @classmethod
    def names(cls, field: str) -> Names:
        return cls.meta(field, Names) or Names()

    @classmethod
    def spell(cls, field: str, surface: Surface) -> str:
        names = cls.names(field)
        if surface is Surface.CLI:
            head = f"{cls.prefix}-" if cls.prefix else ""
            return names.cli or "--" + head + field.rstrip("_").replace("_", "-")
        given = names.recipe if surface is Surface.RECIPE else names.api
        return given or field.rstrip("_")

    @classmethod
    def optional(cls, field: str) -> bool:
        """Whether the field takes None as a value (not only as its default)."""
        annotation = cls.model_fields[field].annotation
        return get_origin(annotation) in (Union, UnionType) and NoneType in get_args(annotation)

    @classmethod
    def fields_on(cls, surface: Surface) -> list[str]:
        return [f for f in cls.model_fields if surface not in cls.names(f).hidden]

    @classmethod
    def keys(cls, surface: Surface) -> dict[str, str]:
        """Spelling → field name, in field order, for the fields `surface` offers."""
        return {cls.spell(f, surface): f for f in cls.fields_on(surface)}

    @classmethod
    def defaults(cls, surface: Surface = Surface.RECIPE) -> dict[str, Any]:
        return {
            cls.spell(f, surface): cls.model_fields[f].default
            for f in cls.fields_on(surface)
            if cls.model_fields[f].default is not PydanticUndefined
        }

    def __init__(self, **values: Any) -> None:
        """Built directly too (`RecoveryConfig(lr=5)`), a bad value is one OptionError line."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise OptionError(type(self)._line(exc.errors()), type(self)) from None
        except OptionError as exc:
            if exc.owner is None:
                exc.owner = type(self)
            raise

    @classmethod
    def check(cls, values: Mapping[str, Any]):
        """An instance from values by field name; OptionError (a template) on the first problem."""
        return cls(**values)

    @classmethod
    def parse(cls, data: Mapping[str, Any], surface: Surface = Surface.API):
        """An instance from `data` spelled as `surface` spells it; PrunekitError, one line."""
        keys = cls.keys(surface)
        for key in data:
            if key not in keys:
                noun = surface.value
                raise PrunekitError(f"unknown {noun} '{key}'; valid {noun}s: {', '.join(keys)}")
        try:
            return cls.check({keys[k]: v for k, v in data.items()})
        except OptionError as exc:
            raise PrunekitError(exc.render(surface)) from None

    @classmethod
    def from_keys(cls, options: Mapping[str, Any] | None, owner: str):
        """An instance from a nested options mapping (a recipe's or the API's spelling, e.g.
        `allocation_options`); unknown keys are one OptionError naming `owner`."""
        options = dict(options or {})
        keys = cls.keys(Surface.RECIPE)
        unknown = sorted(set(options) - set(keys))
        if unknown:
            raise OptionError(
                f"unknown option(s) {', '.join(unknown)} for {owner}; allowed: "
                f"{', '.join(keys) or 'none'}"
            )
        return cls.check({keys[k]: v for k, v in options.items()})

    @classmethod
    def of(cls, config, options: Mapping[str, Any]):
        """`config` as it is, or one made from the API's keyword `options` (not both)."""
        if config is None:
            return cls.parse(options, Surface.API)
        if options:
            raise PrunekitError(
                f"pass a {cls.__name__} or keyword options, not both (got {', '.join(options)})"
            )
        return config

    def dump(self, surface: Surface = Surface.RECIPE) -> dict[str, Any]:
        """The values by the spelling of `surface` (what a report records)."""
        return {self.spell(f, surface): getattr(self, f) for f in self.fields_on(surface)}

    @classmethod
    def _line(cls, errors: list[dict]) -> str:
        """The first pydantic error (unknown keys first) as prunekit's one-line template."""
        errors = sorted(errors, key=lambda e: e["type"] != "extra_forbidden")
        e = errors[0]
        field, value, kind = str(e["loc"][0]), _Shown(e.get("input")), e["type"]
        if kind == "extra_forbidden":
            return f"unknown key '{field}'; valid keys: {', '.join(cls.model_fields)}"
        msg = cls.meta(field, Msg)
        if msg is not None:
            return msg.template.format(value=value)
        if kind == "missing":
            return f"'<{field}>' is required"
        bare = _bare(cls.model_fields[field].annotation)
        if bare is bool:
            return f"<{field}> must be true or false, got {value!r}"
        if bare is int:
            ge = cls.meta(field, at.Ge)
            low = f" ≥ {ge.ge}" if ge else ""
            return f"<{field}> must be a whole number{low}, got {value!r}"
        if bare is float:
            return f"<{field}> must be {cls._interval(field)}, got {value!r}"
        if bare is dict:
            return f"<{field}> must be a mapping of key: value, got {type(value.value).__name__}"
        if bare in (list, tuple):
            return f"<{field}> must be a list, got {value!r}"
        if bare is str:
            return f"<{field}> must be text, got {value!r}"
        return f"<{field}>: {e['msg']}"

    @classmethod
    def _interval(cls, field: str) -> str:
        ge, gt = cls.meta(field, at.Ge), cls.meta(field, at.Gt)
        le, lt = cls.meta(field, at.Le), cls.meta(field, at.Lt)
        low = f"[{ge.ge:g}" if ge else f"({gt.gt:g}" if gt else None
        high = f"{le.le:g}]" if le else f"{lt.lt:g})" if lt else None
        if low and high:
            return f"a number in {low}, {high}"
        if low:
            return f"a number {'≥' if ge else '>'} {low[1:]}"
        return "a number"
