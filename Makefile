# `make run` and `make test` each create the virtual environment on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/default.py
ARGS ?=

.PHONY: run test status clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[mmcv-lite,test]'
	touch $@

run: $(VENV)/.installed
	$(PY) run_pipeline.py --config $(CONFIG) --stage all $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest tests

status: $(VENV)/.installed
	$(PY) run_pipeline.py --config $(CONFIG) --status

clean-venv:
	rm -rf $(VENV)
