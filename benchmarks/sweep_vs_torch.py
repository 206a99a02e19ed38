"""Forward+backward of ops and shapes outside ``cnnlab bench``'s list, side by side with PyTorch.

Usage::

    python benchmarks/sweep_vs_torch.py [--only TEXT] [--repeats 7]

Each row builds the inputs once (seeded), then alternates cnnlab's call (through autograd:
``op(Tensor(...)).sum().backward()``) and torch's, and prints both medians and the ratio
``torch time / cnnlab time`` (above 1: cnnlab is faster); rows below 0.7 are marked.  The shapes
are what users run besides the benchmark's: ResNet and VGG layers, large kernels, 3-d and
transposed convolutions, global pooling, smooth activations, softmax and the loss.  Nothing here is
a test: ratios depend on the machine and its load (see docs/BENCHMARKS.md, round 10).
"""

from __future__ import annotations

import argparse
import time

import cnnlab

cnnlab.start_threads()  # (before NumPy and torch: see cnnlab.start_threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import cnnlab.functional as F  # noqa: E402
from cnnlab import Tensor  # noqa: E402

torch.set_num_threads(cnnlab.functional.get_num_threads())
tf = torch.nn.functional
rng = np.random.default_rng(0)


def arr(*s, scale=1.0, dtype=np.float32):
    return (rng.standard_normal(s) * scale).astype(dtype)


cases = []


def fb(name, fo, ft, *arrays, bwd=True):
    """A row: ``fo`` (cnnlab) and ``ft`` (torch) on Tensors of ``arrays``, with the backward of a sum."""
    def ours():
        ts = [Tensor(a, requires_grad=bwd) for a in arrays]
        y = fo(*ts)
        if bwd:
            y.sum().backward()

    def theirs():
        ts = [torch.tensor(a, requires_grad=bwd) for a in arrays]
        y = ft(*ts)
        if bwd:
            y.sum().backward()

    cases.append((name + (" fb" if bwd else " f"), ours, theirs))


