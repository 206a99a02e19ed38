"""Hypothesis properties of the convolution family: output-shape formula, linearity, adjointness
of forward and backward, convolve == correlate with a flipped kernel, unbatched == batched."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.functional._conv import conv, conv_backward
from cnnlab.functional._conv_transpose import conv_transpose, conv_transpose_backward
from cnnlab.functional._correlate import convolve, convolve_backward, correlate, correlate_backward


@st.composite
def conv_case(draw):
    n = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(n))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(n))
    sizes = tuple(
        max(1, d * (k - 1) + 1 - lo - hi) + draw(st.integers(0, 4))
        for k, d, (lo, hi) in zip(kernel, dilation, pads, strict=True)
    )
    mode = draw(st.sampled_from(["zeros", "replicate", "circular", "reflect"]))
    if mode == "reflect":
        pads = tuple((min(lo, s - 1), min(hi, s - 1)) for (lo, hi), s in zip(pads, sizes, strict=True))
    elif mode == "circular":
        pads = tuple((min(lo, s), min(hi, s)) for (lo, hi), s in zip(pads, sizes, strict=True))
    sizes = tuple(
        max(s, d * (k - 1) + 1 - lo - hi) for s, k, d, (lo, hi) in zip(sizes, kernel, dilation, pads, strict=True)
    )
    seed = draw(st.integers(0, 2**32 - 1))
    r = np.random.default_rng(seed)
    x = r.standard_normal((draw(st.integers(1, 2)), groups * cg, *sizes))
    w = r.standard_normal((groups * og, cg, *kernel))
    kwargs = dict(stride=stride, padding=pads, dilation=dilation, groups=groups, padding_mode=mode)
    return x, w, kwargs, r


@given(conv_case())
def test_output_shape_formula(case):
    x, w, kw, _ = case
    y = conv(x, w, **kw)
    expected = tuple(
        (s + lo + hi - d * (k - 1) - 1) // st_ + 1
        for s, k, st_, d, (lo, hi) in zip(x.shape[2:], w.shape[2:], kw["stride"], kw["dilation"], kw["padding"],
                                         strict=True)
    )
    assert y.shape == (x.shape[0], w.shape[0], *expected)


@given(conv_case())
def test_linear_in_x_and_in_w(case):
    x, w, kw, r = case
    x2, w2 = r.standard_normal(x.shape), r.standard_normal(w.shape)
    a, b = r.standard_normal(2)
    np.testing.assert_allclose(conv(a * x + b * x2, w, **kw), a * conv(x, w, **kw) + b * conv(x2, w, **kw),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(conv(x, a * w + b * w2, **kw), a * conv(x, w, **kw) + b * conv(x, w2, **kw),
                               rtol=1e-10, atol=1e-10)


@given(conv_case())
def test_backward_is_the_adjoint(case):
    """<conv(x, w), g> = <x, grad_x(g)> = <w, grad_w(g)> since conv is linear in each."""
    x, w, kw, r = case
    y = conv(x, w, **kw)
    g = r.standard_normal(y.shape)
    gx, gw, _ = conv_backward(g, x, w, **kw)
    lhs = np.sum(y * g)
    np.testing.assert_allclose(np.sum(x * gx), lhs, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.sum(w * gw), lhs, rtol=1e-9, atol=1e-9)


@given(conv_case())
def test_conv_transpose_is_the_adjoint_of_conv(case):
    """<conv(x, w), g> = <x, conv_transpose(g, w)> for zero padding, output_padding filling the gap."""
    x, w, kw, r = case
    kw = {k: v for k, v in kw.items() if k != "padding_mode"}
    y = conv(x, w, **kw)
    g = r.standard_normal(y.shape)
    base = [(o - 1) * s - lo - hi + d * (k - 1) + 1 for o, s, (lo, hi), d, k in
            zip(y.shape[2:], kw["stride"], kw["padding"], kw["dilation"], w.shape[2:], strict=True)]
    extra = tuple(size - b for size, b in zip(x.shape[2:], base, strict=True))
    if any(e >= max(s, d) for e, s, d in zip(extra, kw["stride"], kw["dilation"], strict=True)):
        return  # that input size is not reachable with a legal output_padding
    t = conv_transpose(g, w, stride=kw["stride"], padding=kw["padding"], output_padding=extra,
                       groups=kw["groups"], dilation=kw["dilation"])
    assert t.shape == x.shape
    np.testing.assert_allclose(np.sum(x * t), np.sum(y * g), rtol=1e-9, atol=1e-9)
    # and the transposed conv's own backward is the adjoint of the transposed conv
    h = r.standard_normal(t.shape)
    gg, gw, _ = conv_transpose_backward(h, g, w, stride=kw["stride"], padding=kw["padding"], output_padding=extra,
                                        groups=kw["groups"], dilation=kw["dilation"])
    np.testing.assert_allclose(np.sum(g * gg), np.sum(t * h), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.sum(w * gw), np.sum(t * h), rtol=1e-9, atol=1e-9)


@given(conv_case())
def test_unbatched_equals_batched(case):
    x, w, kw, r = case
    y = conv(x[0], w, **kw)
    np.testing.assert_array_equal(y, conv(x[:1], w, **kw)[0])
    g = r.standard_normal(y.shape)
    np.testing.assert_array_equal(conv_backward(g, x[0], w, **kw)[0], conv_backward(g[None], x[:1], w, **kw)[0][0])


@st.composite
def signal_case(draw):
    n = draw(st.integers(1, 3))
    xs = tuple(draw(st.integers(1, 6)) for _ in range(n))
    ks = tuple(draw(st.integers(1, 4)) for _ in range(n))
    mode = draw(st.sampled_from(["full", "same", "valid"]))
    if mode == "valid":
        ks = tuple(min(k, s) for k, s in zip(ks, xs, strict=True))
    stride = draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 2)) if mode != "valid" else 1
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return r.integers(-9, 10, xs), r.integers(-9, 10, ks), dict(mode=mode, stride=stride, dilation=dilation), r


@given(signal_case())
def test_convolve_is_correlate_with_flipped_kernel(case):
    x, k, kw, _ = case
    flipped = k[(slice(None, None, -1),) * k.ndim]
    y = convolve(x, k, **kw)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, correlate(x, flipped, **kw))


@given(signal_case())
def test_signal_backward_is_the_adjoint(case):
    x, k, kw, r = case
    for fwd, bwd in ((correlate, correlate_backward), (convolve, convolve_backward)):
        y = fwd(x, k, **kw)
        g = r.integers(-5, 6, y.shape)
        gx, gk = bwd(g, x, k, **kw)
        # exact integer identities
        assert int(np.sum(y * g)) == int(np.sum(x * gx)) == int(np.sum(k * gk))


def test_conv_transpose_when_padding_crops_more_than_the_dilated_input():
    """Regression: a crop larger than the dilated input must still give (in-1)*s - lo - hi + ... + 1 cells."""
    from cnnlab.functional._naive import naive_conv_transpose

    x = np.array([[[0.5]]])
    w = np.array([[[2.0]]])
    y = conv_transpose(x, w, stride=3, padding=((2, 0),), output_padding=2)
    expected = naive_conv_transpose(x, w, None, (3,), ((2, 0),), (2,), 1, (1,))
    assert y.shape == expected.shape == (1, 1, 1)
    np.testing.assert_array_equal(y, expected)
    g = np.ones_like(y)
    gx, gw, _ = conv_transpose_backward(g, x, w, stride=3, padding=((2, 0),), output_padding=2)
    assert np.sum(x * gx) == np.sum(y * g) == np.sum(w * gw)
