# Everything installs itself: a private uv in .tools/, the project and its dependencies in .venv/.
# Needs only python3 (3.11+), git and make.
PYTHON ?= python3
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
VENV   := .venv
STAMP  := $(VENV)/.installed
RUN    := $(UV) run --frozen --no-sync
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Compile bytecode at install: with PYTHONDONTWRITEBYTECODE set, every process would otherwise
# compile dagster, pyarrow and the rest from source at each start (seconds per process).
export UV_COMPILE_BYTECODE := 1

.PHONY: install demo test test-reliability dev bench lint typecheck clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(RUN) hoop-sessions demo

test: $(STAMP)
	$(RUN) pytest -n 2 --dist loadfile -m "not reliability"

test-reliability: $(STAMP)
	$(RUN) pytest -m reliability

dev: $(STAMP)
	$(RUN) python -m hoop_sessions.cli.devserver

bench: $(STAMP)
	$(RUN) python -m benchmarks.run

lint: $(STAMP)
	$(RUN) ruff check src pipelines tests benchmarks
	$(RUN) ruff format --check src pipelines tests benchmarks
	$(RUN) mypy
	$(RUN) lint-imports

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache data
