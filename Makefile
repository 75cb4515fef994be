# Two commands for people: `make demo` and `make test`. Each sets itself up on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test test-slow lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/invdes run conf/demo_molecules.yaml

test: $(STAMP)
	$(BIN)/pytest -m 'not slow'

test-slow: $(STAMP)
	$(BIN)/pytest -m slow || [ $$? -eq 5 ]  # exit 5: no slow tests collected

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy pipeline chem oracles flows materials

clean:
	rm -rf $(VENV) .invdes .pytest_cache .mypy_cache .ruff_cache
