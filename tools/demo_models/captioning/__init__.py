"""The demo captioner: its data, modules, build and eval."""
