"""Operator speed side by side with PyTorch (CPU) and SciPy, measured in the same run.

Usage::

    python benchmarks/ops_speed.py [--repeat 5] [--threads 2] [--markdown]

Each row times cnnlab's forward (and forward + backward where the peer has autograd) and the
peer's on the same arrays, best of ``--repeat`` runs, and prints the ratio cnnlab / peer
(below 1 means cnnlab is faster).  Nothing here is a test: ratios depend on the machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import cnnlab.functional as F
from cnnlab.functional._conv import conv_backward


def best_of(fn: Callable[[], object], repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def conv_cases():
    # (name, x shape, weight shape, stride, padding)
    yield "conv2d 128x1x28x28 -> 32, 3x3", (128, 1, 28, 28), (32, 1, 3, 3), 1, 1
    yield "conv2d 128x32x28x28 -> 32, 3x3", (128, 32, 28, 28), (32, 32, 3, 3), 1, 1
    yield "conv2d 128x32x14x14 -> 64, 3x3", (128, 32, 14, 14), (64, 32, 3, 3), 1, 1
    yield "conv1d 100x1x40 -> 25, k5 s2 (MNIST-1D)", (100, 1, 40), (25, 1, 5), 2, 1


def conv_rows(name, xs, ws, stride, padding, *, rng, repeat):
    import torch
    import torch.nn.functional as TF

    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    tconv = TF.conv1d if len(xs) == 3 else TF.conv2d
    g = rng.standard_normal(F.conv(x, w, stride=stride, padding=padding).shape).astype(np.float32)
    gt = torch.from_numpy(g)

    def ours_fb():
        F.conv(x, w, stride=stride, padding=padding)
        conv_backward(g, x, w, None, stride, padding)

    def peer_fb():
        xr, wr = xt.clone().requires_grad_(), wt.clone().requires_grad_()
        tconv(xr, wr, stride=stride, padding=padding).backward(gt)

    return [
        (f"{name}: forward vs torch", best_of(lambda: F.conv(x, w, stride=stride, padding=padding), repeat),
         best_of(lambda: tconv(xt, wt, stride=stride, padding=padding), repeat)),
        (f"{name}: forward+backward vs torch", best_of(ours_fb, repeat), best_of(peer_fb, repeat)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    import scipy.signal
    import torch
    import torch.nn.functional as TF

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows: list[tuple[str, float, float]] = []

    for case in conv_cases():
        rows.extend(conv_rows(*case, rng=rng, repeat=args.repeat))

    x = rng.standard_normal((128, 32, 28, 28)).astype(np.float32)
    xt = torch.from_numpy(x)
    rows.append(("max_pool2d 128x32x28x28, 2x2: forward vs torch",
                 best_of(lambda: F.max_pool2d(x, 2), args.repeat), best_of(lambda: TF.max_pool2d(xt, 2), args.repeat)))
    rows.append(("avg_pool2d 128x32x28x28, 2x2: forward vs torch",
                 best_of(lambda: F.avg_pool2d(x, 2), args.repeat), best_of(lambda: TF.avg_pool2d(xt, 2), args.repeat)))
    rows.append(("relu 128x32x28x28 vs torch", best_of(lambda: F.relu(x), args.repeat),
                 best_of(lambda: TF.relu(xt), args.repeat)))

    img = rng.standard_normal((256, 256))
    k = rng.standard_normal((7, 7))
    for mode in ("valid", "same", "full"):
        rows.append((f"correlate 256x256 * 7x7 '{mode}' vs scipy.signal.correlate (direct)",
                     best_of(lambda mode=mode: F.correlate(img, k, mode), args.repeat),
                     best_of(lambda mode=mode: scipy.signal.correlate(img, k, mode, method="direct"), args.repeat)))

    width = max(len(r[0]) for r in rows)
    if args.markdown:
        print("| operation | cnnlab (ms) | peer (ms) | ratio |\n|---|---:|---:|---:|")
        for name, ours, peer in rows:
            print(f"| {name} | {ours * 1e3:.2f} | {peer * 1e3:.2f} | {ours / peer:.2f} |")
    else:
        for name, ours, peer in rows:
            print(f"{name:<{width}}  cnnlab {ours * 1e3:8.2f} ms  peer {peer * 1e3:8.2f} ms  ratio {ours / peer:5.2f}")


if __name__ == "__main__":
    main()
