# qnnfab: everything a fresh machine needs (Python, pip, gcc, make, perl).
#   make demo   -- the main job (end-to-end check)
#   make test   -- the whole test suite (golden, Amaranth-simulator and cocotb-on-Verilator)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.qnnfab-installed
JOBS   ?= auto
export QNNFAB_CACHE ?= $(CURDIR)/.qnnfab-cache

.PHONY: demo test venv clean bench

venv: $(STAMP)

# (re)install when the venv is missing or the project metadata changed
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m qnnfab demo

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --dist worksteal -q

bench: $(STAMP)
	for b in bench/bench_*.py; do \
	  case $$b in *bnn_pynq*) echo "== $$b: needs a BNN-PYNQ checkout and the MNIST test set (README: Run BNN-PYNQ's networks)"; continue;; \
	    *resnet8_train*) echo "== $$b: needs CIFAR-10 image folders and ~40 min (README: Training residual graphs)"; continue;; esac; \
	  echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .qnnfab-cache build out
