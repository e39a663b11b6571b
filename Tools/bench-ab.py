#!/usr/bin/env python3
"""Compares two modellens builds on the benchmark set, as the machines here need: 1 thread pinned
to one CPU (taskset -c CPU; runs of more threads unpinned), ROUNDS rounds interleaved across models and builds, and for each
model and build the minimum of the round medians (which repeats within about 5% where a single
median moves 30-50%). Prints the CPU model, each model's times and the ratio current/baseline,
and the geometric mean of the ratios.

  Tools/bench-ab.py --baseline OTHER/.build/release/modellens [--current .build/release/modellens]
                    [--rounds 3] [--runs 20] [--cpu 1] [--threads 1] [--models FILE ...]"""
import argparse, glob, json, math, os, shutil, statistics, subprocess, sys

from hostcpu import cpu_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = [
    'torchvision/mobilenet_v2.onnx', 'torchvision/resnet50.onnx', 'torchvision/vgg16.onnx', 'torchvision/densenet121.onnx',
    'torchvision/googlenet.onnx', 'torchvision/shufflenet_v2_x1_0.onnx', 'torchvision/mobilenet_v3_small.onnx',
    'mediapipe/mediapipe__modules__palm_detection__palm_detection_full.tflite',
    'mediapipe/mediapipe__modules__pose_landmark__pose_landmark_full.tflite',
    'mediapipe/mediapipe__modules__hand_landmark__hand_landmark_full.tflite',
    'mediapipe/mediapipe__modules__face_detection__face_detection_short_range.tflite',
    'rapidocr/rapidocr_onnxruntime__models__ch_PP-OCRv4_det_infer.onnx',
]


def median_ms(binary, model, args):
    cmd = [binary, 'profile', model, '--runs', str(args.runs), '--warmup', str(args.warmup), '--threads', str(args.threads),
           '--format', 'json']
    if model.endswith('.onnx') and 'rapidocr' in model:
        cmd += ['--input-shape', 'x=1,3,640,640']
    if args.cpu is not None and args.threads == 1 and shutil.which('taskset'):   # more threads need more CPUs
        cmd = ['taskset', '-c', str(args.cpu)] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)['medianMs']


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--baseline', required=True)
    p.add_argument('--current', default=os.path.join(ROOT, '.build', 'release', 'modellens'))
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--runs', type=int, default=20)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--cpu', type=int, default=1)
    p.add_argument('--models', nargs='+', help='model files (default: the set above, under .models/)')
    args = p.parse_args()
    models = [m for m in (args.models or [os.path.join(ROOT, '.models', x) for x in MODELS]) if os.path.exists(m)]
    if not models:
        sys.exit('no models: run make models')
    times = {(m, b): [] for m in models for b in ('baseline', 'current')}
    for r in range(args.rounds):
        for m in models:
            order = ('baseline', 'current') if r % 2 == 0 else ('current', 'baseline')
            for b in order:
                t = median_ms(getattr(args, b), m, args)
                if t is not None:
                    times[(m, b)].append(t)
        print(f'round {r + 1}/{args.rounds} done', file=sys.stderr, flush=True)
    pin = f'pinned to CPU {args.cpu}' if args.threads == 1 else 'not pinned'
    print(f'{cpu_model()}; {args.threads} thread(s), {pin}; min of {args.rounds} round medians of {args.runs} runs')
    print(f"| model | baseline ms | current ms | current/baseline |\n|---|---|---|---|")
    ratios = []
    for m in models:
        a, b = times[(m, 'baseline')], times[(m, 'current')]
        if not a or not b:
            print(f'| {os.path.basename(m)} | {"-" if not a else min(a):} | {"-" if not b else min(b)} | - |')
            continue
        ratio = min(b) / min(a)
        ratios.append(ratio)
        print(f'| {os.path.basename(m).replace("mediapipe__modules__", "")} | {min(a):.2f} | {min(b):.2f} | {ratio:.3f} |')
    if ratios:
        print(f'\ngeometric mean current/baseline: {math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f} over {len(ratios)} models')


if __name__ == '__main__':
    main()
