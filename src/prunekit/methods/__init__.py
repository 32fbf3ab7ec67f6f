"""Scorers that decide *which* weights to prune: magnitude, Wanda, SparseGPT (pure tensor math)."""
