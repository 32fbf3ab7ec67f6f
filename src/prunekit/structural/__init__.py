"""Structural pruning: drop unused tokens, whole decoder layers and FFN channels; export stays standard."""
