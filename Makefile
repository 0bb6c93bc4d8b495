# Finetune Studio: one command to set up and launch, one to set up and test.
#   make studio    create .venv, install, open the studio on the bundled demo (offline)
#   make test      create .venv, install with test extras and Chromium, run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Machines without an NVIDIA GPU get a CPU build of torch (2.13.0 ships as a local CPU wheel on
# our CI machines); with `nvidia-smi` present, pip's default CUDA build. Override: make TORCH=...
TORCH ?= $(if $(shell command -v nvidia-smi 2>/dev/null),torch,torch==2.13.0)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: studio test setup setup-test browser

studio: setup
	$(BIN)/studio $(ARGS)

test: setup-test browser
	$(BIN)/python -m pytest -q $(ARGS)

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

# Browser tests drive Debian's Chromium through Playwright (Playwright's own browser download
# is not needed).
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }
