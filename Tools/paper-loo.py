#!/usr/bin/env python3
"""The papers' devices, predicted leave-one-out from their own published tables.

For each device column of a published table, every model is predicted by a profile that
`modellens calibrate --from-timings` fitted to the *other* models' published latencies (whole-model
times only: one factor for all kernels and a per-kernel overhead), starting from a base profile
(the built-in profile of that device, or this host's calibrated one for a desktop CPU). The
built-in profiles are not fitted to these numbers: their uncalibrated prediction is printed
beside, as the check. Paper 003 (QCS605) and paper 001 (Jetson TK1) give one or two models per
device: too few to fit, so only the built-in profile's prediction is shown for them.

Models: the torchvision exports (Tools/export-torchvision.py, and --study for Inception v3 and
ResNet101). Usage: Tools/paper-loo.py [--host .study/host.json]
"""
import argparse, json, os, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, '.build', 'release', 'modellens')
TV, STUDY = os.path.join(ROOT, '.models', 'torchvision'), os.path.join(ROOT, '.models', 'study-torchvision')

# Paper 002, Table 2: per-image ms on GTX1060 (GPU1, GPU2) and a quad 3.4 GHz CPU, TensorFlow.
PAPER002 = {  # model: (file, input shape, GPU1, GPU2, CPU)
    'VGG16': (f'{TV}/vgg16.onnx', None, 6.16, 4.39, 265),
    'Inception v3': (f'{STUDY}/inception_v3.onnx', '1,3,299,299', 5.63, 3.88, 108),
    'ResNet 101': (f'{STUDY}/resnet101.onnx', None, 7.68, 5.43, 148),
    'DenseNet 121': (f'{TV}/densenet121.onnx', None, 3.94, 2.78, 70.8),
    'MobileNet v2': (f'{TV}/mobilenet_v2.onnx', None, 2.22, 1.53, 14.6),
    'ShuffleNet v2': (f'{TV}/shufflenet_v2_x1_0.onnx', None, 1.81, 1.48, 7.3),
}
# Paper 003 (QCS605, TFLite, CPU) and paper 001 (Jetson TK1 GPU, Caffe): no fit possible.
SINGLE = [('003', 'VGG16', f'{TV}/vgg16.onnx', 'qcs605-kryo300', 2040), ('003', 'MobileNet v2', f'{TV}/mobilenet_v2.onnx', 'qcs605-kryo300', 77),
          ('001', 'GoogLeNet', f'{TV}/googlenet.onnx', 'jetson-tk1', 460)]


def predict(model, shape, profile):
    args = [BIN, 'analyze', model, '--profile', profile, '--format', 'json']
    if shape:
        args += ['--input-shape', f'input={shape}']
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f'paper-loo: {model}: {r.stderr.strip()}')
    return json.loads(r.stdout)['totals']['predictedMs']


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--host', default=os.path.join(ROOT, '.study', 'host.json'), help='base profile for the desktop CPU column')
    args = ap.parse_args()
    rows = {k: v for k, v in PAPER002.items() if os.path.exists(v[0])}
    missing = sorted(set(PAPER002) - set(rows))
    if missing:
        print(f'paper-loo: left out (no model file): {", ".join(missing)}', file=sys.stderr)
    columns = [('GPU1 (GTX1060)', 2, 'gtx-1060'), ('GPU2 (GTX1060)', 3, 'gtx-1060'), ('CPU (quad 3.4 GHz)', 4, args.host)]
    print('## Paper 002, Table 2: leave-one-out\n')
    print('| model | column | published ms | base profile, uncalibrated | error | fitted on the others | error |')
    print('|---|---|---|---|---|---|---|')
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        for title, col, base in columns:
            for held, (path, shape, *_) in rows.items():
                others = [(k, v) for k, v in rows.items() if k != held]
                csv = os.path.join(tmp, 'timings.csv')
                with open(csv, 'w') as f:
                    for k, v in others:
                        # --from-timings reads the model at its default shape; Inception needs 299.
                        f.write(f'{v[0]},{v[col]}\n')
                fitted = os.path.join(tmp, 'fitted.json')
                r = subprocess.run([BIN, 'calibrate', '--from-timings', csv, '--base', base, '-o', fitted], capture_output=True, text=True)
                if r.returncode != 0:
                    sys.exit(f'paper-loo: fit failed: {r.stderr.strip()}')
                pub = rows[held][col]
                raw = predict(path, shape, base)
                fit = predict(path, shape, fitted)
                errors.append(abs(fit / pub - 1))
                print(f'| {held} | {title} | {pub:g} | {raw:.1f} | {100 * (raw / pub - 1):+.0f}% | {fit:.1f} | {100 * (fit / pub - 1):+.0f}% |')
    if errors:
        within = sum(e <= 0.10 for e in errors)
        print(f'\nleave-one-out: {within} of {len(errors)} within ±10%, median |error| {100 * sorted(errors)[len(errors) // 2]:.0f}%')
    print('\n## Papers 003 and 001: built-in profiles, uncalibrated (one or two models per device: nothing to fit)\n')
    print('| paper | model | device profile | published ms | predicted ms | error |')
    print('|---|---|---|---|---|---|')
    for paper, name, path, profile, pub in SINGLE:
        if os.path.exists(path):
            p = predict(path, None, profile)
            print(f'| {paper} | {name} | {profile} | {pub:g} | {p:.1f} | {100 * (p / pub - 1):+.0f}% |')


if __name__ == '__main__':
    main()
