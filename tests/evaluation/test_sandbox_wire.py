"""Plain data on the judge's pipe: exact builtin values cross, nothing else does."""

from __future__ import annotations

import math
import os

import pytest

from prunekit.evaluation.sandbox_wire import (
    MAX_ANSWER,
    MAX_DEPTH,
    MAX_FRAME,
    WireError,
    decode,
    encode,
    read_frame,
    write_frame,
)


def roundtrip(value):
    return decode(encode(value))


def test_values_and_their_exact_types_survive():
    value = [
        None,
        True,
        0,
        -(10**5000),  # beyond int's default str() digit limit
        2.5,
        float("inf"),
        1e-310,
        3 - 4j,
        "é\n",
        b"\x00\xff",
        (1, (2,)),
        {(1, "a"): [1.0], 2: {3}},
        frozenset({1, 2}),
        set(),
    ]
    out = roundtrip(value)
    assert out == value
    assert [type(v) for v in out] == [type(v) for v in value]
    assert type(out[10][1]) is tuple and type(out[11][2]) is set
    assert math.isnan(roundtrip(float("nan")))
    assert roundtrip(True) is True and roundtrip(None) is None


def test_subclasses_cross_as_their_builtin_value():
    class Liar(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    class Tagged(dict):
        pass

    out = roundtrip([Liar(5), Tagged(a=1)])
    assert out == [5, {"a": 1}] and type(out[0]) is int and type(out[1]) is dict
    assert out[0] != 6


@pytest.mark.parametrize("value", [object(), (x for x in ()), print, [1, object()]])
def test_other_objects_are_refused(value):
    with pytest.raises(WireError, match="not plain data"):
        encode(value)


def test_nesting_beyond_the_cap_is_refused():
    deep: list = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(WireError):
        encode(deep)


@pytest.mark.parametrize(
    "data",
    [
        ["x"],
        ["i", 5],
        ["d", [[1]]],
        "s",
        [],
        ["l", "abc"],
        ["f", "not-hex"],
        ["n", 1],
        ["S", [["l", []]]],
    ],
)
def test_malformed_data_is_refused(data):
    with pytest.raises(WireError):
        decode(data)


def test_frames_roundtrip_and_oversized_frames_are_refused_unread():
    r, w = os.pipe()
    try:
        write_frame(w, {"value": encode([1, "a"])})
        assert decode(read_frame(r)["value"]) == [1, "a"]
        os.write(w, (MAX_FRAME + 1).to_bytes(4, "big") + b"xxxx")
        with pytest.raises(WireError, match="exceeds"):
            read_frame(r)
        assert os.read(r, 4) == b"xxxx"  # the body was never read
        os.write(w, (3).to_bytes(4, "big") + b"[1]")
        with pytest.raises(WireError, match="not a JSON object"):
            read_frame(r)
        os.close(w)
        w = -1
        assert read_frame(r) is None  # end of stream
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_a_smaller_cap_refuses_a_frame_before_reading_it():
    r, w = os.pipe()
    try:
        os.write(w, (MAX_ANSWER + 1).to_bytes(4, "big") + b"xxxx")
        with pytest.raises(WireError, match=f"exceeds the {MAX_ANSWER}-byte cap"):
            read_frame(r, MAX_ANSWER)
        assert os.read(r, 4) == b"xxxx"
    finally:
        os.close(r)
        os.close(w)
