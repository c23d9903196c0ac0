# Quick start: `make run` (set up and start the app) and `make test` (set up and run every check).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PORT ?= 8501
# The app has no login: it listens on this machine only unless ADDRESS opens it (README).
ADDRESS ?= 127.0.0.1
# Where the real third-party data lives (see ../shared/data/README.md); never copied here.
SHARED_DATA ?= ../shared/data

export PYTHONUNBUFFERED := 1

.PHONY: run install install-dev test lint typecheck format bench eval eval-rescore eval-dims demo-index clean help

help:
	@echo "make run      set everything up and start the web app on http://localhost:$(PORT)"
	@echo "make test     set everything up and run lint, type checks and the whole test suite"
	@echo "make bench    speed benchmarks -> benchmarks/results/"
	@echo "make eval     retrieval/answer quality on SciFact and PubMedQA -> benchmarks/results/"
	@echo "make eval-rescore support labels of the stored PubMedQA answers checked again"
	@echo "make eval-dims SciFact nDCG@10 + index size at full/256/128/64 dims (Matryoshka PubMedBERT)"

$(VENV)/bin/python:
	sh scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel

# torch is pinned first: 2.13.0 is the CPU build; anything else would pull CUDA wheels.
# llama.cpp is compiled here (minutes), never taken from pip's wheel cache, whose build flags
# we cannot see (a -march=native build with AMX crashes on some virtual machines).
$(STAMP): requirements.txt scripts/llama-cmake-args.sh | $(VENV)/bin/python
	$(PIP) install -q torch==2.13.0
	@echo "building llama-cpp-python from source (several minutes on 2 cores)..."
	CMAKE_ARGS="$$(sh scripts/llama-cmake-args.sh)" $(PIP) install -q --no-cache-dir \
		"$$(grep -E '^llama-cpp-python==' requirements.txt)"
	$(PIP) install -q -r requirements.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt $(STAMP)
	$(PIP) install -q -r requirements-dev.txt
	touch $@

install: $(STAMP)

install-dev: $(DEV_STAMP)

run: $(STAMP)
	$(PY) -m streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT) \
		--server.headless true \
		--browser.gatherUsageStats false

lint: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(DEV_STAMP)
	$(PY) -m mypy

# The browser test needs Debian's chromium and chromium-driver: installed where possible.
test: lint typecheck
	sh scripts/system-deps.sh --test
	$(PY) -m pytest

format: $(DEV_STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# BENCH_ARGS=--quick for a smoke run of every section (minutes; writes bench-quick.md).
bench: $(DEV_STAMP)  # the PostgreSQL section uses pgserver (a test requirement)
	$(PY) -m benchmarks.bench --shared-data $(SHARED_DATA) $(BENCH_ARGS)

# EVAL_LIMIT=N answers only N PubMedQA questions (development; writes eval-dev.md).
eval: $(STAMP)
	$(PY) -m benchmarks.evaluate --shared-data $(SHARED_DATA) $(if $(EVAL_LIMIT),--limit $(EVAL_LIMIT))

# The support labels of the stored PubMedQA answers checked again with the current support
# check (nothing generated; minutes): updates eval-pubmedqa.json and eval-latest.md.
eval-rescore: $(STAMP)
	$(PY) -m benchmarks.evaluate --shared-data $(SHARED_DATA) --rescore-support

# SciFact nDCG@10 and index size at full/256/128/64 stored dimensions with the Matryoshka
# PubMedBERT (cached beforehand); DIMS_ARGS=--offline for a MiniLM smoke run.
eval-dims: $(STAMP)
	$(PY) -m benchmarks.dimensions --shared-data $(SHARED_DATA) $(DIMS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/artifacts

# An index of the shared sample records with the offline models, for trying the app here.
demo-index: $(STAMP)
	PUBMED_RAG_OFFLINE=1 $(PY) -m indexing ingest --xml $(SHARED_DATA)/pubmed-xml-samples/metapub/pmid_xml
