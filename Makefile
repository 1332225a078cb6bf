# occrecon — `make help` lists the targets. Everything runs inside ./.venv, created on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch 2.13.0 installs in about a minute; GPU users see README "GPU install".
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: help venv demo test test-fast test-full lint bench clean clean-runs

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP) ## create ./.venv and install occrecon with its dev tools

demo: $(STAMP) ## main job on the embedded synthetic default: writes runs/demo/report.md
	$(BIN)/occrecon demo --out runs/demo --overwrite

test: $(STAMP) ## the test suite CI runs (everything but GPU tests, ~5 min on 2 cores)
	$(BIN)/python -m pytest -q -m "not gpu" -p no:cacheprovider

test-fast: $(STAMP) ## skip tests marked slow
	$(BIN)/python -m pytest -q -m "not gpu and not slow" -p no:cacheprovider

test-full: $(STAMP) ## every test, GPU ones included (they skip without CUDA)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP) ## ruff
	$(BIN)/ruff check occrecon datamodules tests bench

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[bench]"
	@touch $@

BENCHES ?= render norm pipeline train_step dataloading synth
bench: $(STAMP) $(VENV)/.bench-installed ## quick benchmarks, each with its ratio to a peer measured in the same run (Embree, Deep3D's coarse-only chain, the training step)
	@for b in $(BENCHES); do echo "== bench/$$b.py --quick"; $(BIN)/python bench/$$b.py --quick || exit 1; done
	@echo "== bench/check_gpu.py (backends; --all on a GPU, see README Benchmarks)"; $(BIN)/python bench/check_gpu.py

clean-runs: ## delete runs/
	rm -rf runs

clean: ## delete the venv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
