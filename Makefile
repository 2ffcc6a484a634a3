# `make install` creates .venv in the repo root (idempotent); `make test` installs if needed, then runs the suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test demo clean-venv

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

demo: install
	$(PY) tools/demo.py

clean-venv:
	rm -rf $(VENV)
