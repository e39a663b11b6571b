#!/usr/bin/env python3
"""Analysis time beyond import, per model (target: under 100 ms), from the release build's
`modellens analyze --timing`; median of 5 runs each. Models: the torchvision exports, paper 002's
networks, the rapidocr/nudenet/magika and mediapipe models (whatever is present in .models/)."""
import glob, os, re, statistics, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, '.build', 'release', 'modellens')


def main():
    if not os.path.exists(BIN):
        subprocess.run(['swift', 'build', '-c', 'release', '--product', 'modellens'], cwd=ROOT, check=True)
    paths = []
    for pattern in ('torchvision/*.onnx', 'paper/*.onnx', 'rapidocr/*.onnx', 'nudenet/*.onnx', 'magika/*.onnx', 'mediapipe/*.tflite'):
        paths += sorted(glob.glob(os.path.join(ROOT, '.models', pattern)))
    print(f'{"model":<58}{"nodes":>7}{"import ms":>11}{"analysis ms":>13}')
    worst = 0.0
    for p in paths:
        imp, ana = [], []
        for _ in range(5):
            r = subprocess.run([BIN, 'analyze', p, '--timing', '--format', 'csv'], capture_output=True, text=True, check=True)
            m = re.search(r'import ([\d.]+) ms, analysis ([\d.]+) ms', r.stderr)
            imp.append(float(m.group(1)))
            ana.append(float(m.group(2)))
            nodes = r.stdout.count('\n')
        worst = max(worst, statistics.median(ana))
        print(f'{os.path.relpath(p, os.path.join(ROOT, ".models")):<58}{nodes:>7}{statistics.median(imp):>11.1f}{statistics.median(ana):>13.1f}')
    print(f'slowest analysis: {worst:.1f} ms (target < 100 ms)')


if __name__ == '__main__':
    main()
