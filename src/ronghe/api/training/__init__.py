"""HTTP API of uploads, datasets and LoRA training."""
