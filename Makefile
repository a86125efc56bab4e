# The two commands of the README. Both create .venv when it is missing and
# (re)install the package when pyproject.toml changed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench bench-quick docs clean test-matrix dist release-check

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
	$(BIN)/ruff check src tests $(wildcard examples benchmarks) noxfile.py .ci

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

# The test suite (pytest only) on every supported Python installed here: pyenv's versions
# or python3.X on PATH, each in a fresh virtualenv under .nox/ (see noxfile.py). Versions
# that are not installed are listed and skipped. PYTHONS="3.10 3.12" runs only those.
test-matrix: $(VENV)/.installed-dev
	$(BIN)/nox --sessions tests $(if $(strip $(PYTHONS)),--python $(PYTHONS))

# The sdist and the wheel as a release builds them (the wheel from the sdist), checked.
dist: $(VENV)/.installed-dev
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*
	$(BIN)/python .ci/check_dist.py dist

# The wheel installed into a clean virtualenv (not editable, with the local extra), run
# from outside the source tree: an import smoke test, then the demo.
release-check: dist
	rm -rf .smoke
	$(PYTHON) -m venv .smoke/venv
	.smoke/venv/bin/python -m pip install --quiet "$$(ls dist/*.whl)[local]"
	cd .smoke && venv/bin/python -I ../.ci/smoke.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis site .nox dist .smoke
