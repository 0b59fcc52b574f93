# DreamForge front door. `make help` lists the targets.
# Everything installs into ./.venv; nothing is needed beforehand but python3 (3.11+).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SUDO   := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help install system-deps run test test-fast lint proto bench bench-shaped clean

help: ## List the targets with a one-line description
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ml]'
	# The official moondream client, for the compatibility tests: its own dependencies pull a
	# CUDA torch stack, while its HTTP client needs only pillow (installed above).
	$(PY) -m pip install --quiet --no-deps 'moondream==2.6.1'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## Create .venv and install the platform with its dev tools

system-deps: ## Install the PostgreSQL server binaries the tests start (Debian), if missing
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  ( echo "installing postgresql (server binaries for the test suite)"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null )

run: install ## Start the whole platform (NATS, Redis, six services); Ctrl-C stops it
	$(VENV)/bin/dreamforge up

test: install system-deps ## Run the whole test suite against real NATS, Redis, SQLite and PostgreSQL
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: install ## The suite without the whole-platform end-to-end tests
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

lint: install ## ruff, mypy, and a check that generated protobuf code matches proto/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy dreamforge services
	$(PY) -m pytest -q -p no:cacheprovider tests/core/test_proto_drift.py

proto: install ## Regenerate dreamforge/v1 from proto/
	$(PY) scripts/gen_proto.py

bench: install ## Run the benchmarks under bench/ and print their figures (see bench/RESULTS.md)
	$(PY) bench/bus_throughput.py
	$(PY) bench/gateway_overhead.py
	$(PY) bench/request_stages.py
	$(PY) bench/stack_floor.py
	$(PY) bench/inference_latency.py
	$(PY) bench/inference_batching.py
	$(PY) bench/decoding.py
	$(PY) bench/feedback_rate.py
	$(PY) bench/billing_ledger.py
	$(PY) bench/training_online.py
	$(PY) bench/training_methods.py --method grpo --seeds 0 1 2
	$(PY) bench/training_methods.py --method dpo --seeds 0 1 2
	$(PY) bench/training_methods.py --method sft --seeds 0 1

bench-shaped: install ## Gateway overhead with an untrained model of SmolVLM-256M's shape (~10 min, 0.8 GB in /tmp)
	$(PY) bench/shaped_model.py --out /tmp/smolvlm-256m-shaped
	$(PY) bench/gateway_overhead.py --model /tmp/smolvlm-256m-shaped --requests 6

.PHONY: triton
triton: install ## Fetch the Triton server the triton runtime starts (pytriton wheel, ~55 MB, cached once)
	$(PY) -m dreamforge.triton_server

clean: ## Remove the virtualenv and local platform data (.dreamforge)
	rm -rf $(VENV) .dreamforge
