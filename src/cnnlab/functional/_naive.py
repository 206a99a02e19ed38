"""Slow loop references: each op written straight from its defining sum.

These are the test oracle for the vectorised operators, and the source of the numbers shown in
worked explanations.  They loop over every output position in plain Python, so they also work on
``object`` arrays of ``int`` or ``fractions.Fraction`` (exact rationals).  Arguments are already
normalised: tuples per spatial dim and ``(lo, hi)`` padding pairs; inputs are batched.

This module shares no code with what it checks: it imports only NumPy and the standard library
(a test parses its imports).  Padding for every mode, the 'same' rule and the output-size
arithmetic are written out again here from their definitions, in a different form from the
fast path (positions are counted one window at a time, padded cells traced to their source cell
one step at a time), so that one mistake cannot hide in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product
from typing import Any

import numpy as np

PadPairs = tuple[tuple[int, int], ...]


def _zeros(shape: Sequence[int], like: np.ndarray) -> np.ndarray:
    if like.dtype == object:
        out = np.empty(tuple(shape), dtype=object)
        out[...] = 0
        return out
    return np.zeros(tuple(shape), dtype=like.dtype)


# --------------------------------------------------------------------------------------------
# Padding, the 'same' rule and window counts, from their definitions.
# --------------------------------------------------------------------------------------------
def naive_pad_source(q: int, size: int, mode: str) -> int | None:
    """The input cell that padded position ``q`` (input coordinates, may be < 0 or >= size) copies.

    ``None`` for zero padding outside the input.  'replicate' repeats the edge cell; 'circular'
    wraps around (the cell ``size`` places away, as often as needed); 'reflect' mirrors about the
    edge cell without repeating it (``-1 -> 1``, ``size -> size - 2``), folding again until the
    position lands inside.
    """
    if 0 <= q < size:
        return q
    if mode == "zeros":
        return None
    if mode == "replicate":
        return 0 if q < 0 else size - 1
    if mode == "circular":
        while q < 0:
            q += size
        while q >= size:
            q -= size
        return q
    if mode == "reflect":
        if size == 1:
            return 0
        while not 0 <= q < size:
            q = -q if q < 0 else 2 * (size - 1) - q
        return q
    raise ValueError(f"naive_pad_source: unknown mode {mode!r}")


def naive_pad(x: np.ndarray, pads: PadPairs, mode: str = "zeros") -> np.ndarray:
    """Pad the last ``len(pads)`` axes of ``x`` cell by cell: padded cell ``q`` (``lo`` cells
    before the input, ``hi`` after) holds ``x[source(q - lo)]`` or zero (non-negative pads)."""
    n = len(pads)
    lead = x.shape[: x.ndim - n]
    sizes = x.shape[x.ndim - n :]
    padded = [size + lo + hi for size, (lo, hi) in zip(sizes, pads, strict=True)]
    out = _zeros([*lead, *padded], x)
    for q in product(*(range(s) for s in padded)):
        src = [naive_pad_source(q[i] - pads[i][0], sizes[i], mode) for i in range(n)]
        if None not in src:
            out[(Ellipsis, *q)] = x[(Ellipsis, *src)]
    return out


def naive_same_padding(
    in_sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> PadPairs:
    """'same' padding from its definition (TensorFlow/ONNX SAME_UPPER; PyTorch's for stride 1).

    There is one output cell per stride step that starts inside the input (positions
    ``0, s, 2s, ... < in``: ``ceil(in / s)`` of them); the last window, spanning
    ``(k - 1)*d + 1`` cells, must fit, so the total padding is
    ``max((out - 1)*s + (k - 1)*d + 1 - in, 0)``; the smaller half goes first (``lo``), the odd
    cell at the end (``hi``).
    """
    pairs = []
    for size, k, s, d in zip(in_sizes, kernel, stride, dilation, strict=True):
        out = len(range(0, size, s))
        last_end = (out - 1) * s + (k - 1) * d + 1
        total = last_end - size if last_end > size else 0
        lo = total // 2
        pairs.append((lo, total - lo))
    return tuple(pairs)


def naive_window_count(size: int, k: int, s: int, lo: int, hi: int, d: int, ceil_mode: bool = False) -> int:
    """Number of windows along one axis, counted one window at a time.

    Window ``p`` covers padded cells ``p*s .. p*s + (k - 1)*d`` of the ``lo + size + hi`` padded
    cells.  Floor mode keeps the windows that fit.  Ceil mode keeps a window as long as the one
    before it had not reached the end (so the last kept window may hang past the end), and then,
    as PyTorch's pooling does, drops that last window if it starts in the right padding (at or
    past ``lo + size``).
    """
    total = lo + size + hi
    span = (k - 1) * d + 1
    count = 0
    while True:
        if ceil_mode:
            kept = (count - 1) * s + span < total  # the previous window stops short of the end
        else:
            kept = count * s + span <= total
        if not kept:
            break
        count += 1
    if ceil_mode and count > 0 and (count - 1) * s >= lo + size:
        count -= 1
    return count


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
    else:  # full overlaps only: the smaller of x and the kernel lies wholly inside the other
        starts = [min(e, s) - 1 for s, e in zip(x.shape, keff, strict=True)]
        sizes = [abs(s - e) + 1 for s, e in zip(x.shape, keff, strict=True)]
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
    xp = naive_pad(x, pads, padding_mode)
    batch, _, *sp = xp.shape
    out_ch, cg, *kernel = weight.shape
    og = out_ch // groups
    out = [naive_window_count(s, k, st, 0, 0, d) for s, k, st, d in zip(sp, kernel, stride, dilation, strict=True)]
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


def _naive_pool_positions(
    x: np.ndarray, kernel: Sequence[int], stride: Sequence[int], pads: PadPairs,
    dilation: Sequence[int], ceil_mode: bool,
) -> list[range]:
    sp = x.shape[2:]
    return [
        range(naive_window_count(sp[i], kernel[i], stride[i], *pads[i], dilation[i], ceil_mode))
        for i in range(len(kernel))
    ]


def naive_max_pool(
    x: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: PadPairs,
    dilation: Sequence[int],
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Max pooling of a batched ``(N, C, *sp)`` input by looping over every window and tap.

    ``y[b, c, p] = max x[b, c, p*s + t*d - lo]`` over the taps ``t`` that land inside the input
    (padding is never chosen).  Taps are scanned in row-major order and one replaces the best so
    far if it is the first inside the input, strictly greater, or NaN: ties keep the first
    maximum, a NaN window keeps its last NaN (PyTorch's choice).  ``indices`` holds the flat
    index of the chosen cell in its channel's spatial input.  Integer inputs give ``int64``.
    """
    n = len(kernel)
    sp = x.shape[2:]
    outs = _naive_pool_positions(x, kernel, stride, pads, dilation, ceil_mode)
    shape = x.shape[:2] + tuple(len(r) for r in outs)
    dtype = object if x.dtype == object else (x.dtype if x.dtype.kind == "f" else np.int64)
    y = np.empty(shape, dtype=dtype)
    indices = np.empty(shape, dtype=np.int64)
    for b, c in product(range(x.shape[0]), range(x.shape[1])):
        for p in product(*outs):
            best: Any = None
            where = -1
            for t in product(*(range(k) for k in kernel)):
                src = tuple(p[i] * stride[i] + t[i] * dilation[i] - pads[i][0] for i in range(n))
                if not all(0 <= src[i] < sp[i] for i in range(n)):
                    continue
                v = x[(b, c, *src)]
                if best is None or v > best or v != v:
                    best = v
                    where = int(np.ravel_multi_index(src, sp))
            y[(b, c, *p)] = best
            indices[(b, c, *p)] = where
    return (y, indices) if return_indices else y


