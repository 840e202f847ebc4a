# The two commands a new user needs: `make demo` and `make test`
# (`make test-fast` is the quick subset to run while editing).
# Each creates .venv on first use and reinstalls when setup.cfg changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint docs clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tests,docs]'
	touch $(STAMP)

demo: $(STAMP)
	cd testproject && ../$(BIN)/python manage.py migrate --noinput
	cd testproject && ../$(BIN)/python manage.py runserver 127.0.0.1:8000

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The documentation must build without a single warning.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

test: lint docs
	$(BIN)/pytest

# The tests that start no process (no servers, workers, browser or forks; see
# tests/support/fast.py), without lint and docs, spread over pytest-xdist
# workers: most of them wait (expiry, timeouts) rather than compute, so more
# workers than cores overlap the waits.  For the edit-test loop.
FAST_WORKERS ?= 4
test-fast: $(STAMP)
	$(BIN)/pytest --fast -q -n $(FAST_WORKERS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
