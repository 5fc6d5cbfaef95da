"""LoRA training of image models: presets, captions, the trainer, checkpoints and exports."""
