#!/usr/bin/env python3
"""Import speed and memory, ModelLens next to the Python reference, in one run.

ONNX: a 562 MB model (made once in .models/bench/, 134 MatMul weights of 1024x1024 float32)
      imported by `onnx.load` (Python) and by `modellens inspect --timing` (release build);
      median of several runs, peak RSS of each process, and ModelLens' RSS once loaded.
TFLite: every mediapipe model and a synthetic one with a 256 MB weight buffer: ModelLens'
      import time should not grow with weight bytes (the file is mapped, weights borrowed).
Usage: Tools/bench-import.py [--runs N]   (make bench builds and fetches first)"""
import argparse, json, os, resource, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, '.build', 'release', 'modellens')
BENCH = os.path.join(ROOT, '.models', 'bench')


def make_big_onnx(path, n=134, size=1024):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits, nodes, prev = [], [], 'x'
    for i in range(n):
        inits.append(numpy_helper.from_array(rng.standard_normal((size, size), dtype=np.float32), f'w{i}'))
        nodes.append(helper.make_node('MatMul', [prev, f'w{i}'], [f'h{i}']))
        prev = f'h{i}'
    g = helper.make_graph(nodes, 'big', [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['batch', size])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ['batch', size])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), path)


def make_big_tflite(path, mb=256):
    sys.path.insert(0, os.path.join(ROOT, 'Tools'))
    import importlib
    samples = importlib.import_module('make-samples')
    with open(path, 'wb') as f:
        f.write(samples.tiny_tflite(extra_buffer_bytes=mb << 20))


def python_onnx_load(path, runs):
    # VmHWM / VmRSS from /proc: ru_maxrss would include this (parent) process's peak.
    code = ('import onnx,time,json\n'
            'def kb(k): return int([l for l in open("/proc/self/status") if l.startswith(k)][0].split()[1])*1024\n'
            'ts=[]\n'
            f't=time.perf_counter(); m=onnx.load({path!r}); ts.append((time.perf_counter()-t)*1000)\n'
            'peak, loaded = kb("VmHWM"), kb("VmRSS")\n'
            'del m\n'
            f'for _ in range({runs} - 1):\n'
            f'    t=time.perf_counter(); m=onnx.load({path!r}); ts.append((time.perf_counter()-t)*1000); del m\n'
            'print(json.dumps({"times":ts,"peak":peak,"loaded":loaded}))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def modellens(path, runs):
    out = subprocess.run([BIN, 'inspect', path, '--json', '--timing', '--runs', str(runs)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)['importStats']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--runs', type=int, default=5)
    args = ap.parse_args()
    if not os.path.exists(BIN):
        subprocess.run(['swift', 'build', '-c', 'release', '--product', 'modellens'], cwd=ROOT, check=True)
    os.makedirs(BENCH, exist_ok=True)
    big = os.path.join(BENCH, 'matmul_chain_562mb.onnx')
    if not os.path.exists(big):
        print('bench-import: writing', big, file=sys.stderr)
        make_big_onnx(big)
    size = os.path.getsize(big)
    py = python_onnx_load(big, args.runs)
    ml = modellens(big, args.runs)
    print(f'\nONNX import, {size / 1e6:.0f} MB file, median of {args.runs} runs (one process each side)')
    print(f'{"tool":<28}{"median ms":>10}{"peak RSS":>12}{"peak/file":>10}{"loaded RSS":>12}{"loaded/file":>12}')
    print(f'{"python onnx.load":<28}{statistics.median(py["times"]):>10.0f}{py["peak"] / 1e6:>10.0f}MB{py["peak"] / size:>10.2f}'
          f'{py["loaded"] / 1e6:>10.0f}MB{py["loaded"] / size:>12.2f}')
    print(f'{"modellens inspect --timing":<28}{ml["medianMs"]:>10.0f}{ml["peakRSSBytes"] / 1e6:>10.0f}MB'
          f'{ml["peakRSSBytes"] / size:>10.2f}{ml["loadedRSSBytes"] / 1e6:>10.0f}MB{ml["loadedRSSBytes"] / size:>12.2f}')

    rows = []
    for d in sorted(os.listdir(os.path.join(ROOT, '.models', 'mediapipe'))):
        if d.endswith('.tflite'):
            p = os.path.join(ROOT, '.models', 'mediapipe', d)
            rows.append((d.split('__')[-1], os.path.getsize(p), modellens(p, 20)))
    bigt = os.path.join(BENCH, 'tiny_cnn_plus_256mb.tflite')
    if not os.path.exists(bigt):
        make_big_tflite(bigt)
    rows.append(('synthetic: 256 MB buffer', os.path.getsize(bigt), modellens(bigt, 20)))
    print('\nTFLite import (ModelLens, median of 20 imports in one process; file mapped, weights borrowed)')
    print(f'{"model":<52}{"file":>10}{"median ms":>11}{"loaded RSS":>12}')
    for name, sz, st in rows:
        print(f'{name:<52}{sz / 1e6:>8.2f}MB{st["medianMs"]:>11.2f}{st["loadedRSSBytes"] / 1e6:>10.0f}MB')


if __name__ == '__main__':
    main()
