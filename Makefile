# The two commands: `make serve` and `make test`.  Both install first; ./install.sh returns
# in seconds when .venv is already installed from this pyproject.toml (FORCE=1 reinstalls).
# `make test PYTEST_ARGS="tests/jobs -x"` runs part of the suite.

.PHONY: install serve test

install:
	./install.sh

serve: install
	.venv/bin/ronghe serve $(SERVE_ARGS)

test: install
	.venv/bin/ruff check
	.venv/bin/python -m pytest $(PYTEST_ARGS)
