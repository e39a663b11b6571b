#!/usr/bin/env python3
"""Predicting a runtime ModelLens does not run: onnxruntime on this host.

1. Measures onnxruntime's 1-thread latency on the study's .onnx models (pinned to one CPU,
   rounds interleaved across models, the minimum of the round medians) and writes its per-op
   profile (SessionOptions.enable_profiling) for each.
2. Fits a profile with `modellens calibrate --from-timings` on at most --fit models (chosen to
   cover the kernel classes that carry the study's predicted time, per-op profiles included),
   from the calibrated host profile. Models with symbolic inputs are fitted on through a copy
   fixed at the size they are measured at.
3. Predicts onnxruntime's latency on every other model with `modellens analyze --profile` and
   prints each prediction beside the measurement, and the share within +-10% and +-5%.

Usage: Tools/study-runtime.py [--fit 10] [--rounds 3] [--runs 10] [--base .study/host.json]
The models are those of Tools/study.py (run it first: it makes the sweeps and the host profile).
"""
import argparse, glob, json, os, subprocess, sys, time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, '.build', 'release', 'modellens')
WORK = os.path.join(ROOT, '.study', 'onnxruntime')


def session(path, profile_prefix=None):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])


# Models whose symbolic inputs need a real size (the sizes Tools/study.py runs them at).
FIXED = {'rapidocr_onnxruntime__models__ch_PP-OCRv4_det_infer': [1, 3, 320, 320], 'rapidocr_onnxruntime__models__ch_PP-OCRv4_rec_infer': [1, 3, 48, 320],
         'rapidocr_onnxruntime__models__ch_ppocr_mobile_v2.0_cls_infer': [1, 3, 48, 192], 'nudenet__320n': [1, 3, 320, 320]}


def fixed(path):
    return FIXED.get(os.path.splitext(os.path.basename(path))[0])


def feeds(sess, path):
    rng = np.random.default_rng(1)
    out = {}
    for k, i in enumerate(sess.get_inputs()):
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        if k == 0 and fixed(path):
            shape = fixed(path)
        if 'float' in i.type:
            out[i.name] = rng.standard_normal(shape).astype(np.float32)
        else:
            out[i.name] = np.zeros(shape, dtype=np.int64)
    return out


def shape_args(sess, path):
    return ['--input-shape', f"{sess.get_inputs()[0].name}={','.join(map(str, fixed(path)))}"] if fixed(path) else []


def fixed_copy(path):
    """A model with symbolic inputs, saved with the size it is measured at: a timings row names a
    file, so this is what a user would fit on."""
    if not fixed(path):
        return path
    out = os.path.join(WORK, 'fixed', os.path.basename(path))
    if not os.path.exists(out):
        import onnx
        m = onnx.load(path)
        for d, v in zip(m.graph.input[0].type.tensor_type.shape.dim, fixed(path)):
            d.dim_value = v
        os.makedirs(os.path.dirname(out), exist_ok=True)
        onnx.save(m, out)
    return out


