# One command each: `make demo` sets up and runs an example; `make test` sets up and runs every check.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install system-deps demo test lint typecheck pytest schema clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# Debian's Chromium (the Prefect UI test) and Graphviz (`plan2flow graph -f svg`); no browser download.
system-deps:
	@command -v chromium >/dev/null && command -v dot >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: chromium graphviz"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq --no-install-recommends chromium graphviz >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null && \
	        apt-get install -y -qq --no-install-recommends chromium graphviz >/dev/null; }; \
	  else \
	    echo "chromium or graphviz is missing: their tests skip (and fail under CI=true)"; \
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

typecheck: install
	$(BIN)/mypy compiler

pytest: install system-deps
	$(BIN)/pytest --cov --cov-report=term --cov-fail-under=80
	$(BIN)/coverage report --include='compiler/*' --fail-under=95 > /dev/null || \
		{ $(BIN)/coverage report --include='compiler/*'; echo "compiler/ coverage is below 95%"; exit 1; }

test: lint typecheck pytest

schema: install
	$(BIN)/plan2flow schema -o schemas/plan.schema.json

bench: install
	$(BIN)/python bench/compile.py 10000

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .coverage
