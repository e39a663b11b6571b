#!/usr/bin/env python3
"""ModelLens against the runtime each format is made for, on the benchmark set, in one run:
onnxruntime for .onnx, ai-edge-litert (its default, the XNNPACK delegate) for .tflite. Batch 1,
random inputs, 1 and 2 threads.

Protocol (one 20-run median can move 30-50% between two calls on these machines; this repeats
within about 5%): --rounds rounds, each going through every model, thread count and runtime in
turn; 1-thread runs pinned to one CPU (--cpu; ModelLens through taskset, the Python peers by
sched_setaffinity); per case the minimum of its round medians.

Prints the CPU, a table (ModelLens ms, peer ms, ratio = ModelLens / peer, each runtime's 2-thread
speed-up), the geometric mean of the ratios per thread count, and the cases behind the peer;
--json FILE writes every round's medians too.

The set: the torchvision exports of `make models` and Tools/export-torchvision.py --study,
mediapipe's and rapidocr's models, and what Tools/make-bench-models.py made in .models/bench/
(QDQ and QOperator MobileNetV2; Keras applications as float, full-integer and dynamic-range
TFLite, where TensorFlow was there to make them). A model that is missing is listed as such.

  Tools/bench-runtime.py [--rounds 3] [--runs 10] [--warmup 3] [--threads 1,2] [--only SUBSTR] [--json FILE]"""
import argparse, json, math, os, platform, shutil, statistics, subprocess, sys, time

import numpy as np

from hostcpu import cpu_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, '.build', 'release', 'modellens')
M = os.path.join(ROOT, '.models')
SET = [
    'torchvision/mobilenet_v2.onnx', 'torchvision/mobilenet_v3_small.onnx', 'study-torchvision/mobilenet_v3_large.onnx',
    'torchvision/resnet50.onnx', 'torchvision/googlenet.onnx', 'torchvision/densenet121.onnx',
    'study-torchvision/squeezenet1_0.onnx', 'torchvision/shufflenet_v2_x1_0.onnx', 'study-torchvision/efficientnet_b0.onnx',
    'study-torchvision/regnet_x_400mf.onnx', 'study-torchvision/resnext50_32x4d.onnx', 'study-torchvision/convnext_tiny.onnx',
    'study-torchvision/inception_v3.onnx', 'torchvision/vgg16.onnx',
    'bench/keras_mobilenet_v2.tflite', 'bench/keras_inception_v3.tflite', 'bench/keras_efficientnet_b0.tflite',
    'bench/keras_mobilenet_v3_large.tflite', 'bench/keras_resnet50.tflite',
    'bench/keras_mobilenet_v2_int8.tflite', 'bench/keras_mobilenet_v2_dynamic.tflite',
    'bench/mobilenet_v2_qdq.onnx', 'bench/mobilenet_v2_qop.onnx', 'bench/efficientnet_b0_qop.onnx',
    'mediapipe/mediapipe__modules__palm_detection__palm_detection_full.tflite',
    'mediapipe/mediapipe__modules__pose_landmark__pose_landmark_full.tflite',
    'mediapipe/mediapipe__modules__hand_landmark__hand_landmark_full.tflite',
    'mediapipe/mediapipe__modules__face_detection__face_detection_short_range.tflite',
    'mediapipe/mediapipe__modules__face_landmark__face_landmark.tflite',
    'rapidocr/rapidocr_onnxruntime__models__ch_PP-OCRv4_det_infer.onnx',
    'rapidocr/rapidocr_onnxruntime__models__ch_PP-OCRv4_rec_infer.onnx',
    'nudenet/nudenet__320n.onnx',
    'magika/magika__models__standard_v3_3__model.onnx',
]
# Inputs whose sizes the file leaves symbolic.
SHAPES = {
    'rapidocr_onnxruntime__models__ch_PP-OCRv4_det_infer': [1, 3, 640, 640],
    'rapidocr_onnxruntime__models__ch_PP-OCRv4_rec_infer': [1, 3, 48, 320],
    'nudenet__320n': [1, 3, 320, 320],
}


def short(path):
    return os.path.basename(path).replace('mediapipe__modules__', '').replace('rapidocr_onnxruntime__models__', '')


def median_of(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)


def input_name(path, names={}):
    if path not in names:
        import onnx
        m = onnx.load(path, load_external_data=False)
        inits = {i.name for i in m.graph.initializer}
        names[path] = next(i.name for i in m.graph.input if i.name not in inits)
    return names[path]


def modellens(path, threads, args):
    stem = os.path.splitext(os.path.basename(path))[0]
    cmd = [BIN, 'profile', path, '--runs', str(args.runs), '--warmup', str(args.warmup), '--threads', str(threads), '--format', 'json']
    if stem in SHAPES:
        cmd += ['--input-shape', input_name(path) + '=' + ','.join(map(str, SHAPES[stem]))]
    if threads == 1 and shutil.which('taskset'):
        cmd = ['taskset', '-c', str(args.cpu)] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ['failed'])[-1][:100]
    return json.loads(r.stdout)['medianMs'], None


