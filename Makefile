# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
# The MNIST files beside the checkout (this workplace); elsewhere they are downloaded and cached.
SHARED_MNIST := $(abspath ../shared/data/mnist)
export SPIKECAST_DATA ?= $(if $(wildcard $(SHARED_MNIST)),$(SHARED_MNIST),)

.PHONY: install demo test lint bench

$(BIN)/spikecast: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: on this workplace it is a local CPU build (override TORCH=...)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	# oracle tests: NeuroBench op counts and the NIR peers (snnTorch, norse, sinabs; pbr is
	# sinabs' version helper) need only these packages; their declared extras (torchvision,
	# torchaudio, samna, dataset loaders, sinabs' nir<=1.0.4) would replace the pinned torch
	# or nir, hence --no-deps
	$(BIN)/python -m pip install -q --no-deps "neurobench==2.3.0" "snntorch==1.0.0" \
		"norse==1.1.0" "sinabs==3.1.3" "pbr==7.1.3"
	# nir 1.0.4 (sinabs' pin) beside the venv, not in it: the test that it reads our files
	$(BIN)/python -m pip install -q --no-deps --target $(VENV)/nir-1.0.4 "nir==1.0.4"
	touch $(BIN)/spikecast

install: $(BIN)/spikecast

demo: install
	$(BIN)/spikecast demo --out spikecast-out

# pytest exits 5 when it collects no test: that is not a failure of the suite.
test: install
	$(BIN)/python -m pytest -m "not slow" -q; rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

lint: install
	$(BIN)/ruff check src tests benchmarks scripts

bench: install
	$(BIN)/python benchmarks/run_all.py --out benchmarks/results
