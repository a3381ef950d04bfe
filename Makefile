# One command each: `make demo` sets up and runs an example; `make test` sets up and runs every check.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install demo test lint typecheck pytest schema clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

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

pytest: install
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
