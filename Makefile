# The two commands of the README. Both create .venv when it is missing and
# (re)install the package when pyproject.toml changed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench bench-quick docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-local: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,local]'
	touch $@ $(VENV)/.installed-local

demo: $(VENV)/.installed-local
	$(BIN)/python -m panoply_async demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests $(wildcard examples benchmarks)

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy --strict src

pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

# Without -q: mkdocs hides warnings under -q, and --strict must see them.
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,local,bench]'
	touch $@ $(VENV)/.installed-dev $(VENV)/.installed-local

# The full benchmark (about 10 minutes): figures, table and plot in benchmarks/results/.
bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks

# The same code on tiny inputs, so that it cannot rot; asserts no speed.
bench-quick: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks --quick --out .bench-quick

test: lint typecheck pytest docs bench-quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis site
