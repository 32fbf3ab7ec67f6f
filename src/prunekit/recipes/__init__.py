"""Recipes: YAML files of ordered pruning steps (vocabulary, depth, width, unstructured) plus evaluation."""

from prunekit.recipes.schema import Recipe, Step, load_recipe, validate

__all__ = ["Recipe", "Step", "load_recipe", "validate"]
