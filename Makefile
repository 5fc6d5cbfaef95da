# The two commands: `make serve` and `make test`.  Both install first; ./install.sh returns
# in seconds when .venv is already installed from this pyproject.toml (FORCE=1 reinstalls).
# `make test PYTEST_ARGS="tests/jobs -x"` runs part of the suite.
# `make demo-model ARGS="eval --out /tmp/sheet.png"` runs the demo models' build and eval
# tools (tools/demo_models, not part of the package; docs/demo-model.md).

.PHONY: install serve test demo-model

install:
	./install.sh

serve: install
	.venv/bin/ronghe serve $(SERVE_ARGS)

test: install
	.venv/bin/ruff check
	.venv/bin/python -m pytest $(PYTEST_ARGS)

demo-model: install
	.venv/bin/python -m tools.demo_models $(ARGS)
