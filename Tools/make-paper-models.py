#!/usr/bin/env python3
"""Builds the networks of paper 002 (../shared/papers/README.md) from its architecture table,
for k = 100 classes, and exports them to .models/paper/ (git-ignored):

  mobilenet_v2_k100.onnx  conv3x3/32/s2, bottlenecks (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2)
                          (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1), conv1x1/1280, avgpool 7x7, conv1x1/k
  sm_v2_k100.onnx         conv3x3/32/s2, bottlenecks (1,16,1,1) (4,16,2,2) (8,32,2,2) (8,64,2,2) (8,128,1,2)
                          (8,1024,1,1), ReLU6, avgpool 7x7, conv1x1/k
(SM_V2_x2nr is not built: reading "channels doubled (32, 64, 128, 256)" literally gives 3.66 M
parameters against the paper's 1.64 M, so the summary does not pin its architecture down.)

A bottleneck is expand 1x1 (t x C_in; absent when t = 1) + BN + ReLU6, depthwise 3x3 (stride s) + BN +
ReLU6, project 1x1 + BN; with a residual add when s = 1 and C_in = C_out (not in the "nr" variant).
Random weights; input 224x224."""
import os, sys

import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, '.models', 'paper')


class Bottleneck(nn.Module):
    def __init__(self, cin, cout, t, stride, skip=True):
        super().__init__()
        hidden = cin * t
        layers = []
        if t != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = skip and stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def net(stages, last_conv=None, k=100, skip=True, final_relu=False):
    layers = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
    cin = 32
    for t, c, n, s in stages:
        for i in range(n):
            layers.append(Bottleneck(cin, c, t, s if i == 0 else 1, skip))
            cin = c
    if last_conv:
        layers += [nn.Conv2d(cin, last_conv, 1, bias=False), nn.BatchNorm2d(last_conv), nn.ReLU6()]
        cin = last_conv
    elif final_relu:
        layers.append(nn.ReLU6())
    layers += [nn.AvgPool2d(7), nn.Conv2d(cin, k, 1), nn.Flatten()]
    return nn.Sequential(*layers)


MODELS = {
    'mobilenet_v2_k100': lambda: net([(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                                      (6, 160, 3, 2), (6, 320, 1, 1)], last_conv=1280),
    'sm_v2_k100': lambda: net([(1, 16, 1, 1), (4, 16, 2, 2), (8, 32, 2, 2), (8, 64, 2, 2), (8, 128, 1, 2),
                               (8, 1024, 1, 1)], final_relu=True),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    for name, make in MODELS.items():
        path = os.path.join(OUT, name + '.onnx')
        if os.path.exists(path):
            continue
        model = make().eval()
        with torch.no_grad():
            for t in list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]:
                t.add_(torch.randn_like(t) * 1e-3)
                if t.dim() == 1 and torch.all(t > 0.5):
                    t.abs_()
        params = sum(p.numel() for p in model.parameters())
        torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), path, input_names=['input'], output_names=['logits'],
                          opset_version=17, do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE, dynamo=False)
        print(f'make-paper-models: {name}: {params} parameters -> {path}', file=sys.stderr)


if __name__ == '__main__':
    main()
