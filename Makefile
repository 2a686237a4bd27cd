# Two entry points (see README):
#   make book   set up .venv, execute every chapter in the quick CPU profile, build the HTML book
#   make test   set up .venv, run pytest (unit tests, nbval over the chapters, browser check of the book)
# PROFILE=full executes the chapters in their GPU profile instead (see book/README in the book itself).

PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
PROFILE ?= quick
NPROC   ?= 1
TORCH   ?= torch==2.13.0
export TQDM_DISABLE ?= 0
export PYTHONHASHSEED := 0
# Quick runs and the tests: OpenMP threads sleep when idle instead of spinning: two processes sharing 2 cores
# (nbval kernels, torchrun tests) otherwise slow each other down by an order of magnitude; results are identical.
# The cpu/full studies keep OpenMP's spinning default (one process owns the cores; CU-Mamba's many small ops take
# 0.53 s a step spinning against 0.79 s passive), as `restore-core book run` does (runner.omp_wait_policy).
# Quick runs and the tests also pin MKL's code branch (torch's float32 GEMMs): its fastest branch differs between
# Intel and AMD CPUs, which moved the quick chapters' trained numbers in their last digits; COMPATIBLE (SSE2 without
# the approximate rcpps / rsqrtps) is the branch that gives the same results on both (restore_core/book/runner.py).
ifeq ($(PROFILE),quick)
export OMP_WAIT_POLICY ?= PASSIVE
export MKL_CBWR ?= COMPATIBLE
endif

.PHONY: setup book book-html test clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[book,test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: $(VENV)/.installed

book: setup
	$(BIN)/restore-core book run --profile $(PROFILE) --nproc $(NPROC)
	$(MAKE) book-html

book-html: setup
	$(BIN)/jupyter-book build . -W --keep-going

test: setup
	bash scripts/install_browser.sh
	$(BIN)/python -m pytest -q tests book --nbval --nbval-sanitize-with book/nbval_sanitize.cfg --nbval-current-env -p no:cacheprovider --durations=15

clean:
	rm -rf _build .pytest_cache
