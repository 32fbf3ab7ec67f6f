"""Pattern parsing and the sparsity it implies; bad input is one line naming the fix."""

import pytest

from prunekit.errors import PrunekitError
from prunekit.methods.patterns import UNSTRUCTURED, Pattern, parse_pattern, resolve_sparsity
from prunekit.methods.pruners import PRUNERS, get_pruner


def test_parse_and_print():
    assert parse_pattern("unstructured") == UNSTRUCTURED == Pattern(0, 0)
    assert parse_pattern("2:4") == Pattern(2, 4) and parse_pattern("4:8") == Pattern(4, 8)
    assert str(Pattern(2, 4)) == "2:4" and str(UNSTRUCTURED) == "unstructured"
    assert Pattern(2, 4).is_nm and not UNSTRUCTURED.is_nm
    assert Pattern(1, 4).sparsity == 0.25


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("2-4", "unknown pattern '2-4'; use unstructured or N:M with 0 < N < M, e.g. 2:4 or 4:8"),
        ("a:b", "unknown pattern 'a:b'"),
        ("1:2:3", "unknown pattern '1:2:3'"),
        ("4:4", "pattern '4:4' needs 0 < N < M, e.g. 2:4"),
        ("0:4", "pattern '0:4' needs 0 < N < M"),
        ("5:4", "pattern '5:4' needs 0 < N < M"),
    ],
)
def test_bad_patterns(text, match):
    with pytest.raises(PrunekitError, match=f"^{match}") as exc:
        parse_pattern(text)
    if match.startswith("unknown"):  # the ValueError behind it is not shown
        assert exc.value.__suppress_context__


def test_resolve_sparsity():
    assert resolve_sparsity(None, Pattern(2, 4)) == 0.5
    assert resolve_sparsity(0.5, Pattern(2, 4)) == 0.5
    assert resolve_sparsity(0.0, UNSTRUCTURED) == 0.0
    assert resolve_sparsity(0.7, UNSTRUCTURED) == 0.7
    assert isinstance(resolve_sparsity(0, UNSTRUCTURED), float)


@pytest.mark.parametrize(
    ("sparsity", "pattern", "match"),
    [
        (
            0.6,
            Pattern(2, 4),
            "^pattern 2:4 means sparsity 0.5, not 0.6; drop --sparsity or set it to N/M$",
        ),
        (0.5 + 2e-9, Pattern(2, 4), "not 0.5"),
        (None, UNSTRUCTURED, r"^give --sparsity S \(0 ≤ S < 1\) or an N:M --pattern such as 2:4$"),
        (1.0, UNSTRUCTURED, r"^sparsity 1 is outside \[0, 1\); use e.g. --sparsity 0.5$"),
        (-0.1, UNSTRUCTURED, r"^sparsity -0.1 is outside \[0, 1\)"),
    ],
)
def test_bad_sparsity(sparsity, pattern, match):
    with pytest.raises(PrunekitError, match=match):
        resolve_sparsity(sparsity, pattern)


def test_get_pruner():
    assert {name: type(get_pruner(name)) for name in PRUNERS} == PRUNERS
    with pytest.raises(
        PrunekitError, match="^unknown method 'obs'; choose one of: magnitude, wanda, sparsegpt$"
    ):
        get_pruner("obs")
