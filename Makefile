# Two commands for a newcomer: `make repro` (install + run the default study) and `make test`.
# `make setup` installs into .venv and is what both call; on a ready machine it is a fast no-op.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.syntfer-setup
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONHASHSEED := 0
# OpenMP threads that sleep instead of spinning: on a loaded 2-core machine spinning made 2-thread torch
# several times slower (benchmarks/README.md, "Threads on a shared machine").
export OMP_WAIT_POLICY := PASSIVE
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup repro scaling test test-fast bench lab browser numbers publish paper

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-lock.txt syntfer/tools/lab.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name syntfer --display-name syntfer
	$(PY) -m syntfer.tools.lab install
	$(PY) -m syntfer.tools.assets fetch
	touch $(STAMP)

repro: setup
	$(VENV)/bin/dvc repro

# The data-scaling curve (07_scaling, `scaling@<source>`) retrained from scratch. Its outputs are committed
# (cache: false), so `make repro` reuses them while the sets they are drawn from are unchanged; this reruns them
# anyway, then the report. Commit the result with `git add -f outputs/scaling outputs/nb/07_scaling dvc.lock`.
scaling: setup
	$(VENV)/bin/dvc repro
	$(VENV)/bin/dvc repro --force --single-item $$($(VENV)/bin/dvc stage list --name-only | grep '^scaling@')
	$(VENV)/bin/dvc repro

# The paper's setting (presets/paper.yaml; PRESET=paper_poster for POSTER v1) as one `dvc exp run`, with the files
# only you have: make paper SET="--set train.pretrained=/w/ir50.pth --set diffusion.sd_model=/w/rv51 ..."
# (`syntfer preset paper` without them lists what to give; docs/real-data.md, "The paper's scale: presets")
PRESET ?= paper
paper: setup
	$(VENV)/bin/syntfer preset $(PRESET) $(SET) --run

test: setup browser
	$(PY) -m pytest -q -m "not gpu"

test-fast: setup
	$(PY) -m pytest -q -m "not gpu and not slow"

# JupyterLab on the project: notebooks/*.py open as notebooks in the `syntfer` kernel, run from the project root
# (syntfer/tools/lab.py). Ctrl-C stops it.
lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) $(if $(filter 0,$(shell id -u)),--allow-root)

# Headless Chromium + chromedriver for the browser test in tests/test_lab.py (apt, as root; elsewhere it skips).
browser:
	.ci/install-browser

bench: setup
	$(PY) benchmarks/bench_models.py

# The documents' numbers from the committed result files (docs_numbers), and the executed notebooks into reports/.
numbers: setup
	$(VENV)/bin/syntfer numbers

publish: setup
	$(VENV)/bin/syntfer publish --nb-dir outputs/nb --out reports
