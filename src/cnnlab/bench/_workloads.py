"""The workloads of issue 9, each a pair of closures (cnnlab, peer) built from the same arrays."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import cnnlab.functional as F
from cnnlab import Tensor


@dataclass
class Workload:
    name: str
    ours: Callable[[], object]
    peers: dict[str, Callable[[], object]]
    flops: float  # of cnnlab's work, for GFLOP/s


def _conv_flops(n, c, o, out_hw, k, groups, backward):
    f = 2.0 * n * o * (c // groups) * k * k * out_hw
    return f * (3 if backward else 1)


def conv_workloads(torch, rng) -> list[Workload]:
    specs = [  # N, C, H, O, k, stride, pad, groups, dilation
        (32, 16, 24, 32, 5, 1, 2, 1, 1),  # (the first row of the table)
        (64, 1, 28, 32, 5, 1, 0, 1, 1), (64, 32, 14, 64, 3, 1, 1, 1, 1), (16, 64, 56, 64, 3, 1, 1, 1, 1),
        (64, 3, 32, 32, 3, 1, 1, 1, 1), (32, 32, 32, 64, 3, 2, 1, 1, 1), (64, 64, 28, 64, 3, 1, 1, 64, 1),
        (32, 32, 28, 32, 3, 1, 2, 1, 2), (64, 64, 28, 128, 1, 1, 0, 1, 1),
    ]
    out = []
    for n, c, h, o, k, s, p, g, d in specs:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((o, c // g, k, k)) * 0.1).astype(np.float32)
        oh = (h + 2 * p - d * (k - 1) - 1) // s + 1
        label = f"conv2d N{n} C{c} {h}x{h} O{o} k{k} s{s} p{p}" + (f" g{g}" if g > 1 else "") + (
            f" d{d}" if d > 1 else "")
        kw = dict(stride=s, padding=p, dilation=d, groups=g)
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        out.append(Workload(label + " fwd", lambda x=x, w=w, kw=kw: F.conv2d(x, w, **kw),
                            {"torch": lambda xt=xt, wt=wt, kw=kw: torch.nn.functional.conv2d(xt, wt, **kw)},
                            _conv_flops(n, c, o, oh * oh, k, g, False)))

        def ours(x=x, w=w, kw=kw):
            xx, ww = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
            F.conv2d(xx, ww, **kw).sum().backward()

        def theirs(x=x, w=w, kw=kw):
            xx, ww = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
            torch.nn.functional.conv2d(xx, ww, **kw).sum().backward()

        out.append(Workload(label + " fwd+bwd", ours, {"torch": theirs}, _conv_flops(n, c, o, oh * oh, k, g, True)))
    return out


def _fb(torch, fn_ours, fn_theirs, x):
    def ours():
        xx = Tensor(x, requires_grad=True)
        fn_ours(xx).sum().backward()

    def theirs():
        xx = torch.tensor(x, requires_grad=True)
        fn_theirs(xx).sum().backward()

    return ours, {"torch": theirs}


def other_workloads(torch, rng) -> list[Workload]:
    tf = torch.nn.functional
    out = []
    x = rng.standard_normal((64, 32, 28, 28)).astype(np.float32)
    for label, args in (("2x2 s2", (2, 2, 0)), ("3x3 s2 p1", (3, 2, 1))):
        o, t = _fb(torch, lambda a, args=args: F.max_pool2d(a, *args), lambda a, args=args: tf.max_pool2d(a, *args), x)
        out.append(Workload(f"max_pool2d {label} N64 C32 28x28 fwd+bwd", o, t, x.size * 2.0))
        o, t = _fb(torch, lambda a, args=args: F.avg_pool2d(a, *args), lambda a, args=args: tf.avg_pool2d(a, *args), x)
        out.append(Workload(f"avg_pool2d {label} N64 C32 28x28 fwd+bwd", o, t, x.size * 2.0))
    xb = rng.standard_normal((128, 48, 14, 14)).astype(np.float32)
    w, b = np.ones(48, np.float32), np.zeros(48, np.float32)

    def ours_bn():
        xx, ww, bb = (Tensor(a.copy(), requires_grad=True) for a in (xb, w, b))
        F.relu(F.batch_norm(xx, None, None, ww, bb, training=True)).sum().backward()

    def theirs_bn():
        xx, ww, bb = (torch.tensor(a, requires_grad=True) for a in (xb, w, b))
        tf.relu(tf.batch_norm(xx, None, None, ww, bb, training=True)).sum().backward()

    out.append(Workload("batch_norm2d + relu N128 C48 14x14 fwd+bwd", ours_bn, {"torch": theirs_bn}, xb.size * 10.0))

    def ours_fused():  # what nn.Sequential runs for BatchNorm2d then ReLU
        xx, ww, bb = (Tensor(a.copy(), requires_grad=True) for a in (xb, w, b))
        F.batch_norm_relu(xx, None, None, ww, bb, training=True).sum().backward()

    out.append(Workload("batch_norm_relu (fused) N128 C48 14x14 fwd+bwd", ours_fused, {"torch": theirs_bn},
                        xb.size * 10.0))
    c_in = 1
    x1 = rng.standard_normal((100, 1, 40)).astype(np.float32)
    length = 40
    for i, k in enumerate((5, 3, 3)):
        w1 = (rng.standard_normal((25, c_in, k)) * 0.1).astype(np.float32)
        xin = x1 if i == 0 else rng.standard_normal((100, 25, length)).astype(np.float32)
        o, t = _fb(torch, lambda a, w1=w1: F.conv1d(a, Tensor(w1, requires_grad=True), stride=2, padding=1),
                   lambda a, w1=w1: tf.conv1d(a, torch.tensor(w1, requires_grad=True), stride=2, padding=1), xin)
        lout = (length + 2 - k) // 2 + 1
        out.append(Workload(f"conv1d MNIST-1D layer {i + 1} (N100 C{c_in} L{length} k{k} s2) fwd+bwd", o, t,
                            6.0 * 100 * 25 * c_in * k * lout))
        c_in, length = 25, lout
    img = rng.standard_normal((512, 512)).astype(np.float32)
    for k in (5, 15, 31):
        ker = rng.standard_normal((k, k)).astype(np.float32)
        peers = {"torch": lambda ker=ker: torch.nn.functional.conv2d(torch.from_numpy(img)[None, None],
                                                                      torch.from_numpy(ker)[None, None])}
        try:
            import scipy.signal as ss

            peers["scipy.correlate2d"] = lambda ker=ker: ss.correlate2d(img, ker, mode="valid")
            peers["scipy.fftconvolve"] = lambda ker=ker: ss.fftconvolve(img, ker[::-1, ::-1], mode="valid")
            peers["scipy.oaconvolve"] = lambda ker=ker: ss.oaconvolve(img, ker[::-1, ::-1], mode="valid")
        except ImportError:  # pragma: no cover
            pass
        out.append(Workload(f"correlate 512x512 with {k}x{k}", lambda ker=ker: F.correlate(img, ker), peers,
                            2.0 * (512 - k + 1) ** 2 * k * k))
    return out
