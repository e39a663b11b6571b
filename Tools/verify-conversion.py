#!/usr/bin/env python3
"""Checks a converted model against its source with the reference runtimes: onnxruntime for
.onnx, ai-edge-litert for .tflite (onnx.checker too for .onnx outputs). Both run on the same
seeded random inputs (uniform in [-1, 1) for floats); outputs are paired by position. Prints
one JSON object: per output the largest absolute difference and that difference relative to
the source output's largest magnitude, the source runtime's own spread on the same inputs (its
kernel variants: LiteRT's XNNPACK vs reference kernels, onnxruntime with all graph optimisations
vs none; a few ill-conditioned outputs disagree with themselves beyond 1e-4), and the Transpose
count of a .tflite output.

usage: verify-conversion.py SOURCE CONVERTED [--shape d1,d2,...]  (the shape fixes symbolic inputs)
With --layout-changed, 4-D inputs and outputs are NCHW on the ONNX side and NHWC on the TFLite side."""
import json, sys

import numpy as np


def runner(path, variant=False):
    if path.endswith('.onnx'):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        if variant:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        s = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
        ins = [(i.name, i.shape, i.type) for i in s.get_inputs()]
        return ins, lambda feeds: s.run(None, feeds)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    it = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF) if variant else Interpreter(model_path=path)
    it.allocate_tensors()
    det = it.get_input_details()
    ins = [(d['name'], list(d['shape']), str(d['dtype'])) for d in det]

    def run(feeds):
        for d in det:
            it.set_tensor(d['index'], feeds[d['name']])
        it.invoke()
        return [it.get_tensor(d['index']) for d in it.get_output_details()]
    return ins, run


def tflite_ops(path):
    import tflite
    buf = open(path, 'rb').read()
    m = tflite.Model.GetRootAsModel(buf, 0)
    names = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith('_')}
    ops = []
    g = m.Subgraphs(0)
    for i in range(g.OperatorsLength()):
        oc = m.OperatorCodes(g.Operators(i).OpcodeIndex())
        ops.append(names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), '?'))
    return ops


def main():
    args = sys.argv[1:]
    changed = '--layout-changed' in args
    shape = None
    if '--shape' in args:
        shape = [int(x) for x in args[args.index('--shape') + 1].split(',')]
    src, dst = [a for a in args if a.endswith('.onnx') or a.endswith('.tflite')][:2]
    result = {'source': src, 'converted': dst, 'outputs': []}
    if dst.endswith('.onnx'):
        import onnx
        onnx.checker.check_model(onnx.load(dst), full_check=True)
        result['checker'] = 'passed'
    else:
        ops = tflite_ops(dst)
        result['transposes'] = ops.count('TRANSPOSE')
        result['ops'] = len(ops)
    (si, srun), (di, drun) = runner(src), runner(dst)
    rng = np.random.default_rng(11)
    feeds_s, feeds_d = {}, {}
    for (name, shp, typ), (dname, _, _) in zip(si, di):
        shp = shape if shape and any(not isinstance(d, int) or d < 0 for d in shp) else [int(d) if isinstance(d, (int, np.integer)) and d > 0 else 1 for d in shp]
        if 'int8' in typ:
            dt = np.uint8 if 'uint8' in typ else np.int8
            x = rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, size=shp, endpoint=True).astype(dt)
        elif 'int' in typ:
            x = rng.integers(0, 10, size=shp).astype(np.int64 if '64' in typ else np.int32)
        else:
            x = rng.uniform(-1, 1, size=shp).astype(np.float32)
        feeds_s[name] = x
        y = x
        if changed and x.ndim == 4:
            y = np.ascontiguousarray(x.transpose(0, 2, 3, 1) if src.endswith('.onnx') else x.transpose(0, 3, 1, 2))
        feeds_d[dname] = y
    a, b = srun(feeds_s), drun(feeds_d)
    c = runner(src, variant=True)[1](feeds_s)
    for x, y, z in zip(a, b, c):
        x = np.asarray(x, np.float64)
        z = np.asarray(z, np.float64)
        spread = float(np.abs(x - z).max() / max(float(np.abs(x).max()), 1e-6)) if x.size else 0.0
        x = np.asarray(x, np.float64); y = np.asarray(y, np.float64)
        if changed and y.ndim == 4:
            y = y.transpose(0, 3, 1, 2) if src.endswith('.onnx') else y.transpose(0, 2, 3, 1)
        if x.shape != y.shape:
            result['outputs'].append({'shape': list(x.shape), 'convertedShape': list(y.shape), 'maxAbs': None, 'relative': None})
            continue
        d = float(np.abs(x - y).max()) if x.size else 0.0
        result['outputs'].append({'shape': list(x.shape), 'maxAbs': d, 'relative': d / max(float(np.abs(x).max()) if x.size else 0.0, 1e-6),
                                  'spread': spread})
    print(json.dumps(result))


main()
