# advmed: two commands.
#   make book   set up (once), then data -> models -> every chapter (papermill) -> _build/html
#   make test   set up (once, plus test tools and headless chromium), then the tests
#
# Set-up is idempotent: .venv is created when missing and the pinned requirements are
# installed when the hash of requirements*.txt + pyproject.toml has changed (a stamp
# file inside .venv records it), so a second run installs nothing.

SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= $(or $(ADVMED_PROFILE),auto)
BUILD_DIR ?= _build
PYTEST_ARGS ?=
# where the experiment cells run before the chapters: serial, dask, dask://HOST:PORT, slurm
EXECUTOR ?= serial
EXECUTOR_ARGS ?=
GPU_CHECK_OUT ?= gpu-check

# Local data root: ../shared/data beside the repository when it exists; otherwise the
# library downloads from the official hosts (Zenodo, Mendeley Data, Dataverse).
ifeq ($(origin ADVMED_DATA_ROOT),undefined)
  ifneq ($(wildcard ../shared/data/README.md),)
    export ADVMED_DATA_ROOT := $(abspath ../shared/data)
  endif
endif

REQ_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
TEST_HASH := $(shell cat requirements-test.txt | sha256sum | cut -c1-16)
STAMP := $(VENV)/.advmed-installed-$(REQ_HASH)
TEST_STAMP := $(VENV)/.advmed-test-installed-$(TEST_HASH)
NODE_STAMP := node_modules/.advmed-$(shell cat package-lock.json | sha256sum | cut -c1-16)

.PHONY: help setup setup-test book dry-run gpu-bundle gpu-check test test-fast test-dry-run chromium clean

help:
	@echo "make book [PROFILE=smoke|cpu|paper|paper-dry|auto] [EXECUTOR=serial|dask|dask://HOST:PORT|slurm]"
	@echo "                                            build the book into $(BUILD_DIR)/html (says first"
	@echo "                                            what the profile runs and how long it takes)"
	@echo "make dry-run                                every code path of paper, on a CPU in minutes"
	@echo "make gpu-bundle; make gpu-check             the GPU check (benchmarks/gpu_check.sh) and its files"
	@echo "make test                                   run the tests (sets everything up)"
	@echo "make test-fast                              the tests without the slow ones"
	@echo "make test-dry-run                           the paper-dry book as a test (about an hour)"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Pinned runtime + book requirements, the package itself (editable, no deps: all of them
# are pinned in requirements.txt) and a python3 kernelspec inside the venv for papermill.
$(STAMP): requirements.txt pyproject.toml | $(PY)
	rm -f $(VENV)/.advmed-installed-*
	$(PY) -m pip install --upgrade --quiet "pip>=24"
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (advmed)"
	touch $@

# Test tools. Everything in requirements-test.txt is pinned with its dependencies, and it
# is installed with --no-deps so that torchattacks / ART never downgrade torch or numpy.
$(TEST_STAMP): requirements-test.txt $(STAMP)
	rm -f $(VENV)/.advmed-test-installed-*
	$(PY) -m pip install --quiet --no-deps -r requirements-test.txt
	touch $@

# The widgets' and MathJax's JavaScript, served by the book itself (no CDN).
$(NODE_STAMP): package.json package-lock.json
	rm -f node_modules/.advmed-*
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

setup: $(STAMP) $(NODE_STAMP)
setup-test: $(TEST_STAMP) $(NODE_STAMP) chromium

# Headless Chromium + chromedriver from Debian for the browser checks (root only).
chromium:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
	else
	  echo "note: chromium/chromedriver missing and not root: the browser tests will be skipped" >&2
	fi

# With a GPU, PROFILE=auto means paper: the build prints its plan and estimate and, above an
# hour, stops and asks for PROFILE=paper by name.
book: setup
	$(PY) -m advmed.book build --profile $(PROFILE) --build-dir $(BUILD_DIR) --executor $(EXECUTOR) $(EXECUTOR_ARGS)

dry-run: setup
	$(PY) -m advmed.book build --profile paper-dry --build-dir $(BUILD_DIR)/dry --executor $(EXECUTOR) $(EXECUTOR_ARGS)

gpu-bundle:
	PYTHON=$(PY) benchmarks/make_gpu_bundle.sh

gpu-check:
	benchmarks/gpu_check.sh $(GPU_CHECK_OUT)

test: setup-test
	$(PY) -m pytest -rs $(PYTEST_ARGS)

# The paper-dry book as a test on its own (every code path of paper; about 4 minutes on 2
# cores, also part of `make test`).
test-dry-run: setup-test
	$(PY) -m pytest -rs -m dryrun $(PYTEST_ARGS)

test-fast: setup-test
	$(PY) -m pytest -rs -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(BUILD_DIR) book/*.ipynb
