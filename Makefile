# The two commands a fresh clone needs: `make run` (the local stack) and `make test` (the suite).
# Python 3.13, found by scripts/find-python.sh (which says what to install when there is none).
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: setup run test lint typecheck bench clean

setup: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): requirements.txt requirements-dev.txt
	rm -rf $(VENV)
	"$$(scripts/find-python.sh)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: setup
	$(PY) -m devhost

test: setup lint typecheck
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy .

bench: setup
	$(PY) -m bench.polling
	$(PY) -m bench.copy

clean:
	rm -rf $(VENV) node_modules .devhost .pytest_cache .mypy_cache .ruff_cache
