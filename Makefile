# cnnlab's two set-up commands (see README.md): `make demo` and `make test`.
# Each creates .venv with the machine's python3 if it is missing and installs what it needs.
# `make demo` installs the all extra (safetensors, mnist1d, Pillow, tqdm, SymPy, matplotlib, Starlette, uvicorn,
# Numba): every README command then runs (`cnnlab bench` also needs its peer, torch, which is never a dependency).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[all]'
	$(BIN)/cnnlab demo

test: $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	$(BIN)/python -m pytest

lint: $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check ruff
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache src/*.egg-info
