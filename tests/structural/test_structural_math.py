"""Small exact checks of structural/ (values worked out by hand), added for the mutants mutmut
found unchecked (tests/MUTATION.md, structural/)."""

from __future__ import annotations

from prunekit.structural.depth import DepthResult


def test_depth_result_to_dict_names_every_field():
    """The report section: every field under its own name, round keys as strings."""
    result = DepthResult("angular", True, [2, 0], [{0: 0.5, 2: 0.25}, {0: 0.75}], False, {"x": 1})
    assert result.to_dict() == {
        "criterion": "angular",
        "last_token": True,
        "rescore": False,
        "removed": [2, 0],
        "rounds": [{"0": 0.5, "2": 0.25}, {"0": 0.75}],
        "cost": {"x": 1},
    }