def naive_avg_pool(
    x: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: PadPairs,
    dilation: Sequence[int],
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """Average pooling of a batched ``(N, C, *sp)`` input by looping over every window and tap.

    The sum runs over the taps ``q = p*s + t*d - lo`` inside the input (padding adds zero).  The
    divisor is ``divisor_override`` if given, else the number of taps inside the padded input
    ``-lo <= q < sp + hi`` (``count_include_pad``) or inside the input ``0 <= q < sp``.  Object
    arrays of ints or Fractions give exact Fractions; numeric arrays give floats (float64 for
    integer inputs).
    """
    from fractions import Fraction  # local: this file's header is shared with other references

    n = len(kernel)
    sp = x.shape[2:]
    outs = _naive_pool_positions(x, kernel, stride, pads, dilation, ceil_mode)
    shape = x.shape[:2] + tuple(len(r) for r in outs)
    exact = x.dtype == object
    y = np.empty(shape, dtype=object if exact else (x.dtype if x.dtype.kind == "f" else np.float64))
    for b, c in product(range(x.shape[0]), range(x.shape[1])):
        for p in product(*outs):
            acc: Any = 0
            in_padded = in_input = 0
            for t in product(*(range(k) for k in kernel)):
                src = tuple(p[i] * stride[i] + t[i] * dilation[i] - pads[i][0] for i in range(n))
                if all(-pads[i][0] <= src[i] < sp[i] + pads[i][1] for i in range(n)):
                    in_padded += 1
                if all(0 <= src[i] < sp[i] for i in range(n)):
                    in_input += 1
                    acc = acc + (x[(b, c, *src)] if exact else x[(b, c, *src)].item())
            if divisor_override is not None:
                divisor = divisor_override
            else:
                divisor = in_padded if count_include_pad else in_input
            if exact and isinstance(acc, (int, Fraction)):
                y[(b, c, *p)] = Fraction(acc) / divisor
            else:
                y[(b, c, *p)] = acc / divisor
    return y


# --------------------------------------------------------------------------------------------
# Activations: one element at a time with the math module, straight from each definition.
# Floating inputs give their own dtype (computed in Python floats, i.e. float64, then rounded),
# other inputs float64; naive_relu keeps integers exact (int64, or Python ints for object input).
# --------------------------------------------------------------------------------------------
def _naive_map(x: Any, f: Any) -> np.ndarray:
    x = np.asarray(x)
    out = np.empty(x.shape, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
    for idx in np.ndindex(x.shape):
        out[idx] = f(float(x[idx]))
    return out


def naive_relu(x: Any) -> np.ndarray:
    """``relu(v) = v if v > 0 else 0`` (NaN stays NaN); exact on integers and Fractions."""
    x = np.asarray(x)
    exact = x.dtype == object
    out = np.empty(x.shape, dtype=object if exact else (x.dtype if x.dtype.kind == "f" else np.int64))
    for idx in np.ndindex(x.shape):
        v = x[idx] if exact else x[idx].item()
        out[idx] = 0 if v <= 0 else v
    return out


def naive_leaky_relu(x: Any, negative_slope: float = 0.01) -> np.ndarray:
    """``v if v > 0 else negative_slope * v``."""
    return _naive_map(x, lambda v: v if v > 0 else negative_slope * v)


def naive_elu(x: Any, alpha: float = 1.0) -> np.ndarray:
    """``v if v > 0 else alpha * (exp(v) - 1)``."""
    import math  # local: this file's header is shared with other references

    return _naive_map(x, lambda v: v if v > 0 else alpha * math.expm1(v))


def naive_gelu(x: Any, approximate: str = "none") -> np.ndarray:
    """``v/2 * (1 + erf(v/sqrt 2))``, or with ``tanh(sqrt(2/pi) (v + 0.044715 v^3))`` for 'tanh'."""
    import math

    if approximate == "tanh":
        k = math.sqrt(2 / math.pi)
        return _naive_map(x, lambda v: 0.5 * v * (1 + math.tanh(k * (v + 0.044715 * v**3))))
    return _naive_map(x, lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))


def naive_sigmoid(x: Any) -> np.ndarray:
    """``1 / (1 + exp(-v))``, written as ``exp(v) / (1 + exp(v))`` for negative ``v``."""
    import math

    def sigma(v: float) -> float:
        if v >= 0:
            return 1 / (1 + math.exp(-v))
        e = math.exp(v)
        return e / (1 + e)

    return _naive_map(x, sigma)


def naive_tanh(x: Any) -> np.ndarray:
    """``math.tanh`` per element."""
    import math

    return _naive_map(x, math.tanh)


def _naive_rows(x: Any, dim: int, row: Any) -> np.ndarray:
    """Apply ``row`` (list of floats -> list of floats) to every 1-D slice of ``x`` along ``dim``."""
    x = np.asarray(x)
    shape = x.shape
    x = x.reshape(1) if x.ndim == 0 else x
    moved = np.moveaxis(x, dim % x.ndim, -1)
    out = np.empty(moved.shape, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
    for idx in np.ndindex(moved.shape[:-1]):
        out[idx] = row([float(v) for v in moved[idx]])
    return np.moveaxis(out, -1, dim % x.ndim).reshape(shape)


def naive_softmax(x: Any, dim: int) -> np.ndarray:
    """``exp(v_i - m) / sum_j exp(v_j - m)`` per slice, ``m`` the slice maximum."""
    import math

    def row(vals: list[float]) -> list[float]:
        m = max(vals)
        e = [math.exp(v - m) for v in vals]
        total = math.fsum(e)
        return [t / total for t in e]

    return _naive_rows(x, dim, row)


def naive_log_softmax(x: Any, dim: int) -> np.ndarray:
    """``(v_i - m) - log(sum_j exp(v_j - m))`` per slice, ``m`` the slice maximum."""
    import math

    def row(vals: list[float]) -> list[float]:
        m = max(vals)
        lse = math.log(math.fsum(math.exp(v - m) for v in vals))
        return [(v - m) - lse for v in vals]

    return _naive_rows(x, dim, row)


# --------------------------------------------------------------------------------------------
# Backward references: each gradient written from the chain rule on the defining sum, one term
# at a time, so object arrays of int / Fraction stay exact (the worked backprop solutions use
# them for rational numbers).  Inputs are batched like the forward references above.
# --------------------------------------------------------------------------------------------
def naive_conv_backward(
    grad_out: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    stride: Sequence[int],
    pads: PadPairs,
    dilation: Sequence[int],
    groups: int = 1,
    padding_mode: str = "zeros",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(grad_x, grad_w, grad_b)`` of :func:`naive_conv` by scattering every term of its sum.

    ``y[b, o, p] += xpad[b, g*C_g + c, p*s + t*d] * w[o, c, t]`` gives
    ``grad_w[o, c, t] += grad_out[b, o, p] * xpad[...]`` and ``grad_xpad[...] += grad_out[b, o, p]
    * w[o, c, t]``; ``grad_b[o]`` sums ``grad_out[:, o]``.  ``grad_xpad`` is folded back onto
    the input: zero padding drops the border, the other modes add each border cell's gradient to
    the input cell it was copied from.
    """
    nsp = weight.ndim - 2
    exact = object in (grad_out.dtype, x.dtype, weight.dtype)
    like = np.empty(0, dtype=object) if exact else np.zeros(0, dtype=np.result_type(grad_out, x, weight))
    xp = naive_pad(x, pads, padding_mode)
    batch, _, *sp = xp.shape
    out_ch, cg, *kernel = weight.shape
    og = out_ch // groups
    out = grad_out.shape[2:]
    grad_xp = _zeros(xp.shape, like)
    grad_w = _zeros(weight.shape, like)
    grad_b = _zeros((out_ch,), like)
    for b, o in product(range(batch), range(out_ch)):
        g = o // og
        for p in product(*(range(s) for s in out)):
            go = grad_out[(b, o, *p)]
            grad_b[o] = grad_b[o] + go
            for c in range(cg):
                for t in product(*(range(s) for s in kernel)):
                    src = (b, g * cg + c, *(p[i] * stride[i] + t[i] * dilation[i] for i in range(nsp)))
                    grad_w[(o, c, *t)] = grad_w[(o, c, *t)] + go * xp[src]
                    grad_xp[src] = grad_xp[src] + go * weight[(o, c, *t)]
    # fold: padded cell q copied input cell source(q - lo) (or nothing, for zero padding)
    grad_x = _zeros(x.shape, like)
    for q in product(*(range(s) for s in sp)):
        dst = [naive_pad_source(q[i] - pads[i][0], x.shape[2 + i], padding_mode) for i in range(nsp)]
        if None in dst:
            continue
        for b, c in product(range(batch), range(x.shape[1])):
            grad_x[(b, c, *dst)] = grad_x[(b, c, *dst)] + grad_xp[(b, c, *q)]
    return grad_x, grad_w, grad_b


def naive_max_pool_backward(
    grad_out: np.ndarray,
    x: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: PadPairs,
    dilation: Sequence[int],
    ceil_mode: bool = False,
) -> np.ndarray:
    """Each window's ``grad_out`` added to the cell :func:`naive_max_pool` chose (the first
    maximum on ties); cells chosen by several windows accumulate."""
    _, indices = naive_max_pool(x, kernel, stride, pads, dilation, ceil_mode, True)
    exact = object in (grad_out.dtype, x.dtype)
    grad_x = _zeros(x.shape, np.empty(0, dtype=object) if exact else grad_out)
    sp = x.shape[2:]
    for b, c in product(range(x.shape[0]), range(x.shape[1])):
        for p in np.ndindex(*grad_out.shape[2:]):
            dst = (b, c, *np.unravel_index(int(indices[(b, c, *p)]), sp))
            grad_x[dst] = grad_x[dst] + grad_out[(b, c, *p)]
    return grad_x


def naive_avg_pool_backward(
    grad_out: np.ndarray,
    x: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: PadPairs,
    dilation: Sequence[int],
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """Each window's ``grad_out / divisor`` added to every input cell of the window (padding
    cells take their share away).  Exact (Fractions) for object arrays of ints or Fractions."""
    from fractions import Fraction

    n = len(kernel)
    sp = x.shape[2:]
    exact = object in (grad_out.dtype, x.dtype)
    grad_x = _zeros(x.shape, np.empty(0, dtype=object) if exact else np.zeros(0, dtype=np.float64))
    for b, c in product(range(x.shape[0]), range(x.shape[1])):
        for p in np.ndindex(*grad_out.shape[2:]):
            taps = [tuple(p[i] * stride[i] + t[i] * dilation[i] - pads[i][0] for i in range(n))
                    for t in product(*(range(k) for k in kernel))]
            inside = [q for q in taps if all(0 <= q[i] < sp[i] for i in range(n))]
            padded = [q for q in taps if all(-pads[i][0] <= q[i] < sp[i] + pads[i][1] for i in range(n))]
            if divisor_override is not None:
                divisor = divisor_override
            else:
                divisor = len(padded) if count_include_pad else len(inside)
            g = grad_out[(b, c, *p)]
            share = Fraction(g) / divisor if exact and not isinstance(g, float) else g / divisor
            for q in inside:
                grad_x[(b, c, *q)] = grad_x[(b, c, *q)] + share
    return grad_x


def naive_relu_backward(grad_out: Any, x: Any) -> np.ndarray:
    """``grad_out`` where ``x > 0``, else 0 (the subgradient 0 at the kink ``x = 0``)."""
    grad_out, x = np.asarray(grad_out), np.asarray(x)
    out = np.empty(x.shape, dtype=object if object in (grad_out.dtype, x.dtype) else grad_out.dtype)
    for idx in np.ndindex(x.shape):
        out[idx] = grad_out[idx] if x[idx] > 0 else 0 * grad_out[idx]
    return out


def naive_leaky_relu_backward(grad_out: Any, x: Any, negative_slope: Any = 0.01) -> np.ndarray:
    """``grad_out`` where ``x > 0``, else ``negative_slope * grad_out``."""
    grad_out, x = np.asarray(grad_out), np.asarray(x)
    exact = object in (grad_out.dtype, x.dtype)
    out = np.empty(x.shape, dtype=object if exact else np.float64)
    for idx in np.ndindex(x.shape):
        out[idx] = grad_out[idx] if x[idx] > 0 else negative_slope * grad_out[idx]
    return out


def naive_mse_loss(x: np.ndarray, target: np.ndarray, reduction: str = "mean") -> Any:
    """``sum (x - target)^2``, divided by the element count for ``'mean'`` (exact for ints and
    Fractions: the mean is a Fraction)."""
    from fractions import Fraction

    total: Any = 0
    for idx in np.ndindex(x.shape):
        total = total + (x[idx] - target[idx]) ** 2
    if reduction == "sum":
        return total
    return Fraction(total) / x.size if not isinstance(total, float) else total / x.size


def naive_mse_loss_backward(grad_out: Any, x: np.ndarray, target: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """``2 (x - target) grad_out``, divided by the element count for ``'mean'``."""
    from fractions import Fraction

    out = np.empty(x.shape, dtype=object)
    for idx in np.ndindex(x.shape):
        g = 2 * (x[idx] - target[idx]) * grad_out
        out[idx] = g if reduction == "sum" or isinstance(g, float) else Fraction(g) / x.size
    return out
