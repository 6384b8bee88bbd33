#!/usr/bin/env bash
# Makes the bundle that bench/gpu_smoke.sh carries to a GPU machine which reaches no package registry:
# .gpu_smoke/wheels (what that machine's image lacks, for its Python 3.12) and .gpu_smoke/collection (a small
# synthetic collection) and .gpu_smoke/real (a real clip, prepared and tracked at 256², when
# ../shared/real_videos/talking_512.mp4 is there). Run here, in the repository root, once; then with the device tool:
#   run(command="bash bench/gpu_smoke.sh", carry=[".gpu_smoke"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${PAV_SMOKE_BUNDLE:-.gpu_smoke}
PY=${PY:-python3}
mkdir -p "$BUNDLE/wheels"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$BUNDLE/wheels" \
  hydra-core==1.3.8 omegaconf==2.3.1 imageio-ffmpeg==0.7.0
$PY -m pip wheel -q --no-deps -w "$BUNDLE/wheels" antlr4-python3-runtime==4.9.3  # sdist only on PyPI: pure Python
if [ ! -f "$BUNDLE/collection/collection.json" ]; then
  $PY -m pav.synthetic out="$BUNDLE/collection" appearances=2 frames=30 size=256 seed=0 cross=false
fi
# a real clip, prepared and tracked here (the GPU image has no mediapipe): the real_clip stage trains on it
CLIP=${PAV_SMOKE_CLIP:-../shared/real_videos/talking_512.mp4}
if [ -f "$CLIP" ] && [ ! -f "$BUNDLE/real/collection.json" ]; then
  mkdir -p "$BUNDLE/real_src" && ln -sf "$(realpath "$CLIP")" "$BUNDLE/real_src/"
  $PY -m pav.prepare videos="$BUNDLE/real_src" out="$BUNDLE/real" size=256 frames_per_video=200
  $PY -m pav.track collection="$BUNDLE/real" overlay=false
  rm -rf "$BUNDLE/real_src" "$BUNDLE/real/contact_sheets"
elif [ ! -f "$CLIP" ]; then
  echo "no real clip at $CLIP: the smoke's real_clip stage will be skipped"
fi
du -sh "$BUNDLE"
