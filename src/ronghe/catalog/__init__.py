"""Users' own LoRA models (trained here or uploaded), callable by name in task_submit."""