def choose_fit_set(models, n, analyses):
    """At most n models whose kernels cover the classes that carry the study's time (convolutions
    also by channel alignment). A class's
    weight is its share of each model's predicted time, summed over the models; a chosen model
    gains the weight of each class it brings closer to the 8 kernels a class needs for a factor of
    its own (calibrate --from-timings). Only ModelLens's analysis is used, no onnxruntime timing of
    the models predicted later."""
    need = 8
    weight, counts = {}, {}
    for m in models:
        ks = analyses[m]['kernels']
        total = sum(k['predictedMs'] for k in ks) or 1
        counts[m] = {}
        for k in ks:
            # Convolutions by channel alignment too (up to 16 floats, AVX-512's width): a runtime's
            # blocked kernels may take only aligned channels.
            c = k['class'] + (f"@{min(16, k['channelAlignment'])}" if 'channelAlignment' in k else '')
            weight[c] = weight.get(c, 0) + k['predictedMs'] / total
            counts[m][c] = counts[m].get(c, 0) + 1
    covered, chosen = {}, []
    while len(chosen) < n:
        def gain(m):
            return sum(weight[c] * min(need - covered.get(c, 0), k) / need for c, k in counts[m].items() if covered.get(c, 0) < need)
        rest = [m for m in models if m not in chosen]
        if not rest:
            break
        best = max(rest, key=gain)
        if gain(best) <= 0:
            break
        chosen.append(best)
        for c, k in counts[best].items():
            covered[c] = covered.get(c, 0) + k
    return chosen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--fit', type=int, default=10)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--runs', type=int, default=10)
    ap.add_argument('--base', default=os.path.join(ROOT, '.study', 'host.json'))
    ap.add_argument('--reuse', action='store_true', help='refit on the last measurement instead of measuring again')
    args = ap.parse_args()
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    os.makedirs(WORK, exist_ok=True)
    models = sorted(glob.glob(os.path.join(ROOT, '.models', '*', '*.onnx')) + glob.glob(os.path.join(ROOT, '.study', 'models', '*.onnx')))
    sessions, analyses = {}, {}
    for m in models:
        try:
            s = session(m)
            f = feeds(s, m)
            s.run(None, f)
            r = subprocess.run([BIN, 'analyze', m, '--profile', args.base, '--format', 'json'] + shape_args(s, m), capture_output=True, text=True)
            if r.returncode != 0:
                continue
            sessions[m] = (s, f)
            analyses[m] = json.loads(r.stdout)
        except Exception as e:  # a model onnxruntime cannot run at the default shapes
            print(f'study-runtime: {os.path.relpath(m, ROOT)}: {e}', file=sys.stderr)
    saved = os.path.join(WORK, 'measured.json')
    medians = {m: [] for m in sessions}
    if args.reuse and os.path.exists(saved):
        medians = {m: v for m, v in json.load(open(saved)).items() if m in sessions}
    for rd in range(0 if args.reuse and os.path.exists(saved) else args.rounds):
        for k, (m, (s, f)) in enumerate(sessions.items()):
            print(f'\rstudy-runtime: round {rd + 1}/{args.rounds}, model {k + 1}/{len(sessions)}\033[K', end='', file=sys.stderr)
            s.run(None, f)
            t = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                s.run(None, f)
                t.append((time.perf_counter() - t0) * 1000)
            medians[m].append(sorted(t)[len(t) // 2])
    print(file=sys.stderr)
    json.dump(medians, open(saved, 'w'))
    measured = {m: min(v) for m, v in medians.items()}
    # Per-op profiles of the models fitted on: chosen to cover the kernel classes.
    order = sorted(measured, key=measured.get)
    fit = choose_fit_set(order, args.fit, analyses)
    rows = []
    for m in fit:
        s = session(m, os.path.join(WORK, os.path.basename(m)))
        f = feeds(s, m)
        for _ in range(args.runs):
            s.run(None, f)
        prof = s.end_profiling()
        rows.append(f'{os.path.abspath(fixed_copy(m))},{measured[m]:.4f},{os.path.abspath(prof)}')
    csv = os.path.join(WORK, 'timings.csv')
    with open(csv, 'w') as fh:
        fh.write('model,milliseconds,op_profile\n' + '\n'.join(rows) + '\n')
    fitted = os.path.join(WORK, 'onnxruntime.json')
    r = subprocess.run([BIN, 'calibrate', '--from-timings', csv, '--base', args.base, '-o', fitted], capture_output=True, text=True)
    print(r.stdout)
    if r.returncode != 0:
        sys.exit(r.stderr)
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
    print(f'## onnxruntime {ort.__version__}, 1 thread, CPU {cpu}: fitted on {len(fit)} models, predicted on {len(measured) - len(fit)}\n')
    print('| model | onnxruntime ms | round spread | predicted ms | ratio |')
    print('|---|---|---|---|---|')
    errs = []
    for m in order:
        if m in fit:
            continue
        a = json.loads(subprocess.run([BIN, 'analyze', m, '--profile', fitted, '--format', 'json'] + shape_args(sessions[m][0], m),
                                      capture_output=True, text=True).stdout)
        p = a['totals']['predictedMs']
        errs.append(p / measured[m] - 1)
        print(f'| {os.path.relpath(m, ROOT)} | {measured[m]:.2f} | {100 * (max(medians[m]) / min(medians[m]) - 1):.1f}% | {p:.2f} | {p / measured[m]:.2f} |')
    e = np.abs(np.array(errs))
    print(f'\nwithin ±10%: {100 * np.mean(e <= 0.10):.0f}%; within ±5%: {100 * np.mean(e <= 0.05):.0f}%; '
          f'mean abs. error {100 * e.mean():.1f}% over {len(e)} models')


if __name__ == '__main__':
    main()
