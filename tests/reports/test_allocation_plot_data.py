"""What the block-profile plot draws, read back from the figure (not just that a PNG exists)."""

import matplotlib.figure
import pytest

from prunekit.reports.allocation_plots import plot_block_profiles


@pytest.fixture
def saved(monkeypatch):
    """Every figure passed to savefig, kept for inspection."""
    figures = []
    real = matplotlib.figure.Figure.savefig

    def keep(fig, *args, **kwargs):
        figures.append(fig)
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return figures


def lines(ax) -> dict[str, list[float]]:
    return {line.get_label(): [float(y) for y in line.get_ydata()] for line in ax.get_lines()}


def test_each_panel_plots_its_wanda_runs_and_the_outlier_ratio(saved, tmp_path):
    rows = [
        {"method": "wanda", "sparsity": 0.6, "allocation": "uniform", "block_sparsity": [0.6] * 3},
        {
            "method": "wanda",
            "sparsity": 0.6,
            "allocation": "owl",
            "block_sparsity": [0.55, 0.6, 0.65],
            "outlier_ratio": [0.03, 0.02, 0.01],
        },
        {
            "method": "wanda",
            "sparsity": 0.5,
            "allocation": "neuroal",
            "block_sparsity": [0.4, 0.5, 0.6],
        },
        {
            "method": "sparsegpt",
            "sparsity": 0.5,
            "allocation": "owl",
            "block_sparsity": [0.1, 0.5, 0.9],
        },
    ]
    assert plot_block_profiles(rows, "m", tmp_path / "b.png").is_file()
    (fig,) = saved
    main = [ax for ax in fig.axes if ax.get_xlabel() == "block"]
    assert [ax.get_title() for ax in main] == ["m, s = 0.60", "m, s = 0.50"]  # densest last
    assert lines(main[0]) == {"uniform": [0.6] * 3, "owl": [0.55, 0.6, 0.65]}
    assert lines(main[1]) == {"neuroal": [0.4, 0.5, 0.6]}  # the SparseGPT run is not drawn
    twins = [ax for ax in fig.axes if ax.get_ylabel().startswith("OWL outlier")]
    assert len(twins) == 1
    assert list(lines(twins[0]).values())[0] == pytest.approx([3.0, 2.0, 1.0])
