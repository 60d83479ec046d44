# The README's two commands: `make demo` and `make test`. Each bootstraps what it needs.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/*.npz),)
export MEDPIPE_DATA_DIR ?= $(SHARED_DATA)
endif
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
PROFILE ?= smoke
PYTEST_ARGS ?=

.PHONY: demo test lint bench setup clean

$(UV):
	$(PYTHON) -m pip install --user --quiet uv || $(PYTHON) -m pip install --quiet uv

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	@touch $@

setup: .venv/.synced ## create the environment from uv.lock

demo: setup ## run the whole pipeline on BreastMNIST with embedded defaults (no server)
	$(UV) run --frozen medpipe run --profile $(PROFILE)

test: setup ## run the test suite (real DVC, MLflow, Prefect, uvicorn; no GPU, no network)
	$(UV) run --frozen pytest $(PYTEST_ARGS)

lint: setup
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

clean:
	rm -rf .medpipe data/prepared
