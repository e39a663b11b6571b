#!/usr/bin/env python3
"""Exports torchvision classification models to ONNX in .models/torchvision/ (git-ignored;
VGG16 alone is 553 MB): VGG16, ResNet50, MobileNetV2, GoogLeNet, DenseNet121, ShuffleNetV2 x1.0,
and MobileNetV3-Small (squeeze-excitation blocks). With --study, the latency study's further
architectures (Tools/study.py) go to .models/study-torchvision/ instead: ResNet18/34/101, ResNeXt,
Wide ResNet, MobileNetV3-Large, EfficientNet-B0/B1, RegNet, SqueezeNet, MNASNet, Inception v3,
AlexNet, ConvNeXt-Tiny, ShuffleNetV2 x0.5.
Made once per machine; an existing file is kept.

Weights are random (no download) and jittered so that no two initializers are equal
(identical ones, e.g. BatchNorm's initial ones and zeros, would be merged by the exporter).
The TorchScript exporter is used in eval mode with constant folding off and BatchNorm
training mode preserved as inference nodes, so BatchNormalization stays a node of its own
and parameter counts can be compared with torchvision's.

torchvision wheels from PyPI are built against CUDA torch; where `import torchvision` fails
registering its C++ op `torchvision::nms`, the registration is skipped (the classification
models need no custom op)."""
import os, sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, '.models', 'torchvision')
MODELS = {
    'vgg16': lambda tv: tv.models.vgg16(weights=None),
    'resnet50': lambda tv: tv.models.resnet50(weights=None),
    'mobilenet_v2': lambda tv: tv.models.mobilenet_v2(weights=None),
    'googlenet': lambda tv: tv.models.googlenet(weights=None, aux_logits=False, init_weights=True),
    'densenet121': lambda tv: tv.models.densenet121(weights=None),
    'shufflenet_v2_x1_0': lambda tv: tv.models.shufflenet_v2_x1_0(weights=None),
    'mobilenet_v3_small': lambda tv: tv.models.mobilenet_v3_small(weights=None),
}

STUDY = {
    'resnet18': lambda tv: tv.models.resnet18(weights=None),
    'resnet34': lambda tv: tv.models.resnet34(weights=None),
    'resnet101': lambda tv: tv.models.resnet101(weights=None),
    'resnext50_32x4d': lambda tv: tv.models.resnext50_32x4d(weights=None),
    'wide_resnet50_2': lambda tv: tv.models.wide_resnet50_2(weights=None),
    'mobilenet_v3_large': lambda tv: tv.models.mobilenet_v3_large(weights=None),
    'efficientnet_b0': lambda tv: tv.models.efficientnet_b0(weights=None),
    'efficientnet_b1': lambda tv: tv.models.efficientnet_b1(weights=None),
    'regnet_x_400mf': lambda tv: tv.models.regnet_x_400mf(weights=None),
    'regnet_y_400mf': lambda tv: tv.models.regnet_y_400mf(weights=None),
    'squeezenet1_0': lambda tv: tv.models.squeezenet1_0(weights=None),
    'squeezenet1_1': lambda tv: tv.models.squeezenet1_1(weights=None),
    'mnasnet1_0': lambda tv: tv.models.mnasnet1_0(weights=None),
    'inception_v3': lambda tv: tv.models.inception_v3(weights=None, aux_logits=False, init_weights=True),
    'alexnet': lambda tv: tv.models.alexnet(weights=None),
    'convnext_tiny': lambda tv: tv.models.convnext_tiny(weights=None),
    'shufflenet_v2_x0_5': lambda tv: tv.models.shufflenet_v2_x0_5(weights=None),
}


def import_torchvision():
    try:
        import torchvision
        return torchvision
    except RuntimeError as e:
        if 'torchvision::nms' not in str(e):
            raise
    # Skip registering fake (meta) kernels of torchvision's C++ ops.
    import torch.library
    real = torch.library.register_fake

    def tolerant(name, *a, **k):
        if isinstance(name, str) and name.startswith('torchvision::'):
            return lambda f: f
        return real(name, *a, **k)
    torch.library.register_fake = tolerant
    for m in [m for m in sys.modules if m.startswith('torchvision')]:
        del sys.modules[m]
    import torchvision
    return torchvision


def main():
    global OUT, MODELS
    args = sys.argv[1:]
    if '--study' in args:
        args.remove('--study')
        OUT, MODELS = os.path.join(ROOT, '.models', 'study-torchvision'), STUDY
    names = args or list(MODELS)
    os.makedirs(OUT, exist_ok=True)
    tv = import_torchvision()
    torch.manual_seed(0)
    for name in names:
        path = os.path.join(OUT, name + '.onnx')
        if os.path.exists(path):
            continue
        model = MODELS[name](tv).eval()
        with torch.no_grad():
            for t in list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]:
                t.add_(torch.randn_like(t) * 1e-3)
                if t.dim() == 1 and t.numel() > 1 and torch.all(t > 0.5):   # BatchNorm variance / scale stay positive
                    t.abs_()
        params = sum(p.numel() for p in model.parameters())
        x = torch.randn(1, 3, 299, 299) if name == 'inception_v3' else torch.randn(1, 3, 224, 224)
        tmp = path + '.tmp'
        torch.onnx.export(model, (x,), tmp, input_names=['input'], output_names=['logits'], opset_version=17,
                          dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}},
                          do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE, dynamo=False)
        os.replace(tmp, path)
        print(f'export-torchvision: {name}: {params} parameters -> {path} ({os.path.getsize(path) / 1e6:.0f} MB)', file=sys.stderr)


if __name__ == '__main__':
    main()
