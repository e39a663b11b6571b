#!/usr/bin/env bash
# Regenerates the C/C++ code that reads model files from the schemas in Schemas/.
#   Schemas/onnx.proto  --protoc-c-->  Sources/CONNX/onnx.pb-c.c, include/onnx.pb-c.h
#   Schemas/tflite.fbs  --flatc----->  Sources/CTFLite/tflite_generated.h
# The output is committed. `Tools/regen-schemas.sh --check` regenerates into a
# temporary folder and fails if the committed files differ (CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
check=0; [ "${1:-}" = "--check" ] && check=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
command -v protoc-c >/dev/null || { echo "protoc-c missing: run Tools/setup.sh" >&2; exit 1; }
command -v flatc >/dev/null || { echo "flatc missing: run Tools/setup.sh" >&2; exit 1; }

protoc-c --c_out="$tmp" -I Schemas Schemas/onnx.proto
# flatc: C++ tables, Verifier and mini-reflection (field names and types),
# which the shim uses to turn any builtin options table into attributes.
flatc --cpp --reflect-names -o "$tmp" Schemas/tflite.fbs

declare -A dest=(
  [onnx.pb-c.c]=Sources/CONNX/onnx.pb-c.c
  [onnx.pb-c.h]=Sources/CONNX/include/onnx.pb-c.h
  [tflite_generated.h]=Sources/CTFLite/tflite_generated.h
)
stale=0
for f in "${!dest[@]}"; do
  if [ $check = 1 ]; then
    if ! cmp -s "$tmp/$f" "${dest[$f]}"; then echo "stale generated code: ${dest[$f]} (run Tools/regen-schemas.sh)" >&2; stale=1; fi
  else
    mkdir -p "$(dirname "${dest[$f]}")"; cp "$tmp/$f" "${dest[$f]}"; echo "wrote ${dest[$f]}"
  fi
done
[ $check = 1 ] && [ $stale = 0 ] && echo "generated code is current"
exit $stale
