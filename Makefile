# The two commands: `make serve` and `make test`.  Both install first; ./install.sh returns
# in seconds when .venv is already installed from this pyproject.toml (FORCE=1 reinstalls).
# `make test PYTEST_ARGS="tests/jobs -x"` runs part of the suite (PYTEST_WORKERS=0: in one
# process, for debugging).
# `make demo-model ARGS="eval --out /tmp/sheet.png"` runs the demo models' build and eval
# tools (tools/demo_models, not part of the package; docs/demo-model.md).

.PHONY: install serve test demo-model

install:
	./install.sh

serve: install
	.venv/bin/ronghe serve $(SERVE_ARGS)

# One pytest worker per core; a file's tests stay on one worker (--dist loadfile), so its
# module-scoped servers, browsers and tiny models are built once.  PYTEST_WORKERS=0: serial.
PYTEST_WORKERS ?= auto

test: install
	.venv/bin/ruff check
	.venv/bin/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

demo-model: install
	.venv/bin/python -m tools.demo_models $(ARGS)
