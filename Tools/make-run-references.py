#!/usr/bin/env python3
"""Reference outputs for the executor tests: for each real model, seeded random inputs and the
outputs of onnxruntime (.onnx) or ai-edge-litert (.tflite), saved as .npy under
.refdata/runs/<model>/ (input_<k>.npy, output_<k>.npy, meta.json with names and shapes).
Inputs are uniform in [-1, 1) for float inputs; symbolic sizes get the concrete shapes below.

meta.json also records, per output, the reference's own spread: the largest difference between
the runtime's kernel variants (onnxruntime with all graph optimisations vs none; LiteRT with
XNNPACK vs its reference kernels), relative to the output's magnitude. A few outputs are
ill-conditioned enough that the reference disagrees with itself by more than 1e-4 (mediapipe's
pose segmentation logits: 8e-4); the tests allow max(1e-4, 2 x spread) there."""
import glob, json, os, sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, '.refdata', 'runs')
SHAPES = {  # model file stem -> input shapes for symbolic inputs
    'rapidocr_onnxruntime__models__ch_PP-OCRv4_det_infer': [1, 3, 320, 320],
    'rapidocr_onnxruntime__models__ch_PP-OCRv4_rec_infer': [1, 3, 48, 320],
    'rapidocr_onnxruntime__models__ch_ppocr_mobile_v2.0_cls_infer': [1, 3, 48, 192],
    'nudenet__320n': [1, 3, 320, 320],
}


def onnx_ref(path, stem):
    import onnxruntime as ort
    s = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    rng = np.random.default_rng(7)
    feeds, meta = {}, {'inputs': [], 'outputs': []}
    for i in s.get_inputs():
        shape = SHAPES.get(stem) or [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        if i.type == 'tensor(float)':
            x = rng.uniform(-1, 1, size=shape).astype(np.float32)
        elif i.type == 'tensor(int32)':
            x = rng.integers(0, 256, size=shape).astype(np.int32)
        elif i.type == 'tensor(int64)':
            x = rng.integers(0, 256, size=shape).astype(np.int64)
        else:
            raise SystemExit(f'{path}: input type {i.type}')
        feeds[i.name] = x
        meta['inputs'].append({'name': i.name, 'shape': list(x.shape)})
    outs = s.run(None, feeds)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider']).run(None, feeds)
    for o, v, w in zip(s.get_outputs(), outs, plain):
        meta['outputs'].append({'name': o.name, 'shape': list(v.shape), 'spread': spread(v, w)})
    return list(feeds.values()), outs, meta


def spread(a, b):
    a = np.asarray(a, np.float64); b = np.asarray(b, np.float64)
    if a.size == 0:
        return 0.0
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-6))


def tflite_ref(path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    it = Interpreter(model_path=path)
    ref = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    ref.allocate_tensors()
    rng = np.random.default_rng(7)
    ins, meta = [], {'inputs': [], 'outputs': []}
    for d in it.get_input_details():
        if np.issubdtype(d['dtype'], np.integer):
            info = np.iinfo(d['dtype'])
            x = rng.integers(info.min, info.max, size=d['shape'], endpoint=True).astype(d['dtype'])
        else:
            x = rng.uniform(-1, 1, size=d['shape']).astype(d['dtype'])
        it.set_tensor(d['index'], x)
        ref.set_tensor(d['index'], x)
        ins.append(x)
        meta['inputs'].append({'name': d['name'], 'shape': list(map(int, d['shape']))})
    it.invoke()
    ref.invoke()
    outs = []
    meta['extra'] = {}
    for k, d in enumerate(it.get_output_details()):
        v = it.get_tensor(d['index'])
        outs.append(v)
        r = ref.get_tensor(d['index'])
        meta['outputs'].append({'name': d['name'], 'shape': list(map(int, v.shape)), 'spread': spread(v, r),
                                'steps': float(np.abs(v.astype(np.float64) - r.astype(np.float64)).max()) if np.issubdtype(v.dtype, np.integer) else None})
        if np.issubdtype(v.dtype, np.integer):
            # Integer outputs also from LiteRT's reference kernels (the default interpreter runs
            # XNNPACK, whose requantization rounds in float and can differ by a step).
            meta['outputs'][-1]['referenceKernels'] = f'reference_kernels_{k}.npy'
            meta['extra'][f'reference_kernels_{k}.npy'] = r.copy()
    return ins, outs, meta


def ort_profiles():
    """onnxruntime's per-op profiles (the JSON trace enable_profiling writes), 1 thread, 5 runs:
    the files `modellens calibrate --from-timings` reads, for its tests."""
    import onnxruntime as ort
    d = os.path.join(ROOT, '.refdata', 'ort-profiles')
    os.makedirs(d, exist_ok=True)
    for p in (os.path.join(ROOT, 'SampleModels', 'tiny_cnn.onnx'), os.path.join(ROOT, '.models', 'torchvision', 'mobilenet_v2.onnx')):
        out = os.path.join(d, os.path.splitext(os.path.basename(p))[0] + '.json')
        if os.path.exists(out) or not os.path.exists(p):
            continue
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(d, 'tmp')
        s = ort.InferenceSession(p, opts, providers=['CPUExecutionProvider'])
        feeds = {i.name: np.random.default_rng(0).standard_normal([x if isinstance(x, int) else 1 for x in i.shape]).astype(np.float32)
                 for i in s.get_inputs()}
        for _ in range(5):
            s.run(None, feeds)
        os.replace(s.end_profiling(), out)


def main():
    ort_profiles()
    models = sorted(glob.glob(os.path.join(ROOT, '.models', d, '*.onnx')) for d in ('torchvision', 'paper', 'rapidocr', 'nudenet', 'magika'))
    models = [p for group in models for p in group] + sorted(glob.glob(os.path.join(ROOT, '.models', 'mediapipe', '*.tflite')))
    models += [os.path.join(ROOT, 'SampleModels', f) for f in ('tiny_cnn.onnx', 'depthwise_cases.onnx', 'convnext_block.onnx', 'tiny_cnn.tflite', 'tiny_cnn_qdq.onnx', 'tiny_cnn_qop.onnx', 'qlinear_cases.onnx',
                                                                'tiny_int8.tflite', 'mobilenet_int8.tflite', 'mobilenet_dynamic.tflite')]
    for p in models:
        stem = os.path.splitext(os.path.basename(p))[0]
        d = os.path.join(OUT, stem + ('' if p.endswith('.onnx') else '.tflite'))
        if os.path.exists(os.path.join(d, 'meta.json')):
            continue
        try:
            ins, outs, meta = onnx_ref(p, stem) if p.endswith('.onnx') else tflite_ref(p)
        except Exception as e:  # e.g. custom ops the reference runtime lacks
            print(f'make-run-references: {stem}: {str(e).splitlines()[0][:120]}', file=sys.stderr)
            continue
        os.makedirs(d, exist_ok=True)
        for k, x in enumerate(ins):
            np.save(os.path.join(d, f'input_{k}.npy'), x)
        for k, y in enumerate(outs):
            np.save(os.path.join(d, f'output_{k}.npy'), np.ascontiguousarray(y))
        for f, y in meta.pop('extra', {}).items():
            np.save(os.path.join(d, f), np.ascontiguousarray(y))
        meta['model'] = os.path.relpath(p, ROOT)
        json.dump(meta, open(os.path.join(d, 'meta.json'), 'w'))
    print(f'make-run-references: {len(os.listdir(OUT)) if os.path.isdir(OUT) else 0} models in {OUT}', file=sys.stderr)


if __name__ == '__main__':
    main()
