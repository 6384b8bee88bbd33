#!/usr/bin/env bash
# The one GPU check of pav: `bash bench/gpu_smoke.sh` on a machine with an NVIDIA GPU, in the repository root.
#
# Brings what the GPU machine lacks from the bundle that bench/gpu_prepare.sh made here (.gpu_smoke/: wheels of
# hydra-core, omegaconf, antlr4 and imageio-ffmpeg, a small synthetic collection), builds pav._C for the visible
# GPU, and runs bench/gpu_smoke.py: a PASS/FAIL line per stage and a FIG line per figure, going on after a failed
# stage, within about 8 minutes. Logs and summary.json land in $OUT (the device tool's folder) or /tmp/pav_gpu_smoke.
set -u
cd "$(dirname "$0")/.."
BUNDLE=${PAV_SMOKE_BUNDLE:-.gpu_smoke}
OUT_DIR=${OUT:-/tmp/pav_gpu_smoke}
PY=${PY:-python3}
mkdir -p "$OUT_DIR"
if ls "$BUNDLE"/wheels/*.whl >/dev/null 2>&1; then
  missing=$($PY - <<'PY'
import importlib.util
print(" ".join(m for m in ("hydra", "omegaconf", "antlr4", "imageio_ffmpeg") if importlib.util.find_spec(m) is None))
PY
)
  if [ -n "$missing" ]; then
    echo "installing the carried wheels for: $missing"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/pav_site "$BUNDLE"/wheels/*.whl \
      || echo "WARNING: the carried wheels did not install"
    export PYTHONPATH=/tmp/pav_site${PYTHONPATH:+:$PYTHONPATH}
  fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PAV_CACHE_DIR=${PAV_CACHE_DIR:-/tmp/pav_cache}  # the extension build and the procedural head, made fresh
export WANDB_MODE=offline
exec $PY bench/gpu_smoke.py bundle="$BUNDLE" out="$OUT_DIR" "$@"
