# The two commands a fresh clone needs: `make run` (the local stack) and `make test` (the suite).
# Python 3.13, found by scripts/find-python.sh (which says what to install when there is none).
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
BROWSER_STAMP := $(VENV)/.browser-checked
# What Azure's remote build installs: requirements.txt alone, for the index check.
INDEX_VENV := .venv-index
INDEX_STAMP := $(INDEX_VENV)/.installed

.PHONY: setup run test lint typecheck index-check bench mutation clean

setup: $(PY_STAMP) $(NODE_STAMP) $(BROWSER_STAMP)

$(PY_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	rm -rf $(VENV)
	"$$(scripts/find-python.sh)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# The command line, `vgw`, into .venv/bin (pyproject.toml installs only the cli package).
	$(PY) -m pip install --quiet --no-deps --editable .
	touch $@

# Debian's Chromium for the browser tests; installed with apt-get where possible, else a warning.
$(BROWSER_STAMP): $(PY_STAMP) scripts/ensure-chromium.sh
	scripts/ensure-chromium.sh
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: setup
	$(PY) -m devhost

test: setup lint typecheck index-check
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy .

$(INDEX_STAMP): requirements.txt
	rm -rf $(INDEX_VENV)
	"$$(scripts/find-python.sh)" -m venv $(INDEX_VENV)
	$(INDEX_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(INDEX_VENV)/bin/python -m pip install --quiet -r requirements.txt
	touch $@

# Index function_app.py with the pinned runtime's loader, as Azure does, in a clean environment.
index-check: $(INDEX_STAMP)
	$(INDEX_VENV)/bin/python scripts/index_app.py

# bench.polling misses one of issue 14's targets (it says which): the other benchmarks still run.
bench: setup
	-$(PY) -m bench.polling
	$(PY) -m bench.copy
	$(PY) -m bench.quota
	$(PY) -m bench.coldstart
	$(PY) -m bench.starvation
	$(PY) -m bench.load

# Mutation testing of the core rules (mutmut, configured in pyproject.toml); not part of `make test`.
# Prints the kill rate per module and the survivors (docs/local-stack.md).
mutation: setup
	$(PY) scripts/mutation.py

clean:
	rm -rf $(VENV) $(INDEX_VENV) node_modules .devhost .pytest_cache .mypy_cache .ruff_cache .test-output *.egg-info mutants
