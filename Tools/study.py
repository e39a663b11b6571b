#!/usr/bin/env python3
"""How well does the prediction explain latency? (Paper 000's question, measured.)

Calibrates this host (`modellens calibrate`), then measures every model of the study on the
executor and compares the measured latency with: the calibrated per-kernel prediction, the
uncalibrated roofline (built-in profile), and linear fits on FLOPs, parameters and modelled DRAM
bytes (leave-one-out, so no model predicts itself). Prints, per predictor and thread count, the
share of models within +-5% and +-10%, the mean absolute error and Spearman's rho; the median
per-kernel error of the calibrated prediction; and the kernel classes whose summed prediction over
all models misses their summed time most (the causes shared by many models).

Protocol (these machines are noisy): 1-thread runs pinned to one CPU (taskset -c 1), rounds
interleaved across models and thread counts, each model's latency the minimum of its round
medians; the spread of the round medians is reported per model.

The models: the real ones Tools/fetch-models.sh and Tools/export-torchvision.py [--study] put in .models/,
width-scaled copies of the torchvision CNNs (`modellens scale`), and other input sizes.

Usage: Tools/study.py [--threads 1,2] [--rounds 3] [--runs 10] [--profile host.json] [--quick]
                      [--json out.json]
"""
import argparse, glob, json, math, os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, '.build', 'release', 'modellens')
WORK = os.path.join(ROOT, '.study')

# Width sweeps (paper 000's models) and input sizes, made from the torchvision exports.
SWEEPS = {'vgg16': [0.125, 0.25, 0.5, 0.75], 'resnet50': [0.125, 0.25, 0.5, 0.75, 1.25, 1.5],
          'mobilenet_v2': [0.25, 0.5, 0.75, 1.5, 2.0, 3.0], 'googlenet': [0.25, 0.5]}
# Models whose symbolic inputs need a real size to run (as Tools/make-run-references.py gives).
FIXED = {'rapidocr_onnxruntime__models__ch_PP-OCRv4_det_infer': '1,3,320,320', 'rapidocr_onnxruntime__models__ch_PP-OCRv4_rec_infer': '1,3,48,320',
         'rapidocr_onnxruntime__models__ch_ppocr_mobile_v2.0_cls_infer': '1,3,48,192', 'nudenet__320n': '1,3,320,320'}
SIZES = {'mobilenet_v2': [96, 128, 160, 192, 256, 320], 'resnet50': [128, 160, 192, 288], 'shufflenet_v2_x1_0': [160, 320],
         'densenet121': [160, 288], 'mobilenet_v3_small': [160, 320], 'resnet18': [160, 288], 'mobilenet_v3_large': [160, 288],
         'efficientnet_b0': [160, 288], 'squeezenet1_1': [160, 288], 'regnet_x_400mf': [160], 'mnasnet1_0': [160, 288],
         'googlenet': [160, 288], 'resnet34': [160], 'resnet101': [160], 'resnext50_32x4d': [160], 'efficientnet_b1': [160],
         'regnet_y_400mf': [160], 'shufflenet_v2_x0_5': [160, 320], 'squeezenet1_0': [160], 'wide_resnet50_2': [160],
         'convnext_tiny': [160]}


