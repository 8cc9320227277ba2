# inboxlab — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Demo world size for `make run`; override e.g. `make run RECIPIENTS=100000 DAYS=90`.
RECIPIENTS ?= 10000
DAYS       ?= 60
SEED       ?= 7

.PHONY: run test check install demo clean bench help

help:
	@echo "make run    - set up, build the demo (events, features, models) and serve the API"
	@echo "make test   - set up and run the test suite"
	@echo "make check  - ruff (format + lint) and mypy"
	@echo "make bench  - run the benchmarks in benchmarks/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs exactly the locked versions (requirements.lock, compiled by uv from pyproject.toml);
# re-runs only when the lock or pyproject change. uv writes no bytecode unless asked: where
# PYTHONDONTWRITEBYTECODE is set (containers, CI), every process then compiled each library
# module it imported from source again, and a server took 24-33 s to answer, not 11-13 s.
$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet --upgrade "uv>=0.4"
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	# The CDNOW purchase log ships inside lifetimes; only its data file is used, so its
	# (old, heavy) dependencies are not installed.
	$(BIN)/uv pip install --python $(BIN)/python --no-deps --compile-bytecode "lifetimes==0.11.3"
	touch $(STAMP)

install: $(STAMP)

# HOST and PORT reach both commands as settings, so the printed curl example matches.
export INBOXLAB_API__HOST ?= $(HOST)
export INBOXLAB_API__PORT ?= $(PORT)

demo: $(STAMP)
	$(BIN)/inboxlab demo --recipients $(RECIPIENTS) --days $(DAYS) --seed $(SEED)

run: demo
	$(BIN)/inboxlab serve

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy inboxlab features training serving experiments

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-only -p no:cacheprovider

clean:
	rm -rf $(VENV) data
