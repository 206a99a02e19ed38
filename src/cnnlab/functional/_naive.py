"""Slow loop references: each op written straight from its defining sum.

These are the test oracle for the vectorised operators, and the source of the numbers shown in
worked explanations.  They loop over every output position in plain Python, so they also work on
``object`` arrays of ``int`` or ``fractions.Fraction`` (exact rationals).  Arguments are already
normalised: tuples per spatial dim and ``(lo, hi)`` padding pairs; inputs are batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product
from typing import Any

import numpy as np

from cnnlab.functional._windows import pad as _pad

PadPairs = tuple[tuple[int, int], ...]


def _zeros(shape: Sequence[int], like: np.ndarray) -> np.ndarray:
    if like.dtype == object:
        out = np.empty(tuple(shape), dtype=object)
        out[...] = 0
        return out
    return np.zeros(tuple(shape), dtype=like.dtype)


def naive_correlate(
    x: np.ndarray, k: np.ndarray, mode: str, stride: Sequence[int], dilation: Sequence[int]
) -> np.ndarray:
    """Signal-processing cross-correlation, from the full correlation and SciPy's crop rule.

    ``full[j] = sum_t x[j + d*t - (K-1)] * k[t]`` for ``j = 0 .. n + K - 2`` (``K = d*(k-1)+1``,
    out-of-range ``x`` is zero); 'same' keeps ``n`` entries starting at ``(K-1)//2``; 'valid'
    keeps ``n - K + 1`` entries starting at ``K-1``.  Then every ``stride``-th entry is kept.
    """
    n = x.ndim
    keff = [d * (kk - 1) + 1 for kk, d in zip(k.shape, dilation, strict=True)]
    full_shape = [s + e - 1 for s, e in zip(x.shape, keff, strict=True)]
    full = _zeros(full_shape, x)
    for j in product(*(range(s) for s in full_shape)):
        acc: Any = 0
        for t in product(*(range(s) for s in k.shape)):
            src = tuple(j[i] + dilation[i] * t[i] - (keff[i] - 1) for i in range(n))
            if all(0 <= src[i] < x.shape[i] for i in range(n)):
                acc = acc + x[src] * k[t]
        full[j] = acc
    if mode == "full":
        starts, sizes = [0] * n, full_shape
    elif mode == "same":
        starts, sizes = [(e - 1) // 2 for e in keff], list(x.shape)
    else:
        starts, sizes = [e - 1 for e in keff], [s - e + 1 for s, e in zip(x.shape, keff, strict=True)]
    crop = full[tuple(slice(a, a + s) for a, s in zip(starts, sizes, strict=True))]
    return crop[tuple(slice(None, None, s) for s in stride)]


def naive_conv(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: Sequence[int],
    pads: PadPairs,
    dilation: Sequence[int],
    groups: int,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """Deep-learning convolution (a cross-correlation) over a batched input ``(N, C, *sp)``.

    ``y[b, o, p] = bias[o] + sum_{c, t} xpad[b, g*C_g + c, p*s + t*d] * w[o, c, t]`` where
    ``g = o // (O / groups)`` is the group of output channel ``o``.
    """
    nsp = weight.ndim - 2
    xp = _pad(x, pads, padding_mode)
    batch, _, *sp = xp.shape
    out_ch, cg, *kernel = weight.shape
    og = out_ch // groups
    out = [(s - d * (k - 1) - 1) // st + 1 for s, k, st, d in zip(sp, kernel, stride, dilation, strict=True)]
    y = _zeros([batch, out_ch, *out], weight if x.dtype != object else x)
    for b, o in product(range(batch), range(out_ch)):
        g = o // og
        for p in product(*(range(s) for s in out)):
            acc: Any = 0 if bias is None else bias[o]
            for c in range(cg):
                for t in product(*(range(s) for s in kernel)):
                    src = tuple(p[i] * stride[i] + t[i] * dilation[i] for i in range(nsp))
                    acc = acc + xp[(b, g * cg + c, *src)] * weight[(o, c, *t)]
            y[(b, o, *p)] = acc
    return y


def naive_conv_transpose(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: Sequence[int],
    pads: PadPairs,
    output_padding: Sequence[int],
    groups: int,
    dilation: Sequence[int],
) -> np.ndarray:
    """Transposed convolution by scattering: every input cell adds ``x * w`` into the output.

    ``y[b, g*O_g + o, i*s + t*d - lo] += x[b, c, i] * w[c, o, t]`` for input channel ``c`` in group
    ``g``; the output has ``(in - 1)*s - lo - hi + d*(k - 1) + output_padding + 1`` cells.
    """
    nsp = weight.ndim - 2
    batch, in_ch, *sp = x.shape
    _, og, *kernel = weight.shape
    cg = in_ch // groups
    out = [
        (s - 1) * st - lo - hi + d * (k - 1) + op + 1
        for s, st, (lo, hi), d, k, op in zip(sp, stride, pads, dilation, kernel, output_padding, strict=True)
    ]
    y = _zeros([batch, og * groups, *out], weight if x.dtype != object else x)
    for b, c in product(range(batch), range(in_ch)):
        g = c // cg
        for i in product(*(range(s) for s in sp)):
            for o in range(og):
                for t in product(*(range(s) for s in kernel)):
                    dst = tuple(i[a] * stride[a] + t[a] * dilation[a] - pads[a][0] for a in range(nsp))
                    if all(0 <= dst[a] < out[a] for a in range(nsp)):
                        y[(b, g * og + o, *dst)] = y[(b, g * og + o, *dst)] + x[(b, c, *i)] * weight[(c, o, *t)]
    if bias is not None:
        y = y + bias.reshape((-1,) + (1,) * nsp)
    return y
