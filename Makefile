PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := $(wildcard plugins/*)
STAMP := $(VENV)/.installed

.PHONY: setup run test fuzz lint docs bench bench-quick soak clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(foreach p,$(PLUGINS),$(p)/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=77"
	$(BIN)/python -m pip install -q -e '.[test,fast]' $(foreach p,$(PLUGINS),-e $(p))
	touch $(STAMP)

run: setup
	$(BIN)/p8 run $(ARGS)

test: setup
	$(BIN)/python -m pytest -q $(ARGS)

fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/fuzz $(ARGS)

lint: setup
	$(BIN)/ruff check p8core plugins tests examples bench
	$(BIN)/mypy

docs: setup
	$(BIN)/p8 config-reference > docs/config-reference.md

bench: setup
	$(BIN)/python -m bench.run $(ARGS)

bench-quick: setup
	$(BIN)/python -m bench.run --quick $(ARGS)

soak: setup
	$(BIN)/python -m bench.soak $(ARGS)

clean:
	rm -rf $(VENV)
