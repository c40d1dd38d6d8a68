# aslfr: `make demo` sets up .venv, generates synthetic data and converts it; `make test` runs the tests.
# Real data: `make convert DATA=/data/asl OUT=/data/aslfr [SPLIT=supplemental] [FOLD=2] [ARGS="num_workers=8"]`,
# then `make verify OUT=/data/aslfr` and `make inspect OUT=/data/aslfr`. PY=/path/to/python skips the .venv.
# OUT (and DATA, outside `make demo`) may hold spaces: OUT="/data/a b"; ARGS is split into words.
# `make bench-tf`: `make bench` beside the reference's own tf.data pipeline, run from a throwaway .venv-tf
# (tensorflow-cpu; never a dependency of aslfr) on a clone of the reference (REF_SRC=.../src/tf: a local checkout).
PYTHON ?= python3
VENV ?= .venv
PY ?= $(VENV)/bin/python
DATA ?= data/synthetic
OUT ?= out/demo
SPLIT ?= train
FOLD ?=
ARGS ?=
# torch first and pinned: 2.13.0 is the CPU build on this machine's disk; a looser spec can pull a CUDA build.
TORCH ?= torch==2.13.0
# the .venv is created only when the commands run from it
SETUP := $(if $(filter $(VENV)/bin/python,$(PY)),setup)
VENV_TF ?= .venv-tf
TENSORFLOW ?= tensorflow-cpu==2.21.0
REF_REPO ?= https://github.com/chenghuige/Google-American_Sign_Language_Fingerspelling_Recognition.git
REF_CLONE := $(VENV_TF)/reference
REF_SRC ?= $(REF_CLONE)/projects/kaggle/aslfr/src/tf

.PHONY: setup demo convert merge verify inspect test bench bench-tf train-demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

$(DATA)/train.csv: | $(SETUP)
	$(PY) -m aslfr.synthetic "data_dir=$(DATA)"

demo: $(SETUP) $(DATA)/train.csv
	$(PY) -m aslfr.convert "data_dir=$(DATA)" "out_dir=$(OUT)"
	$(PY) -m aslfr.convert "data_dir=$(DATA)" "out_dir=$(OUT)" split=supplemental

convert: $(SETUP)
	$(PY) -m aslfr.convert "data_dir=$(DATA)" "out_dir=$(OUT)" "split=$(SPLIT)" $(if $(FOLD),+fold=$(FOLD)) $(ARGS)

merge: $(SETUP)
	$(PY) -m aslfr.merge "data_dir=$(DATA)" "out_dir=$(OUT)" $(ARGS)

verify: $(SETUP)
	$(PY) -m aslfr.verify "out_dir=$(OUT)"

inspect: $(SETUP)
	$(PY) -m aslfr.inspect "out_dir=$(OUT)" $(ARGS)

test: $(SETUP)
	$(PY) -m pytest -q

train-demo: demo
	$(PY) -m aslfr.train_demo "out_dir=$(OUT)"

bench: $(SETUP)
	$(PY) -m aslfr.bench --data bench-data

$(VENV_TF)/.installed:
	$(PYTHON) -m venv $(VENV_TF)
	$(VENV_TF)/bin/pip install -q $(TENSORFLOW) numpy
	touch $@

# only the reference's src/tf is checked out
$(REF_CLONE)/projects/kaggle/aslfr/src/tf/preprocess.py:
	rm -rf $(REF_CLONE)
	git clone -q --depth 1 --filter=blob:none --sparse $(REF_REPO) $(REF_CLONE)
	git -C $(REF_CLONE) sparse-checkout set projects/kaggle/aslfr/src/tf

bench-tf: $(SETUP) $(VENV_TF)/.installed $(REF_SRC)/preprocess.py
	$(PY) -m aslfr.bench --data bench-data --tf-python $(VENV_TF)/bin/python --ref-src $(REF_SRC)

clean:
	rm -rf "$(OUT)" "$(DATA)" .pytest_cache
