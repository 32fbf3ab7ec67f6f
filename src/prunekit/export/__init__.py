"""Writing standard Hugging Face checkpoints that stock transformers loads."""
