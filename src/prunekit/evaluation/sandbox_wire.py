"""Plain data on a pipe: how a candidate's return values reach the trusted judge.

Only exact builtin values cross (None, bool, int, float, complex, str, bytes, and lists,
tuples, dicts, sets, frozensets of them), as length-prefixed JSON frames with a size cap.
`decode` builds fresh builtin objects, so whatever the candidate sends, the judge compares
ordinary values with their ordinary `==`: an object with a forged `__eq__` cannot cross.

This file is also run as the source of the sandbox's child and judge processes (they start
with `python -I -S`, without prunekit on the path), so it imports only the standard library.
"""

from __future__ import annotations

import json
import os
import struct

MAX_FRAME = 32 << 20  # bytes; a longer frame is refused unread
MAX_ANSWER = 1 << 20  # bytes of one candidate answer: decoding costs ~25x its size in the judge
MAX_DEPTH = 200
MAX_ITEMS = 1_000_000

_HEADER = struct.Struct(">I")


class WireError(Exception):
    """A value that is not plain data, or a malformed or oversized frame."""


def encode(value: object) -> object:
    """A JSON-able tagged form of `value`; instances of builtin container/scalar subclasses
    are converted to their builtin base (their value crosses, never their methods)."""
    budget = [MAX_ITEMS]
    return _encode(value, 0, budget)


def _encode(x: object, depth: int, budget: list[int]) -> object:
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0:
        raise WireError("return value too deep or too large")
    if x is None:
        return ["n"]
    if x is True or x is False:
        return ["b", x]
    for base, tag in ((int, "i"), (float, "f"), (complex, "c"), (str, "s"), (bytes, "y")):
        if isinstance(x, base):
            return _scalar(base(x) if type(x) is not base else x, tag)
    for base, tag in ((list, "l"), (tuple, "t"), (set, "S"), (frozenset, "F")):
        if isinstance(x, base):
            return [tag, [_encode(v, depth + 1, budget) for v in base.__iter__(x)]]
    if isinstance(x, dict):
        items = dict.items(x)
        return [
            "d",
            [[_encode(k, depth + 1, budget), _encode(v, depth + 1, budget)] for k, v in items],
        ]
    raise WireError(f"return value of type {type(x).__name__} is not plain data")


def _scalar(x: object, tag: str) -> list:
    if tag == "i":
        return ["i", int.__format__(x, "x")]  # hex: no digit limit on huge ints
    if tag == "f":
        return ["f", float.hex(x)]  # exact, and carries nan/inf
    if tag == "c":
        return ["c", float.hex(x.real), float.hex(x.imag)]
    if tag == "y":
        return ["y", bytes.hex(x)]
    return ["s", str.__str__(x)]


def decode(data: object) -> object:
    """Rebuild builtin values from `encode`'s form; anything else raises WireError."""
    budget = [MAX_ITEMS]
    return _decode(data, 0, budget)


def _decode(d: object, depth: int, budget: list[int]) -> object:
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0 or type(d) is not list or not d:
        raise WireError("malformed value")
    tag, args = d[0], d[1:]
    try:
        if tag == "n" and not args:
            return None
        if tag == "b" and type(args[0]) is bool:
            return args[0]
        if tag == "i" and type(args[0]) is str:
            return int(args[0], 16)
        if tag == "f" and type(args[0]) is str:
            return float.fromhex(args[0])
        if tag == "c" and len(args) == 2:
            return complex(float.fromhex(args[0]), float.fromhex(args[1]))
        if tag == "s" and type(args[0]) is str:
            return args[0]
        if tag == "y" and type(args[0]) is str:
            return bytes.fromhex(args[0])
        if tag in ("l", "t", "S", "F") and type(args[0]) is list:
            items = [_decode(v, depth + 1, budget) for v in args[0]]
            return {"l": list, "t": tuple, "S": set, "F": frozenset}[tag](items)
        if tag == "d" and type(args[0]) is list:
            out = {}
            for pair in args[0]:
                if type(pair) is not list or len(pair) != 2:
                    raise WireError("malformed dict")
                out[_decode(pair[0], depth + 1, budget)] = _decode(pair[1], depth + 1, budget)
            return out
    except (IndexError, TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"malformed value: {exc}") from None
    raise WireError("malformed value")


def write_frame(fd: int, message: dict) -> None:
    """Send one JSON message, length-prefixed."""
    body = json.dumps(message, allow_nan=False).encode()
    if len(body) > MAX_FRAME:
        raise WireError(f"message of {len(body)} bytes exceeds the {MAX_FRAME}-byte cap")
    data = _HEADER.pack(len(body)) + body
    while data:
        data = data[os.write(fd, data) :]


def read_frame(fd: int, cap: int = MAX_FRAME) -> dict | None:
    """Receive one message (None at end of stream); a frame over `cap` bytes is refused
    before any of it is read or decoded."""
    head = _read_exact(fd, _HEADER.size)
    if head is None:
        return None
    (size,) = _HEADER.unpack(head)
    if size > cap:
        raise WireError(f"frame of {size} bytes exceeds the {cap}-byte cap")
    body = _read_exact(fd, size)
    if body is None:
        raise WireError("stream ended inside a frame")
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise WireError(f"frame is not JSON: {exc}") from None
    if type(message) is not dict:
        raise WireError("frame is not a JSON object")
    return message


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            if got == 0:
                return None
            raise WireError("stream ended inside a frame")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