def sh(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def models(quick):
    out = []
    for d in ['torchvision', 'study-torchvision', 'mediapipe', 'rapidocr', 'nudenet', 'magika', 'paper', 'keras', 'quantized', 'bench']:
        for p in sorted(glob.glob(os.path.join(ROOT, '.models', d, '*.onnx')) + glob.glob(os.path.join(ROOT, '.models', d, '*.tflite'))):
            stem = os.path.splitext(os.path.basename(p))[0]
            extra = []
            if stem in FIXED:
                info = json.loads(sh([BIN, 'inspect', p, '--json']).stdout or '{}')
                extra = ['--input-shape', f"{info['inputs'][0]['name']}={FIXED[stem]}"] if info.get('inputs') else []
            out.append((os.path.relpath(p, ROOT), extra))
    tv = os.path.join(ROOT, '.models', 'torchvision')
    os.makedirs(os.path.join(WORK, 'models'), exist_ok=True)
    for name, widths in SWEEPS.items():
        src = os.path.join(tv, name + '.onnx')
        if not os.path.exists(src):
            continue
        for w in (widths[::2] if quick else widths):
            dst = os.path.join(WORK, 'models', f'{name}_w{w}.onnx')
            if not os.path.exists(dst):
                r = sh([BIN, 'scale', src, '--width', str(w), '-o', dst])
                if r.returncode != 0:
                    print(f'study: cannot scale {name} to {w}: {r.stderr.strip()}', file=sys.stderr)
                    continue
            out.append((os.path.relpath(dst, ROOT), []))
    for name, sizes in SIZES.items():
        src = os.path.join(tv, name + '.onnx')
        if not os.path.exists(src):
            src = os.path.join(ROOT, '.models', 'study-torchvision', name + '.onnx')
        if not os.path.exists(src):
            continue
        info = json.loads(sh([BIN, 'inspect', src, '--json']).stdout or '{}')
        inputs = info.get('inputs') or info.get('graph', {}).get('inputs') or []
        if not inputs:
            continue
        iname = inputs[0]['name']
        for s in (sizes[:1] if quick else sizes):
            out.append((os.path.relpath(src, ROOT), ['--input-shape', f'{iname}=1,3,{s},{s}']))
    return out


def rank(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r


def spearman(a, b):
    ra, rb = rank(a), rank(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    num = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    den = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return num / den if den else float('nan')


def loo_linear(x, y):
    """Leave-one-out predictions of y = a + b x (least squares on the other models)."""
    preds = []
    for i in range(len(x)):
        xs = [v for k, v in enumerate(x) if k != i]
        ys = [v for k, v in enumerate(y) if k != i]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        vx = sum((v - mx) ** 2 for v in xs)
        b = sum((u - mx) * (v - my) for u, v in zip(xs, ys)) / vx if vx else 0
        preds.append(my + b * (x[i] - mx))
    return preds


def calibrate(cmd, tries=3):
    """`calibrate` refuses to write a profile from unstable timings (a busy machine); try again."""
    for k in range(tries):
        if subprocess.run(cmd, cwd=ROOT).returncode == 0:
            return True
        print(f'study: calibration attempt {k + 1} of {tries} refused or failed', file=sys.stderr)
    return False


def stats(pred, meas):
    err = [p / m - 1 for p, m in zip(pred, meas)]
    return {'within5': sum(abs(e) <= 0.05 for e in err) / len(err), 'within10': sum(abs(e) <= 0.10 for e in err) / len(err),
            'mae': sum(abs(e) for e in err) / len(err), 'spearman': spearman(pred, meas)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--runs', type=int, default=10)
    ap.add_argument('--profile', help='a calibrated profile to use instead of calibrating now')
    ap.add_argument('--quick', action='store_true', help='fewer sweep points and a quick calibration')
    ap.add_argument('--json', help='write the per-model results here')
    ap.add_argument('--repeat', action='store_true', help='calibrate a second time and compare the two profiles\' predictions')
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(',')]
    r = sh(['swift', 'build', '-c', 'release', '--product', 'modellens'], cwd=ROOT)
    if r.returncode != 0:
        sys.exit(r.stderr)
    os.makedirs(WORK, exist_ok=True)
    profile = args.profile
    if not profile:
        profile = os.path.join(WORK, 'host.json')
        t0 = time.time()
        cmd = [BIN, 'calibrate', '--threads', args.threads, '-o', profile] + (['--quick'] if args.quick else [])
        if not calibrate(cmd):
            sys.exit('study: calibration failed')
        print(f'calibrated in {time.time() - t0:.0f} s: {profile}')
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
    todo = models(args.quick)
    if args.repeat:
        # Two calibrations in a row: how far apart are their predictions on the study's models?
        second = os.path.join(WORK, 'host-again.json')
        # A busy minute can refuse it three times (round medians 6-14% apart at 2 threads): the
        # study's own measurements are still worth taking, with the comparison left out.
        repeated = calibrate([BIN, 'calibrate', '--threads', args.threads, '-o', second] + (['--quick'] if args.quick else []))
        if not repeated:
            print('study: the second calibration was refused three times (a busy machine); two calibrations not compared')
        for t in (threads if repeated else []):
            diffs = []
            for m, extra in todo:
                p = []
                for prof in (profile, second):
                    r = sh([BIN, 'analyze', m, '--profile', prof, '--threads', str(t), '--format', 'json'] + extra, cwd=ROOT)
                    if r.returncode == 0:
                        p.append(json.loads(r.stdout)['totals']['predictedMs'])
                if len(p) == 2:
                    diffs.append(abs(p[1] / p[0] - 1))
            diffs.sort()
            print(f'two calibrations, {t} thread(s): predictions differ by a median {100 * diffs[len(diffs) // 2]:.1f}%, '
                  f'at most {100 * diffs[-1]:.1f}%; within 3% on {sum(d <= 0.03 for d in diffs)} of {len(diffs)} models')
    print(f'{len(todo)} models; CPU: {cpu}; {os.cpu_count()} CPUs', file=sys.stderr)
    results = {}
    # Rounds interleaved across the thread counts as well as the models: a slow spell of a few
    # minutes (2-thread runs 35% slower for ten minutes in one sitting) then falls on some rounds
    # of every thread count instead of on all rounds of one.
    measured = {t: {} for t in threads}
    for rd in range(args.rounds):
        for t in threads:
            rounds = measured[t]
            pin = ['taskset', '-c', '1'] if t == 1 and (os.cpu_count() or 1) > 1 else []
            for k, (m, extra) in enumerate(todo):
                key = (m, tuple(extra))
                print(f'\rstudy: round {rd + 1}/{args.rounds}, {t} thread(s), model {k + 1}/{len(todo)}\033[K', end='', file=sys.stderr)
                r = sh(pin + [BIN, 'profile', m, '--runs', str(args.runs), '--warmup', '2', '--threads', str(t),
                              '--profile', profile, '--format', 'json'] + extra, cwd=ROOT)
                if r.returncode != 0:
                    rounds.setdefault(key, None)
                    continue
                d = json.loads(r.stdout)
                prev = rounds.get(key) or {'medians': [], 'json': d}
                prev['medians'].append(d['medianMs'])
                rounds[key] = prev
    for t in threads:
        rounds = measured[t]
        print(file=sys.stderr)
        rows = []
        by_class = {}   # kernel class -> [measured ms, predicted ms, kernels, models] over every model (its first round)
        for (m, extra), v in rounds.items():
            if not v:
                print(f'study: {m} {" ".join(extra)} does not run; left out', file=sys.stderr)
                continue
            a = json.loads(sh([BIN, 'analyze', m, '--format', 'json'] + list(extra), cwd=ROOT).stdout)
            d = v['json']
            kernels = [(n['measuredMs'], n['predictedMs']) for n in d['nodes'] if n['measuredMs'] > 0.005]
            cls = {k['node']: k['class'] for k in a.get('kernels', [])}
            for n in d['nodes']:
                c = by_class.setdefault(cls.get(n['name'], '?'), [0.0, 0.0, 0, set()])
                c[0] += n['measuredMs']; c[1] += n['predictedMs']; c[2] += 1; c[3].add(m + ' '.join(extra))
            rows.append({'model': m + (' ' + ' '.join(extra[1:]) if extra else ''), 'measuredMs': min(v['medians']),
                         'spread': max(v['medians']) / min(v['medians']) - 1, 'predictedMs': d['predictedMs'],
                         'rooflineMs': a['totals']['predictedMs'], 'flops': a['totals']['flops'], 'params': a['totals']['params'],
                         'dramBytes': a['totals']['dramBytes'], 'kernelErrors': [abs(p / mm - 1) for mm, p in kernels]})
        results[t] = rows
        meas = [r['measuredMs'] for r in rows]
        preds = {'calibrated per-kernel': [r['predictedMs'] for r in rows],
                 'roofline (built-in profile)': [r['rooflineMs'] for r in rows],
                 'linear in FLOPs (LOO)': loo_linear([r['flops'] for r in rows], meas),
                 'linear in params (LOO)': loo_linear([r['params'] for r in rows], meas),
                 'linear in DRAM bytes (LOO)': loo_linear([r['dramBytes'] for r in rows], meas)}
        print(f'\n## {t} thread(s): {len(rows)} models, CPU {cpu}\n')
        print('| model | measured ms | round spread | calibrated ms | ratio | roofline ms | ratio |')
        print('|---|---|---|---|---|---|---|')
        for r in sorted(rows, key=lambda r: r['model']):
            print(f"| {r['model']} | {r['measuredMs']:.2f} | {100 * r['spread']:.1f}% | {r['predictedMs']:.2f} | "
                  f"{r['predictedMs'] / r['measuredMs']:.2f} | {r['rooflineMs']:.2f} | {r['rooflineMs'] / r['measuredMs']:.2f} |")
        print('\n| predictor | within ±5% | within ±10% | mean abs. error | Spearman ρ |')
        print('|---|---|---|---|---|')
        for name, p in preds.items():
            s = stats(p, meas)
            print(f"| {name} | {100 * s['within5']:.0f}% | {100 * s['within10']:.0f}% | {100 * s['mae']:.1f}% | {s['spearman']:.3f} |")
        ke = sorted(e for r in rows for e in r['kernelErrors'])
        repeat = sum(r['spread'] <= 0.05 for r in rows)
        print(f"\nper kernel (calibrated, kernels over 5 us): median |predicted/measured - 1| {100 * ke[len(ke) // 2]:.1f}% over {len(ke)} kernels")
        print(f"round medians within 5% of each other on {repeat} of {len(rows)} models")
        # Causes, not models: the classes whose summed prediction misses their summed time most.
        print('\n| kernel class | kernels | models | measured ms | predicted ms | ratio |')
        print('|---|---|---|---|---|---|')
        for c, (mm, pp, n, ms) in sorted(by_class.items(), key=lambda kv: -abs(kv[1][1] - kv[1][0]))[:12]:
            print(f"| {c} | {n} | {len(ms)} | {mm:.2f} | {pp:.2f} | {pp / mm if mm else float('nan'):.2f} |")
        # A shift of every prediction the same way is the machine's speed changing between the
        # calibration and these measurements (minutes apart), not the per-kernel models.
        ratios = sorted(r['predictedMs'] / r['measuredMs'] for r in rows)
        q = lambda f: ratios[min(len(ratios) - 1, int(f * len(ratios)))]
        print(f"calibrated predicted/measured: median {q(0.5):.3f}, quartiles {q(0.25):.3f}-{q(0.75):.3f}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'cpu': cpu, 'profile': profile, 'results': {str(k): v for k, v in results.items()}}, f, indent=1)


if __name__ == '__main__':
    main()
