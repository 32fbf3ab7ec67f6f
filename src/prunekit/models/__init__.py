"""Model sources (built-in packages, local folders, GGUF files, hub ids) and architecture adapters."""
