# `make install` creates .venv in the repo root (idempotent); `make test` installs if needed, lints
# (flake8, setup.cfg), then runs the whole suite (as CI does); `make test-fast` lints and leaves out the
# tests marked slow (trainings, tool runs). A lint error fails both before any test runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LINTED := occam_plugin tools tests benchmarks configs setup.py

.PHONY: install lint test test-fast demo clean-venv

install: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	$(PY) -m pip check  # the exact pins lie inside setup.py's version ranges
	$(PY) -c "import occam_plugin, mmpretrain, timm; print('occam_plugin', occam_plugin.__version__, 'ready')"
	touch $(STAMP)

lint: install
	$(PY) -m flake8 $(LINTED)

test: lint
	$(PY) -m pytest tests -q -p no:cacheprovider

test-fast: lint
	$(PY) -m pytest tests -q -p no:cacheprovider -m "not slow"

demo: install
	$(PY) tools/demo.py

clean-venv:
	rm -rf $(VENV)
