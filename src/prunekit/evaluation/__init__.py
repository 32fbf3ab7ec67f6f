"""Evaluation: perplexity per language, code pass@k by execution, speed, memory, size, energy."""
