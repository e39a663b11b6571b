#!/usr/bin/env python3
"""Compares every intermediate value of a model between ModelLens and a reference runtime, on one
seeded random input: `modellens run --all-values` against LiteRT (.tflite; its reference kernels by
default, with experimental_preserve_all_tensors) or onnxruntime (.onnx; graph optimizations off,
every node output made a graph output).

  Tools/compare-layers.py MODEL [--resolver reference|builtin] [--seed N] [--threads N] [--all] [--binary PATH]
                          [--optimized]

--optimized (.onnx) compares the graph outputs alone with onnxruntime's default session, which
fuses a QDQ model's DequantizeLinear -> Conv -> QuantizeLinear into integer convolutions as
ModelLens does (with every value an output, neither fuses).

Prints one line per value that differs (every value with --all) and a summary: integer tensors
as differing elements and the largest difference in steps; float tensors as the largest
difference relative to the reference tensor's largest magnitude. Exits 1 when an integer tensor
differs or a float one is off by more than 1e-4 relative."""
import argparse, os, subprocess, sys, tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def modellens_binary():
    for config in ('release', 'debug'):
        b = os.path.join(ROOT, '.build', config, 'modellens')
        if os.path.exists(b):
            return b
    subprocess.run(['swift', 'build', '-c', 'release', '--product', 'modellens'], cwd=ROOT, check=True)
    return os.path.join(ROOT, '.build', 'release', 'modellens')


def random_input(shape, dtype, rng):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.uniform(-1, 1, size=shape).astype(dtype)


def tflite_reference(path, resolver, rng):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kind = OpResolverType.BUILTIN_REF if resolver == 'reference' else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_path=path, experimental_op_resolver_type=kind, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    feeds = {}
    for d in it.get_input_details():
        x = random_input(d['shape'], d['dtype'], rng)
        it.set_tensor(d['index'], x)
        feeds[d['name']] = x
    it.invoke()
    tensors = {}
    for d in it.get_tensor_details():
        try:
            tensors[d['name']] = it.get_tensor(d['index'])
        except ValueError:
            pass
    return feeds, tensors


def onnx_reference(path, rng, optimized=False):
    import onnx
    import onnxruntime as ort
    m = onnx.load(path)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not optimized:
        inferred = onnx.shape_inference.infer_shapes(m)
        info = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
        have = {o.name for o in m.graph.output}
        for n in m.graph.node:
            for o in n.output:
                if o and o not in have and o in info:
                    m.graph.output.append(info[o])
                    have.add(o)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(m.SerializeToString(), opts, providers=['CPUExecutionProvider'])
    types = {'tensor(float)': np.float32, 'tensor(int64)': np.int64, 'tensor(int32)': np.int32,
             'tensor(uint8)': np.uint8, 'tensor(int8)': np.int8}
    feeds = {}
    for i in s.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        feeds[i.name] = random_input(shape, types.get(i.type, np.float32), rng)
    names = [o.name for o in s.get_outputs()]
    return feeds, dict(zip(names, s.run(names, feeds)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('model')
    ap.add_argument('--resolver', choices=['reference', 'builtin'], default='reference', help='LiteRT kernels (.tflite)')
    ap.add_argument('--seed', type=int, default=3)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--all', action='store_true', help='list every value, not only those that differ')
    ap.add_argument('--binary', help='the modellens executable (default: .build/release, else .build/debug)')
    ap.add_argument('--optimized', action='store_true', help='graph outputs only, against onnxruntime with its default fusions')
    args = ap.parse_args()
    if args.optimized and args.model.endswith('.tflite'):
        sys.exit('compare-layers: --optimized is for .onnx models')
    rng = np.random.default_rng(args.seed)
    if args.model.endswith('.tflite'):
        feeds, ref = tflite_reference(args.model, args.resolver, rng)
        label = f'LiteRT ({args.resolver} kernels)'
    else:
        feeds, ref = onnx_reference(args.model, rng, args.optimized)
        label = 'onnxruntime (default graph optimizations)' if args.optimized else 'onnxruntime (no graph optimizations)'
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [args.binary or modellens_binary(), 'run', args.model, '-o', os.path.join(tmp, 'out'), '--threads', str(args.threads)]
        if not args.optimized:
            cmd.append('--all-values')
        for k, (name, x) in enumerate(feeds.items()):
            f = os.path.join(tmp, f'input_{k}.npy')
            np.save(f, x)
            cmd += ['--input', f'{name}={f}']
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f'compare-layers: modellens failed: {r.stderr.strip()}')
        if args.optimized:
            safe = lambda n: ''.join(c if c.isalnum() or c in '_-.' else '_' for c in n)
            rows = [(safe(name) + '.npy', name) for name in ref]
        else:
            rows = [line.rstrip('\n').split('\t') for line in open(os.path.join(tmp, 'out', 'values.tsv'))][1:]
        compared = failing = skipped = 0
        for file, name in rows:
            if name not in ref:
                skipped += 1
                continue
            a, b = np.load(os.path.join(tmp, 'out', file)), np.asarray(ref[name])
            if a.shape != b.shape:
                print(f'  {name[:70]}: shape {a.shape} vs {b.shape}')
                failing += 1
                continue
            compared += 1
            if np.issubdtype(b.dtype, np.integer):
                d = np.abs(a.astype(np.int64) - b.astype(np.int64))
                bad, line = d.max(initial=0) > 0, f'{int((d > 0).sum())} of {d.size} differ, up to {int(d.max(initial=0))} step(s)'
            else:
                scale = max(float(np.abs(b).max(initial=0)), 1e-6)
                rel = float(np.abs(a.astype(np.float64) - b).max(initial=0)) / scale
                bad, line = not rel <= 1e-4, f'relative difference {rel:.3g}'
            failing += bad
            if bad or args.all:
                print(f'  {name[:70]} {b.dtype}{list(b.shape)}: {line}')
    print(f'compare-layers: {compared} values compared with {label}, {failing} differ, {skipped} without a counterpart')
    sys.exit(1 if failing else 0)


if __name__ == '__main__':
    main()
