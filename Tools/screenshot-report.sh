#!/usr/bin/env bash
# Renders `modellens analyze --format html` for a model in Debian's headless chromium and
# saves a PNG, so the page is looked at in a real browser (roofline SVG, per-layer bars).
#   Tools/screenshot-report.sh MODEL [OUT.png] [--profile ID]
# Installs chromium with apt when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: Tools/screenshot-report.sh MODEL [OUT.png] [analyze options...]}
out=${2:-out/report.png}
shift; [ $# -gt 0 ] && shift
command -v chromium >/dev/null || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo; $SUDO apt-get install -y -qq chromium >/dev/null; }
[ -x .build/debug/modellens ] || swift build
mkdir -p "$(dirname "$out")"
html="$(dirname "$out")/$(basename "$out" .png).html"
.build/debug/modellens analyze "$model" --format html "$@" > "$html"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1150,1400 \
  --screenshot="$out" "file://$(realpath "$html")" 2>/dev/null
# A rendered page is not blank: check that the PNG has many distinct colours.
python3 - "$out" <<'PY'
import sys, zlib, struct
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat, w, h = 8, b'', 0, 0
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8]); body = data[pos + 8:pos + 8 + n]; pos += 12 + n
    if kind == b'IHDR': w, h = struct.unpack('>II', body[:8])
    if kind == b'IDAT': idat += body
raw = zlib.decompress(idat)
distinct = len(set(raw[i:i + 3] for i in range(0, min(len(raw), 3_000_000), 7)))
print(f'screenshot-report: {sys.argv[1]} {w}x{h}, {distinct} distinct byte triples sampled')
sys.exit(0 if distinct > 50 else 1)
PY
