# The README's two commands: `make demo` and `make test`. Each bootstraps what it needs:
# uv (installed with pip if missing) and .venv from the committed uv.lock.
SHELL := /bin/bash
PYTHON ?= python3
UV_BIN := $(shell command -v uv 2>/dev/null)
UV := $(if $(UV_BIN),$(UV_BIN),$(PYTHON) -m uv)
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/*.npz),)
export MEDPIPE_DATA_DIR ?= $(SHARED_DATA)
endif
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
# Some machines set PYTHONDONTWRITEBYTECODE=1: then every process (each test, DVC stage, Prefect server) compiles
# torch, MLflow and Prefect from source again. Cached bytecode halves import CPU (`import torch, lightning,
# mlflow, prefect`: 22 s -> 12 s user here). Python writes it into .venv and __pycache__/ (git-ignored).
unexport PYTHONDONTWRITEBYTECODE
PROFILE ?= smoke
PYTEST_ARGS ?=
MEDPIPE_ARGS ?=
ifeq ($(CI),true)
# CI: list the slowest tests, keep no cache between runs, never wait forever.
PYTEST_ARGS += --durations=25 -p no:cacheprovider --timeout=1800
endif

.PHONY: demo test test-fast lint bench setup clean

setup: ## install uv if missing, then create .venv from uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv || $(PYTHON) -m pip install --quiet --user uv
	@echo "setup: .venv from uv.lock (uv sync --frozen)"
	@$(UV) sync --frozen --quiet

demo: setup ## the whole pipeline on BreastMNIST with embedded defaults (no server); -v logs: MEDPIPE_ARGS=-v
	@$(UV) run --frozen medpipe $(MEDPIPE_ARGS) run --profile $(PROFILE)

test: setup ## the test suite (real DVC, MLflow, Prefect, uvicorn, PostgreSQL; no GPU, no network)
	$(UV) run --frozen pytest $(PYTEST_ARGS)

test-fast: setup ## the fast lane: everything but the tests marked slow (training, servers, DDP, whole-stack imports, DVC roundtrips) and PostgreSQL
	$(UV) run --frozen pytest -m "not slow and not postgres" $(PYTEST_ARGS)

lint: setup ## ruff, and the layer contracts (import-linter, [tool.importlinter] in pyproject.toml)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen lint-imports

bench: setup ## speed and quality targets, measured side by side (see benchmarks/)
	$(UV) run --frozen python benchmarks/cli_startup.py
	$(UV) run --frozen python benchmarks/inference.py
	$(UV) run --frozen python benchmarks/train_throughput.py
	$(UV) run --frozen python benchmarks/drift_speed.py

clean: ## remove local state (MLflow, DVC cache/remote, reports, inference log) and prepared data
	rm -rf .medpipe data/prepared data/models data/metrics data/plots
