"""Conv2d layers of random shapes, cnnlab against PyTorch: where the automatic rule picks badly.

Usage::

    python benchmarks/random_conv_shapes.py [--seed 0] [--count 40] [--repeats 5] [--float64] [--dims 2]

Each row draws a layer (batch, channels, size, filters, kernel 1-7, stride 1 or 2, "same" padding,
``--dims`` spatial axes: conv1d, conv2d or conv3d, the sizes of 1-d layers 16 times as long;
a quarter of them forward only, the rest forward+backward through autograd) from the seeded
generator, builds its inputs once, and times cnnlab's call and torch's alternately, each call
started on quiet threads (as ``cnnlab bench`` does); it prints both medians and the ratio
``torch time / cnnlab time`` (rows below 0.9 marked).  The fixed lists of ``cnnlab bench`` and
``benchmarks/sweep_vs_torch.py`` are what the code was tuned on; these draws are not, and found
the first layers of small images that the direct kernels took (docs/BENCHMARKS.md, round 30).
Nothing here is a test: ratios depend on the machine and its load.
"""

from __future__ import annotations

import argparse

import cnnlab

cnnlab.start_threads()  # (before NumPy and torch: see cnnlab.start_threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import cnnlab.functional as F  # noqa: E402
from cnnlab import Tensor  # noqa: E402
from cnnlab.bench._runner import _interleaved  # noqa: E402

BATCHES = (1, 2, 8, 32, 64)
CHANNELS = (1, 3, 8, 16, 32, 64, 128, 256, 512)
SIZES = (7, 8, 14, 16, 28, 32, 56)
FILTERS = (8, 16, 32, 64, 128, 256, 512)
KERNELS = (1, 3, 3, 3, 5, 7)
# multiply-adds of a drawn layer's forward, at least and at most (smaller: fixed costs; larger: slow)
MIN_WORK, MAX_WORK = 1e5, 4e9


def draw(rng: np.random.Generator, dims: int = 2) -> dict | None:
    """A layer's settings, or None where its work falls outside ``MIN_WORK .. MAX_WORK``."""
    n, c, h = int(rng.choice(BATCHES)), int(rng.choice(CHANNELS)), int(rng.choice(SIZES))
    o, k, s = int(rng.choice(FILTERS)), int(rng.choice(KERNELS)), int(rng.choice([1, 1, 2]))
    backward = bool(rng.random() >= 0.25)
    h = h * 16 if dims == 1 else h
    work = n * c * o * (h * k / s) ** dims
    if not MIN_WORK <= work <= MAX_WORK:
        return None
    return dict(n=n, c=c, h=h, o=o, k=k, s=s, p=k // 2, backward=backward, dims=dims)


def pair(layer: dict, rng: np.random.Generator, dtype: type) -> tuple:
    """``(cnnlab call, torch call)`` of one layer on the same seeded inputs."""
    dims = layer["dims"]
    x = rng.standard_normal((layer["n"], layer["c"], *(layer["h"],) * dims)).astype(dtype)
    w = (rng.standard_normal((layer["o"], layer["c"], *(layer["k"],) * dims)) * 0.1).astype(dtype)
    s, p, bwd = layer["s"], layer["p"], layer["backward"]
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    peer = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)[dims - 1]

    def ours():
        xx, ww = Tensor(x, requires_grad=bwd), Tensor(w, requires_grad=bwd)
        y = conv(xx, ww, stride=s, padding=p)
        if bwd:
            y.sum().backward()

    def theirs():
        xx, ww = torch.tensor(x, requires_grad=bwd), torch.tensor(w, requires_grad=bwd)
        y = peer(xx, ww, stride=s, padding=p)
        if bwd:
            y.sum().backward()

    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="the generator's seed (the layers drawn)")
    parser.add_argument("--count", type=int, default=40, help="draws (those outside the work range are skipped)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per layer (median)")
    parser.add_argument("--float64", action="store_true", help="float64 layers instead of float32")
    parser.add_argument("--dims", type=int, choices=(1, 2, 3), default=2, help="spatial axes of the layers")
    args = parser.parse_args()
    torch.set_num_threads(F.get_num_threads())
    rng = np.random.default_rng(args.seed)
    dtype = np.float64 if args.float64 else np.float32
    for _ in range(args.count):
        layer = draw(rng, args.dims)
        if layer is None:
            continue
        ours, theirs = pair(layer, rng, dtype)
        times = _interleaved({"cnnlab": ours, "torch": theirs}, args.repeats, warmup=2)
        mo, mt = (float(np.median(times[k])) * 1e3 for k in ("cnnlab", "torch"))
        name = "{dims}-d N{n} C{c} {h} O{o} k{k} s{s} p{p}".format(**layer) + (" fb" if layer["backward"] else " f")
        flag = " <<<" if mt / mo < 0.9 else ""
        print(f"{name:36s} cnnlab {mo:8.2f} ms  torch {mt:8.2f} ms  ratio {mt / mo:5.2f}{flag}", flush=True)


if __name__ == "__main__":
    main()
