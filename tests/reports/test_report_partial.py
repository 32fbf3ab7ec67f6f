"""report.md renders from whatever a report holds: `prunekit eval` may update a report that an
earlier tool (or a user) wrote with fewer fields."""

from prunekit.reports.report import render_markdown


def test_a_report_without_nonzero_counts_renders():
    md = render_markdown({"command": "dense", "params": {"total": 1234}})
    assert "- parameters: 1,234 total" in md and "non-zero" not in md
    md = render_markdown({"params": {"total": 1234, "nonzero": 1000}})
    assert "1,234 total, 1,000 non-zero" in md
