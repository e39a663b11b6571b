#!/usr/bin/env bash
# Prints pass / fail / unsupported by op for the ONNX backend node tests on the native executor
# (the onnx 1.22.0 wheel's tests and Debian's libonnx-testdata). Markdown with --markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product modellens >/dev/null
dirs=()
wheel=$(.venv/bin/python -c "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'backend/test/data/node'))")
[ -d "$wheel" ] && dirs+=("$wheel")
[ -d /usr/share/libonnx-testdata/data ] && dirs+=(/usr/share/libonnx-testdata/data)
.build/release/modellens node-tests "${dirs[@]}" "$@"
