"""Typed configuration: one pydantic model per operation, method and allocation generates the CLI
flags, the recipe step's checks and the API keywords; one `Registry` for named choices."""

from prunekit.config.options import Choice, Msg, Names, OptionError, Options, Surface
from prunekit.config.registry import Registry

__all__ = ["Choice", "Msg", "Names", "OptionError", "Options", "Registry", "Surface"]
