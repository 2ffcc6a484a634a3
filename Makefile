# `make install` creates .venv in the repo root (idempotent); `make test` installs if needed, then runs the
# whole suite (as CI does); `make test-fast` leaves out the tests marked slow (trainings, tool runs).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast demo clean-venv

install: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	$(PY) -m pip check  # the exact pins lie inside setup.py's version ranges
	$(PY) -c "import occam_plugin, mmpretrain, timm; print('occam_plugin', occam_plugin.__version__, 'ready')"
	touch $(STAMP)

test: install
	$(PY) -m pytest tests -q -p no:cacheprovider

test-fast: install
	$(PY) -m pytest tests -q -p no:cacheprovider -m "not slow"

demo: install
	$(PY) tools/demo.py

clean-venv:
	rm -rf $(VENV)
