# Finetune Studio: one command to set up and launch, one to set up and test.
#   make studio                      create .venv, install, open the studio on the bundled demo (offline)
#   make studio ARGS="--port 8080"   the same, with flags for `studio` (see `.venv/bin/studio --help`)
#   make test                        create .venv, install with test extras and Chromium, run every test
#   make setup-check                 show (pip --dry-run) that setup selects no nvidia-* package here
#   make print-torch                 the pip arguments setup uses for torch on this machine
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# Where torch comes from. A plain `torch==X` from PyPI is the CUDA build plus several GB of
# nvidia-* wheels, so: with `nvidia-smi` present, that CUDA build; without, PyTorch's CPU wheel
# index when it answers within 5 s; else the configured index (on our CI machines a local CPU
# wheel). Override with any pip requirement: make TORCH="torch==2.9.1".
TORCH ?=
HAS_NVIDIA := $(shell command -v nvidia-smi 2>/dev/null)
CPU_INDEX_UP = $(shell $(PYTHON) -c "import urllib.request as u; u.urlopen('$(TORCH_CPU_INDEX)/torch/', timeout=5)" >/dev/null 2>&1 && echo yes)
TORCH_ARGS = $(if $(TORCH),"$(TORCH)",$(if $(HAS_NVIDIA),torch==$(TORCH_VERSION),$(if $(CPU_INDEX_UP),--index-url $(TORCH_CPU_INDEX) torch==$(TORCH_VERSION),torch==$(TORCH_VERSION))))
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# Wait up to 10 minutes for another apt/dpkg (unattended upgrades, a second make) instead of failing.
APT := $(SUDO) apt-get -o DPkg::Lock::Timeout=600

.PHONY: studio test setup setup-test setup-check print-torch browser

studio: setup
	$(BIN)/studio $(ARGS)

test: setup-test browser
	$(BIN)/python -m pytest -q $(ARGS)

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

print-torch:
	@echo $(TORCH_ARGS)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_ARGS)
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

setup-check: setup-test
	$(BIN)/python -m pytest -q -m setup tests/unit/test_setup.py

# Browser tests drive Debian's Chromium through Playwright (Playwright's own browser download
# is not needed).
browser:
	@command -v chromium >/dev/null 2>&1 || { $(APT) update -qq && \
		DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq chromium >/dev/null; }
