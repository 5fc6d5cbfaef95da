"""``python -m tools.demo_models``: the demo models' build and eval commands."""

from tools.demo_models.cli import app

app(prog_name="python -m tools.demo_models")
