# Two commands for people: `make demo` and `make test`. Each sets itself up on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LOCK := constraints.txt

.PHONY: setup demo test test-slow lint lock clean

# Installs exactly the versions in $(LOCK) (pip constraints), so that a fresh install months
# from now, CI and the workers of a Dask cluster get what was tested.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c $(LOCK) torch==2.13.0
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev]' --config-settings editable_mode=compat
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

# Refresh the lock: resolve pyproject.toml's dependencies anew in a scratch environment and
# write the versions pip chose; then run `make test` and commit $(LOCK).
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet torch==2.13.0
	.lock-venv/bin/pip install --quiet '.[dev]'
	(echo "# Resolved versions that 'make' and .ci/run install from (pip constraints); refresh with 'make lock'."; \
	 .lock-venv/bin/pip freeze --exclude-editable | grep -vi '^invdes' | sed -E 's/^(torch==[^+]*)\+.*/\1/') > $(LOCK)
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .invdes .pytest_cache .mypy_cache .ruff_cache
