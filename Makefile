# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SOURCES := src tests bench

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Marker files: reinstall when the package's build changes (its C extension is built in place).
BUILD_INPUTS := pyproject.toml setup.py src/tradeguard/secrets/_guard.c

$(VENV)/.installed: $(BUILD_INPUTS) | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BUILD_INPUTS) | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/tradeguard demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy --strict src
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -n 2 --dist worksteal

# Each benchmark prints one JSON object; results also land in bench/results/.
bench: $(VENV)/.installed-test
	@mkdir -p bench/results
	@set -e; for b in bench/*.py; do \
	  name=$$(basename $$b .py); case $$name in _*) continue;; esac; \
	  echo "== $$name" >&2; \
	  $(BIN)/python $$b | tee bench/results/$$name.json; \
	done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .pytest_cache .ruff_cache bench/results
