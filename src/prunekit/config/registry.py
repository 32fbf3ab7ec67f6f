"""One registry mechanism for every named choice: methods, allocations, steps, benchmarks, families."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Generic, TypeVar

from prunekit.errors import PrunekitError

T = TypeVar("T")


class Registry(MutableMapping[str, T], Generic[T]):
    """Named entries of one kind, in registration order; `lookup` of an unknown name is one line
    listing the valid ones. Entries with a `name` class attribute register under it."""

    def __init__(self, kind: str, entries: Iterable[T] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        for entry in entries:
            self.register(entry)

    @classmethod
    def of(cls, kind: str, entries: Mapping[str, T]) -> Registry[T]:
        """A registry of entries that carry no name of their own, by the mapping's keys."""
        registry: Registry[T] = cls(kind)
        for name, entry in entries.items():
            registry.register(entry, name)
        return registry

    def register(self, entry: T, name: str | None = None) -> T:
        """Add `entry` under `name` (default: its `name` attribute); usable as a class decorator."""
        key = name or entry.name  # type: ignore[attr-defined]
        if key in self._entries:
            raise ValueError(f"{self.kind} '{key}' is registered twice")
        self._entries[key] = entry
        return entry

    def lookup(self, name: str) -> T:
        """The entry `name`, or one line naming the valid ones (`get` stays Mapping's)."""
        if name not in self._entries:
            raise PrunekitError(
                f"unknown {self.kind} '{name}'; choose one of: {', '.join(self._entries)}"
            )
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __setitem__(self, name: str, entry: T) -> None:
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"
