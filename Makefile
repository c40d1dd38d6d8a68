# aslfr: `make demo` sets up .venv, generates synthetic data and converts it; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= data/synthetic
OUT ?= out/demo
# torch first and pinned: 2.13.0 is the CPU build on this machine's disk; a looser spec can pull a CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup demo convert test bench train-demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

$(DATA)/train.csv: | $(VENV)/.installed
	$(PY) -m aslfr.synthetic $(DATA)

demo: setup $(DATA)/train.csv
	$(PY) -m aslfr.convert data_dir=$(DATA) out_dir=$(OUT)
	$(PY) -m aslfr.convert data_dir=$(DATA) out_dir=$(OUT) split=supplemental

test: setup
	$(PY) -m pytest -q

train-demo: demo
	$(PY) -m aslfr.train_demo $(OUT)

bench: setup
	$(PY) -m aslfr.bench --data bench-data

clean:
	rm -rf $(OUT) $(DATA) .pytest_cache