def peer(path, threads, args):
    stem = os.path.splitext(os.path.basename(path))[0]
    rng = np.random.default_rng(0)
    if path.endswith('.onnx'):
        import onnxruntime as ort
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        s = ort.InferenceSession(path, o, providers=['CPUExecutionProvider'])
        feeds = {}
        for i in s.get_inputs():
            shape = SHAPES.get(stem) or [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
            if i.type == 'tensor(float)':
                feeds[i.name] = rng.uniform(-1, 1, shape).astype(np.float32)
            else:
                feeds[i.name] = rng.integers(0, 256, shape).astype(np.int64 if 'int64' in i.type else np.int32)
        return median_of(lambda: s.run(None, feeds), args.runs, args.warmup)
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    for d in it.get_input_details():
        if np.issubdtype(d['dtype'], np.integer):
            info = np.iinfo(d['dtype'])
            x = rng.integers(info.min, info.max, size=d['shape'], endpoint=True).astype(d['dtype'])
        else:
            x = rng.uniform(-1, 1, d['shape']).astype(d['dtype'])
        it.set_tensor(d['index'], x)
    return median_of(it.invoke, args.runs, args.warmup)


def pinned(threads, cpu, fn):
    """Runs fn in this process pinned to one CPU for 1 thread, on every CPU otherwise."""
    if not hasattr(os, 'sched_setaffinity'):
        return fn()
    everything = os.sched_getaffinity(0)
    if threads == 1:
        os.sched_setaffinity(0, {cpu})
    try:
        return fn()
    finally:
        os.sched_setaffinity(0, everything)


def geomean(xs):
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float('nan')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--runs', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--cpu', type=int, default=1, help='the CPU 1-thread runs are pinned to')
    ap.add_argument('--only', default=None, help='models whose path contains this')
    ap.add_argument('--json', default=None)
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(',')]
    subprocess.run(['swift', 'build', '-c', 'release', '--product', 'modellens'], cwd=ROOT, check=True, capture_output=True)
    models = [os.path.join(M, p) for p in SET if args.only is None or args.only in p]
    missing = [p for p in models if not os.path.exists(p)]
    models = [p for p in models if os.path.exists(p)]
    times = {}   # (model, threads, runtime) -> [round medians]
    errors = {}
    for r in range(args.rounds):
        for k, p in enumerate(models):
            print(f'\rround {r + 1}/{args.rounds}: {k + 1}/{len(models)} {short(p)[:40]:<40}', end='', file=sys.stderr, flush=True)
            for t in threads:
                ms, err = modellens(p, t, args)
                if err:
                    errors[(p, 'ModelLens')] = err
                else:
                    times.setdefault((p, t, 'ModelLens'), []).append(ms)
                try:
                    times.setdefault((p, t, 'peer'), []).append(pinned(t, args.cpu, lambda: peer(p, t, args)))
                except Exception as e:   # a model its own runtime cannot run (custom ops)
                    errors[(p, 'peer')] = str(e).splitlines()[0][:100]
    print(file=sys.stderr)
    best = {key: min(v) for key, v in times.items()}
    print(f'{cpu_model()}; batch 1; per case the minimum of {args.rounds} round medians of '
          f'{args.runs} runs (1 thread pinned to CPU {args.cpu}); peer: onnxruntime for .onnx, LiteRT (XNNPACK) for .tflite')
    print()
    head = '| model | ' + ' | '.join(f'ModelLens {t}t | peer {t}t | ratio {t}t' for t in threads)
    if len(threads) > 1:
        head += ' | 2t speed-up ModelLens / peer'
    print(head + ' |')
    print('|' + '---|' * (1 + 3 * len(threads) + (1 if len(threads) > 1 else 0)))
    ratios = {t: [] for t in threads}
    behind = []
    for p in models:
        cells = [short(p)]
        for t in threads:
            a, b = best.get((p, t, 'ModelLens')), best.get((p, t, 'peer'))
            cells += [f'{a:.2f}' if a else 'n/a', f'{b:.2f}' if b else 'n/a']
            if a and b:
                ratios[t].append(a / b)
                cells.append(f'{a / b:.2f}')
                if a / b > 1.0:
                    behind.append((a / b, short(p), t))
            else:
                cells.append('-')
        if len(threads) > 1:
            def up(rt):
                one, two = best.get((p, threads[0], rt)), best.get((p, threads[1], rt))
                return f'{one / two:.2f}' if one and two else '-'
            cells.append(f'{up("ModelLens")} / {up("peer")}')
        print('| ' + ' | '.join(cells) + ' |')
    print()
    for t in threads:
        print(f'geometric mean ModelLens / peer at {t} thread(s): {geomean(ratios[t]):.3f} over {len(ratios[t])} models')
    print(f'cases behind the peer: {len(behind)} of {sum(len(v) for v in ratios.values())}')
    for ratio, name, t in sorted(behind, reverse=True):
        print(f'  {name} at {t} thread(s): {ratio:.2f}x')
    for (p, who), e in sorted(errors.items()):
        print(f'  {short(p)}: {who} did not run: {e}')
    for p in missing:
        print(f'  missing: {os.path.relpath(p, ROOT)}')
    if args.json:
        json.dump({'cpu': cpu_model(), 'rounds': args.rounds, 'runs': args.runs,
                   'times': [{'model': os.path.relpath(p, ROOT), 'threads': t, 'runtime': rt, 'roundMedians': v}
                             for (p, t, rt), v in sorted(times.items())]}, open(args.json, 'w'), indent=1)


if __name__ == '__main__':
    main()