def conv(name, n, c, h, o, k, s=1, p=0, d=1, g=1, dims=2, dtype=np.float32, bias=False, bwd=True):
    x = arr(n, c, *([h] * dims), dtype=dtype)
    w = arr(o, c // g, *([k] * dims), scale=0.1, dtype=dtype)
    fo = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    ft = {1: tf.conv1d, 2: tf.conv2d, 3: tf.conv3d}[dims]
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    if bias:
        b = arr(o, dtype=dtype)
        fb(name, lambda a, ww, bb: fo(a, ww, bb, **kw), lambda a, ww, bb: ft(a, ww, bb, **kw), x, w, b, bwd=bwd)
    else:
        fb(name, lambda a, ww: fo(a, ww, **kw), lambda a, ww: ft(a, ww, **kw), x, w, bwd=bwd)


conv("resnet stem N1 C3 224 k7 s2 p3", 1, 3, 224, 64, 7, 2, 3, bwd=False)
conv("resnet stem N8 C3 224 k7 s2 p3", 8, 3, 112, 64, 7, 2, 3)
conv("N8 C64 56 O64 k3", 8, 64, 56, 64, 3, 1, 1)
conv("N8 C128 28 O128 k3", 8, 128, 28, 128, 3, 1, 1)
conv("N8 C256 14 O256 k3", 8, 256, 14, 256, 3, 1, 1)
conv("N8 C512 7 O512 k3", 8, 512, 7, 512, 3, 1, 1)
conv("N32 C16 24 O32 k5 p2", 32, 16, 24, 32, 5, 1, 2)
conv("N1 C1 28 O8 k3", 1, 1, 28, 8, 3)
conv("N4 C3 64 O16 k3 bias", 4, 3, 64, 16, 3, 1, 1, bias=True)
conv("N64 C16 32 O16 k3 g4", 64, 16, 32, 16, 3, 1, 1, g=4)
conv("N16 C32 32 O32 k7 p3", 16, 32, 32, 32, 7, 1, 3)
conv("N32 C64 28 O128 k1 s2", 32, 64, 28, 128, 1, 2, 0)
conv("f64 N16 C16 28 O32 k3", 16, 16, 28, 32, 3, 1, 1, dtype=np.float64)
conv("N128 C24 14 O48 k3 (convnet2)", 128, 24, 14, 48, 3, 1, 1, bias=True)
conv("N64 C6 14 O16 k5 (lenet2)", 64, 6, 14, 16, 5)
conv("N16 C96 28 O96 k5 g96 dw5", 16, 96, 28, 96, 5, 1, 2, g=96)
conv("N32 C32 56 O32 k3 s2 g32", 32, 32, 56, 32, 3, 2, 1, g=32)
conv("N32 C256 14 O256 k3 g32 (8 a group)", 32, 256, 14, 256, 3, 1, 1, g=32)
conv("N32 C64 28 O64 k3 g8 (8 a group)", 32, 64, 28, 64, 3, 1, 1, g=8)
conv("N32 C64 28 O64 k3 g4 (16 a group)", 32, 64, 28, 64, 3, 1, 1, g=4)
conv("N16 C128 28 O128 k3 g32 (4 a group)", 16, 128, 28, 128, 3, 1, 1, g=32)
conv("N32 C256 28 O256 k3 s2 g32 (8 a group)", 32, 256, 28, 256, 3, 2, 1, g=32)
conv("N16 C128 28 O256 k3 g16 (8 ch, 16 a group)", 16, 128, 28, 256, 3, 1, 1, g=16)
conv("N32 C128 14 O8 k3 (8 filters)", 32, 128, 14, 8, 3, 1, 1)
conv("conv1d N32 C64 L1000 O64 k9", 32, 64, 1000, 64, 9, 1, 4, dims=1)
conv("conv1d N16 C1 L16000 O32 k80 s4", 16, 1, 16000, 32, 80, 4, 0, dims=1)
conv("conv3d N4 C8 16 O16 k3", 4, 8, 16, 16, 3, 1, 1, dims=3)
conv("conv3d N2 C1 32 O8 k3", 2, 1, 32, 8, 3, 1, 1, dims=3)
fb("convT2d N16 C32 14 O16 k4 s2 p1", lambda a, b: F.conv_transpose2d(a, b, stride=2, padding=1),
   lambda a, b: tf.conv_transpose2d(a, b, stride=2, padding=1), arr(16, 32, 14, 14), arr(32, 16, 4, 4, scale=0.1))
x = arr(8, 64, 112, 112)
fb("maxpool k3 s2 p1 N8 C64 112", lambda a: F.max_pool2d(a, 3, 2, 1), lambda a: tf.max_pool2d(a, 3, 2, 1), x)
fb("maxpool k2 s2 N8 C64 112", lambda a: F.max_pool2d(a, 2, 2), lambda a: tf.max_pool2d(a, 2, 2), x)
x = arr(32, 512, 7, 7)
fb("adaptive avg 1 N32 C512 7", lambda a: F.adaptive_avg_pool2d(a, 1), lambda a: tf.adaptive_avg_pool2d(a, 1), x)
fb("avgpool 7 N32 C512 7", lambda a: F.avg_pool2d(a, 7), lambda a: tf.avg_pool2d(a, 7), x)
x = arr(32, 64, 1000)
fb("maxpool1d k2 N32 C64 L1000", lambda a: F.max_pool1d(a, 2), lambda a: tf.max_pool1d(a, 2), x)
x = arr(4, 16, 32, 32, 32)
fb("maxpool3d k2 N4 C16 32", lambda a: F.max_pool3d(a, 2), lambda a: tf.max_pool3d(a, 2), x)
fb("avgpool3d k2 N4 C16 32", lambda a: F.avg_pool3d(a, 2), lambda a: tf.avg_pool3d(a, 2), x)
x, g1, b1 = arr(32, 64, 56, 56), np.ones(64, np.float32), np.zeros(64, np.float32)
fb("batchnorm N32 C64 56", lambda a, ww, bb: F.batch_norm(a, None, None, ww, bb, training=True),
   lambda a, ww, bb: tf.batch_norm(a, None, None, ww, bb, training=True), x, g1, b1)
x = arr(64, 256, 14, 14)
fb("relu N64 C256 14", F.relu, tf.relu, x)
fb("gelu N64 C256 14", F.gelu, tf.gelu, x)
fb("sigmoid N64 C256 14", F.sigmoid, torch.sigmoid, x)
fb("tanh N64 C256 14", F.tanh, torch.tanh, x)
fb("leaky_relu N64 C256 14", lambda a: F.leaky_relu(a, 0.1), lambda a: tf.leaky_relu(a, 0.1), x)
fb("elu N64 C256 14", F.elu, tf.elu, x)
labels = (x > 0).astype(np.float32)
fb("bce_with_logits N64 C256 14", lambda a: F.binary_cross_entropy_with_logits(a, labels),
   lambda a: tf.binary_cross_entropy_with_logits(a, torch.from_numpy(labels)), x)
fb("conv2d reflect N32 C32 56 O32 k3", lambda a, w: F.conv2d(a, w, padding=1, padding_mode="reflect"),
   lambda a, w: tf.conv2d(tf.pad(a, (1, 1, 1, 1), mode="reflect"), w),
   arr(32, 32, 56, 56), arr(32, 32, 3, 3, scale=0.1))
fb("adaptive avg 2 N32 C512 7", lambda a: F.adaptive_avg_pool2d(a, 2), lambda a: tf.adaptive_avg_pool2d(a, 2),
   arr(32, 512, 7, 7))
fb("adaptive avg 7 N32 C256 14", lambda a: F.adaptive_avg_pool2d(a, 7), lambda a: tf.adaptive_avg_pool2d(a, 7),
   arr(32, 256, 14, 14))
fb("adaptive avg 6 N16 C256 13", lambda a: F.adaptive_avg_pool2d(a, 6), lambda a: tf.adaptive_avg_pool2d(a, 6),
   arr(16, 256, 13, 13))
fb("softmax dim1 N32 C21 64x64", lambda a: F.softmax(a, 1), lambda a: tf.softmax(a, 1), arr(32, 21, 64, 64))
fb("convT2d s1 N16 C32 28 O32 k3 p1", lambda a, w: F.conv_transpose2d(a, w, padding=1),
   lambda a, w: tf.conv_transpose2d(a, w, padding=1), arr(16, 32, 28, 28), arr(32, 32, 3, 3, scale=0.1))
fb("linear 256x1024->512", F.linear, tf.linear, arr(256, 1024), arr(512, 1024, scale=0.03), arr(512))
x = arr(512, 1000)
fb("softmax 512x1000", lambda a: F.softmax(a, 1), lambda a: tf.softmax(a, 1), x)
fb("log_softmax 512x1000", lambda a: F.log_softmax(a, 1), lambda a: tf.log_softmax(a, 1), x)
target = rng.integers(0, 1000, 512)
fb("cross_entropy 512x1000", lambda a: F.cross_entropy(a, target),
   lambda a: tf.cross_entropy(a, torch.from_numpy(target)), x)
fb("correlate1d 1e6 k101", F.correlate, lambda a, k: tf.conv1d(a[None, None], k[None, None])[0, 0],
   arr(1_000_000), arr(101))
fb("correlate2d 1024 k9", F.correlate, lambda a, k: tf.conv2d(a[None, None], k[None, None])[0, 0],
   arr(1024, 1024), arr(9, 9))

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="run the rows whose name contains this text")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds per row (median)")
    args = parser.parse_args()
    for name, ours, theirs in cases:
        if args.only not in name:
            continue
        ours(), theirs(), ours(), theirs()  # (compile, warm caches)
        times = [[], []]
        for _ in range(args.repeats):
            for fn, into in ((ours, times[0]), (theirs, times[1])):
                start = time.perf_counter()
                fn()
                into.append(time.perf_counter() - start)
        mo, mt = np.median(times[0]) * 1e3, np.median(times[1]) * 1e3
        flag = " <<<" if mt / mo < 0.7 else ""
        print(f"{name:45s} cnnlab {mo:9.2f} ms  torch {mt:9.2f} ms  ratio {mt / mo:5.2f}{flag}", flush=True)


if __name__ == "__main__":
    main()
