"""Typed report sections round-trip and read reports written before they existed."""

from __future__ import annotations

from prunekit.reports.sections import MethodSection


def test_method_section_round_trips_and_labels():
    section = MethodSection("wanda", "unstructured", "neuroal", 0.7)
    assert MethodSection.from_report({"method": section.to_dict()}) == section
    assert section.label == "wanda 70% + neuroal"
    assert MethodSection("sparsegpt", "2:4", sparsity=0.5).label == "sparsegpt 2:4"


def test_older_reports_take_the_target_from_the_sparsity_section():
    old = {"method": {"name": "wanda", "pattern": "unstructured", "allocation": "uniform"}}
    assert MethodSection.from_report({**old, "sparsity": {"target": 0.5}}).label == "wanda 50%"
    assert MethodSection.from_report(old).label == "wanda"
    assert MethodSection.from_report({}) is None
    assert MethodSection.from_report({"method": {"name": "x", "extra": 1}}).name == "x"
