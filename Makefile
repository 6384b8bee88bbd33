# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
TORCH_VERSION ?= 2.13.0
DEMO_DIR ?= runs/demo

.PHONY: install ext demo test lint bench

# torch first and pinned when missing, so pip never resolves a newer (CUDA) build here;
# an existing torch (a GPU user's CUDA build) is kept.
install:
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==$(TORCH_VERSION)
	$(PY) -m pip install -e '.[dev]'

demo: install
	$(PY) -m pav.synthetic out=$(DEMO_DIR)/collection
	$(PY) -m pav.data.summary $(DEMO_DIR)/collection

# Builds the native extension pav._C up front (ops would build it on first use anyway).
ext: install
	$(PY) -m pav.ops.build

bench: ext
	$(PY) bench/ops.py

lint:
	$(PY) -m ruff check .

test: install lint ext
	$(PY) -m pytest -q tests
