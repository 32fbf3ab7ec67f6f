from prunekit.reports.allocation_plots import plot_block_profiles


def test_block_profiles_one_panel_per_sparsity_and_nothing_without_a_non_uniform_run(tmp_path):
    row = {"method": "wanda", "sparsity": 0.6, "block_sparsity": [0.6, 0.6]}
    uniform = {**row, "allocation": "uniform"}
    assert plot_block_profiles([uniform], "m", tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    owl = {
        **row,
        "allocation": "owl",
        "block_sparsity": [0.55, 0.65],
        "outlier_ratio": [0.02, 0.01],
    }
    neuroal = {**row, "allocation": "neuroal", "block_sparsity": [0.5, 0.7]}
    path = plot_block_profiles([uniform, owl, neuroal], "m", tmp_path / "b.png")
    assert path.stat().st_size > 1000
