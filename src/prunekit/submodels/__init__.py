"""Language-specific sub-models (DESIGN §3.3): one pruned sub-model per calibration language,
cross-evaluated on every language, with the overlap of their masks.

- `languages`: built-in corpora, user paths (NAME=PATH) and hf:DATASET as calibration/eval splits
- `sweep`: statistics once per language, masks per sparsity, the matrix and overlaps (`run_sweep`)
- `masks`: one-bit-per-weight mask files and applying them (`materialize`)
- `by_generation`: the same sub-models judged by generation (`--benchmark`): pass@1 matrix,
  paired McNemar tests of the diagonal against each off-diagonal cell, table and heatmap
Matrix rendering lives in `prunekit.evaluation.cross_eval`, Jaccard in `prunekit.reports.mask_overlap`.
"""
