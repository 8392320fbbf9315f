# `make run` and `make test` each create the virtual environment on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/default.py
ARGS ?=

.PHONY: test-quick run test status clean-venv lock

LOCK ?= requirements/lock.txt

# Installs the exact versions of $(LOCK) (pip constraints); `make lock` refreshes them.
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -c $(LOCK) -e '.[mmcv-lite,test]'
	touch $@

# The newest versions pyproject.toml allows, frozen into $(LOCK) (commit it with the figures it gave).
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --upgrade pip
	.lock-venv/bin/python -m pip install -e '.[mmcv-lite,test]'
	{ head -3 $(LOCK); .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e\|^bas-pseudomasks'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .lock-venv

run: $(VENV)/.installed
	$(PY) run_pipeline.py --config $(CONFIG) --stage all $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest tests

# the quick loop: leaves out the tests marked heavy (torchrun, SIGKILL, gpu_check, whole-run subprocesses)
test-quick: $(VENV)/.installed
	$(PY) -m pytest tests -m 'not heavy'

# On a fresh clone there is nothing to show yet: say so instead of building the environment.
status:
	@if [ -f $(VENV)/.installed ]; then $(PY) run_pipeline.py --config $(CONFIG) --status; \
	else echo "no environment yet ($(VENV)) and so no run: 'make run' creates both"; fi

clean-venv:
	rm -rf $(VENV)
