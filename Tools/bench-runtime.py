#!/usr/bin/env python3
"""Inference time side by side, in one run: ModelLens (release build), onnxruntime, tract (pip `tract`)
and, for .tflite, ai-edge-litert. Batch 1, median of --runs after --warmup, at 1 and 2 threads.
Models: MobileNetV2, ResNet50, VGG16, DenseNet121 (torchvision exports), two mediapipe models and,
when Tools/make-quantized-models.py --bench has made them, a Keras MobileNetV2 as fp32 and as
full-integer int8 .tflite. For .tflite, LiteRT runs twice: its default (the XNNPACK delegate) and
its builtin kernels alone (no delegate).
Also reports ModelLens' GFLOP/s across ResNet50's convolutions (from `modellens profile`).
With --rounds R, ModelLens and its reference (onnxruntime for .onnx, LiteRT with XNNPACK for
.tflite) run alternately R times and each cell is the median of the R medians: on a shared
machine whose speed drifts within minutes, the ratio column is then taken from the same minutes."""
import argparse, glob, json, os, statistics, subprocess, sys, time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, '.build', 'release', 'modellens')


def median_time(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter(); fn(); ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)


def modellens(path, threads, runs, warmup):
    r = subprocess.run([BIN, 'profile', path, '--runs', str(runs), '--warmup', str(warmup), '--threads', str(threads), '--format', 'json'],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip().splitlines()[-1][:80]
    return json.loads(r.stdout), None


def onnxruntime(path, threads, runs, warmup, x):
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
    s = ort.InferenceSession(path, o, providers=['CPUExecutionProvider'])
    name = s.get_inputs()[0].name
    return median_time(lambda: s.run(None, {name: x}), runs, warmup)


def tract_time(path, runs, warmup, x):
    import tract
    m = tract.onnx().load(path)
    m.set_input_fact(0, f"{','.join(map(str, x.shape))},f32")
    r = m.into_model().into_runnable()   # into_model() applies tract's optimisations
    return median_time(lambda: r.run([x]), runs, warmup)


def litert(path, threads, runs, warmup, builtin=False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kind = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin else OpResolverType.AUTO
    it = Interpreter(model_path=path, num_threads=threads, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d['index'], np.random.default_rng(0).uniform(-1, 1, d['shape']).astype(d['dtype']))
    return median_time(it.invoke, runs, warmup)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--runs', type=int, default=20)
    ap.add_argument('--warmup', type=int, default=5)
    ap.add_argument('--rounds', type=int, default=1, help='alternate ModelLens and its reference this many times')
    args = ap.parse_args()
    subprocess.run(['swift', 'build', '-c', 'release', '--product', 'modellens'], cwd=ROOT, check=True, capture_output=True)
    models = [os.path.join(ROOT, '.models', 'torchvision', m + '.onnx') for m in ('mobilenet_v2', 'resnet50', 'vgg16', 'densenet121')]
    models += [p for p in sorted(glob.glob(os.path.join(ROOT, '.models', 'mediapipe', '*.tflite')))
               if 'pose_landmark_full' in p or 'palm_detection_full' in p]
    models += [os.path.join(ROOT, '.models', 'bench', f'mobilenet_v2_{k}.tflite') for k in ('fp32', 'int8')]
    rounds = max(1, args.rounds)
    print(f'batch 1, median of {args.runs} runs after {args.warmup} warm-up (ms); one process per tool, same machine, one run of this script'
          + (f'; ModelLens and its reference alternated {rounds} times, median of the {rounds} medians' if rounds > 1 else ''))
    print(f'{"model":<32}{"threads":>8}{"ModelLens":>11}{"onnxruntime":>13}{"tract":>9}{"litert":>9}{"litert-builtin":>16}{"ratio":>8}')
    conv_rate = None
    for p in models:
        if not os.path.exists(p):
            continue
        name = os.path.basename(p).replace('mediapipe__modules__', '')[:31]
        if '/bench/' in p:
            name = 'keras ' + name
        x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
        for threads in (1, 2):
            mls, refs = [], []
            for _ in range(rounds):
                ml, err = modellens(p, threads, args.runs, args.warmup)
                if ml:
                    mls.append(ml)
                refs.append(onnxruntime(p, threads, args.runs, args.warmup, x) if p.endswith('.onnx')
                            else litert(p, threads, args.runs, args.warmup))
            ml = sorted(mls, key=lambda m: m['medianMs'])[len(mls) // 2] if mls else None
            ref = statistics.median(refs)
            cells = [f'{ml["medianMs"]:.1f}' if ml else 'n/a']
            if p.endswith('.onnx'):
                cells.append(f'{ref:.1f}')
                try:
                    cells.append(f'{tract_time(p, args.runs, args.warmup, x):.1f}' if threads == 1 else '-')
                except Exception as e:
                    cells.append('n/a')
                cells += ['-', '-']
            else:
                cells += ['-', '-', f'{ref:.1f}', f'{litert(p, threads, args.runs, args.warmup, builtin=True):.1f}']
            cells.append(f'{ml["medianMs"] / ref:.2f}' if ml and ref else '-')
            print(f'{name:<32}{threads:>8}' + ''.join(f'{c:>{w}}' for c, w in zip(cells, (11, 13, 9, 9, 16, 8))), flush=True)
            if ml and 'resnet50' in p and threads == 1:
                convs = [n for n in ml['nodes'] if n['op'] == 'Conv']
                flops = sum(n.get('flops', 0) for n in convs)
                ms = sum(n['measuredMs'] for n in convs)
                conv_rate = flops / ms / 1e6 if ms else None
    if conv_rate:
        print(f'\nModelLens, ResNet50 convolutions at 1 thread: {conv_rate:.1f} GFLOP/s (target: 60% of OpenBLAS sgemm, about 66 GFLOP/s of 110)')
    print('tract is run at its default threading (the python binding exposes no thread setting).')
    print('ratio: ModelLens / its reference (onnxruntime for .onnx, LiteRT with XNNPACK for .tflite).')


if __name__ == '__main__':
    main()
