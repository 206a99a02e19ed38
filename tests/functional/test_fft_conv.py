"""The FFT method of the convolution layers (``functional/_fft_conv.py``, its compiled transforms in
``_numba_fft.py`` and products in ``_numba_fft_products.py``) against the loop reference: the
forward and both gradients for 1-, 2- and 3-d layers with strides, dilations, groups and padding
(asymmetric, and past the kernel), batches and channel counts that the products' 2 x 4 blocks split
unevenly, periods whose half spectra take one vector of 16 bins or more, outputs rows wider than a
vector; the compiled transforms against NumPy's FFT; the fall-backs (integers stay exact, values
that are not finite keep every path's NaN pattern); its accuracy on a 7x7 layer; the automatic rule."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor
from cnnlab.functional import _backend, _conv_kernels, _fft_conv, _naive, _winograd
from cnnlab.functional._args import padding_pairs
from tests.functional.spies import nan_empty, spied

# x shape, weight shape, stride, padding, dilation, groups
CASES = [
    ((2, 3, 9, 11), (5, 3, 3, 4), 1, 1, 1, 1),  # a kernel of even width, 5 filters (a partial block)
    ((3, 4, 12, 10), (6, 2, 5, 5), 2, 2, 1, 2),  # stride 2, two groups
    ((1, 2, 13, 14), (3, 2, 3, 3), 1, ((3, 0), (1, 4)), (2, 1), 1),  # asymmetric padding, dilated rows
    ((2, 5, 8, 8), (4, 5, 7, 7), 1, 3, 1, 1),  # 7x7, padding past nothing
    ((1, 3, 6, 7), (2, 3, 3, 3), (2, 1), 4, 1, 1),  # padding past the kernel's reach
    ((1, 2, 5, 6), (3, 2, 5, 3), 1, 2, 2, 1),  # a dilated kernel (9 rows) longer than input and padding
    ((2, 2, 40, 37), (3, 2, 5, 5), 1, 2, 1, 1),  # periods over 32: half spectra of two vectors, rows of 37
    ((1, 2, 90, 70), (3, 2, 7, 5), 2, 3, 1, 1),  # periods over 64 (96 x 74), strided
    ((5, 3, 7, 7), (9, 3, 7, 7), 1, 0, 1, 1),  # one output
    ((2, 4, 31), (6, 4, 5), 1, 2, 1, 1),  # 1-d
    ((3, 6, 50), (4, 3, 9), 2, 4, 2, 2),  # 1-d, strided, dilated, grouped
    ((1, 2, 6, 5, 7), (3, 2, 3, 3, 3), 1, 1, 1, 1),  # 3-d (SciPy's or NumPy's transforms)
]


def _conv_fn(dims):
    return (F.conv1d, F.conv2d, F.conv3d)[dims - 1]


def _reference(x, w, b, g, stride, padding, dilation, groups):
    dims = w.ndim - 2
    pads = padding_pairs("", padding, dims)
    s = (stride,) * dims if isinstance(stride, int) else tuple(stride)
    d = (dilation,) * dims if isinstance(dilation, int) else tuple(dilation)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = _naive.naive_conv(x64, w64, b.astype(np.float64), s, pads, d, groups)
    gx, gw = _naive.naive_conv_backward(g.astype(np.float64), x64, w64, s, pads, d, groups)[:2]
    return y, gx, gw


@pytest.fixture(params=["numba", "numpy"])
def backend(request):
    if request.param == "numba" and not _backend.numba_available():
        pytest.skip("needs numba")
    previous = _backend.set_backend(request.param)
    yield request.param
    _backend.set_backend(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CASES)
def test_matches_the_loop_reference(backend, monkeypatch, dtype, xs, ws, stride, padding, dilation, groups):
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x = rng.uniform(-2, 2, xs).astype(dtype)
    w = rng.uniform(-2, 2, ws).astype(dtype)
    b = rng.uniform(-2, 2, ws[0]).astype(dtype)
    calls = spied(monkeypatch, _fft_conv, "forward", "backward")
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": "fft"}
    conv = _conv_fn(len(ws) - 2)
    y = conv(x, w, b, **kw)
    g = rng.uniform(-1, 1, y.shape).astype(dtype)
    gx, gw, gb = F.conv_backward(g, x, w, b, **kw)
    ry, rx, rw = _reference(x, w, b, g, stride, padding, dilation, groups)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in ((y, ry), (gx, rx), (gw, rw)):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    np.testing.assert_allclose(gb, g.astype(np.float64).sum(axis=tuple(i for i in range(g.ndim) if i != 1)),
                               rtol=tol, atol=tol * np.abs(g).sum())
    assert calls == {"forward": 2, "backward": 1}


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("rows, cols, periods", [
    ((5, 1, 0), (7, 1, 0), (8, 9)),  # an input plane zero-filled to odd and even periods
    ((3, 2, 0), (4, 3, 0), (12, 20)),  # a dilated kernel
    ((6, 2, 1), (20, 2, 3), (13, 40)),  # strided outputs from before the start (wrapped), two vectors a row
    ((1, 1, 0), (33, 1, 0), (1, 36)),  # a 1-d signal: one row of period 1
    ((70, 1, 0), (90, 1, 0), (75, 128)),  # periods over 64: five vectors of bins a row
])
def test_compiled_transforms_are_numpys_dft(rows, cols, periods):
    """``spectra`` against ``numpy.fft.rfft2`` of the planes placed at their positions, and
    ``planes`` against ``numpy.fft.irfft2`` read at them (float64 NumPy, float32 kernels)."""
    from cnnlab.functional import _numba_fft as nf

    rng = np.random.default_rng(7)
    ra = nf.Axis(rows[0], rows[1], rows[2], periods[0])
    ca = nf.Axis(cols[0], cols[1], cols[2], periods[1])
    planes = rng.uniform(-1, 1, (3, ra.count, ca.count)).astype(np.float32)
    ri = (np.arange(ra.count) * ra.step - ra.offset) % ra.period
    ci = (np.arange(ca.count) * ca.step - ca.offset) % ca.period
    placed = np.zeros((3, *periods))
    placed[:, ri[:, None], ci[None, :]] = planes
    want = np.fft.rfft2(placed).reshape(3, -1)
    packed = nf.spectra(planes, ra, ca)
    chunks = nf.chunks_of(ra, ca)
    got = packed.reshape(chunks, 3, 2, 16).transpose(1, 2, 0, 3).reshape(3, 2, -1)[:, :, :want.shape[1]]
    scale = np.abs(want).max()
    np.testing.assert_allclose(got[:, 0], want.real, atol=2e-6 * scale)
    np.testing.assert_allclose(got[:, 1], want.imag, atol=2e-6 * scale)
    assert not packed.reshape(chunks, 3, 2, 16).transpose(1, 2, 0, 3).reshape(3, 2, -1)[:, :, want.shape[1]:].any()
    # the inverse of a random spectrum (of a real plane), at the positions
    spectrum = np.fft.rfft2(rng.uniform(-1, 1, (3, *periods)))
    back = np.fft.irfft2(spectrum, s=periods)[:, ri[:, None], ci[None, :]]
    flat = spectrum.reshape(3, -1)
    padded = np.zeros((3, 2, chunks * 16), dtype=np.float32)
    padded[:, 0, :flat.shape[1]], padded[:, 1, :flat.shape[1]] = flat.real, flat.imag
    packed_in = np.ascontiguousarray(padded.reshape(3, 2, chunks, 16).transpose(2, 0, 1, 3)).reshape(-1)
    np.testing.assert_allclose(nf.planes(packed_in, 3, ra, ca), back, atol=2e-6 * np.abs(back).max())


def test_integers_stay_exact(backend):
    x = np.arange(2 * 3 * 6 * 6).reshape(2, 3, 6, 6) % 7 - 3
    w = np.arange(4 * 3 * 3 * 3).reshape(4, 3, 3, 3) % 5 - 2
    y = F.conv2d(x, w, padding=1, method="fft")
    want = _naive.naive_conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, want)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("where", ["x", "w", "grad"])
def test_values_that_are_not_finite_keep_the_exact_paths_pattern(backend, where):
    """One NaN or inf reaches every output of a transform; the method hands such calls to another
    path, so the result's NaN pattern is the GEMM path's (the reference's)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    w = rng.uniform(-1, 1, (4, 3, 5, 5)).astype(np.float32)
    g = rng.uniform(-1, 1, (2, 4, 8, 8)).astype(np.float32)
    {"x": x, "w": w, "grad": g}[where][0, 1, 2, 3] = np.nan if where != "w" else np.inf
    kw = {"padding": 2}
    got = [F.conv2d(x, w, **kw, method="fft"), *F.conv_backward(g, x, w, **kw, method="fft")[:2]]
    want = [F.conv2d(x, w, **kw, method="gemm"), *F.conv_backward(g, x, w, **kw, method="gemm")[:2]]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a[np.isfinite(b)], b[np.isfinite(b)], rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
def test_seven_by_seven_layer_is_as_accurate_as_float32_allows():
    """N8 C32 16x16 -> 32 k7 p3, normal values: every result within 1e-6 of its largest value of
    the float64 loop reference (the implicit kernels': 1.7e-6; a transform's error grows with the
    log of its period, not with the 49 x 32 taps summed)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 32, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((32, 32, 7, 7)) * 0.1).astype(np.float32)
    b = np.zeros(32, np.float32)
    y = F.conv2d(x, w, b, padding=3, method="fft")
    g = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw, _ = F.conv_backward(g, x, w, b, padding=3, method="fft")
    ry, rx, rw = (F.conv2d(x.astype(np.float64), w.astype(np.float64), None, padding=3, method="gemm"),
                  *F.conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), padding=3,
                                   method="gemm")[:2])
    for got, want in ((y, ry), (gx, rx), (gw, rw)):
        assert np.abs(got - want).max() <= 1e-6 * np.abs(want).max()


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
def test_autograd_runs_the_method_once_each_way(monkeypatch):
    """Through autograd the forward keeps the spectra and the backward uses them: one forward and
    one backward of the method, and only the gradients asked for (a frozen input: none for it)."""
    previous = _backend.set_backend("numba")
    try:
        rng = np.random.default_rng(5)
        x = rng.standard_normal((4, 8, 12, 12)).astype(np.float32)
        w = rng.standard_normal((8, 8, 5, 5)).astype(np.float32)
        seen = []
        original = _fft_conv.backward

        def spy(grad_out, spectra, weight_shape, stride, dilation, groups, pads, needs):
            seen.append(tuple(needs))
            return original(grad_out, spectra, weight_shape, stride, dilation, groups, pads, needs)

        monkeypatch.setattr(_fft_conv, "backward", spy)
        tw = Tensor(w, requires_grad=True)
        y = F.conv2d(Tensor(x), tw, None, padding=2, method="fft")
        y.sum().backward()
        assert seen == [(False, True)]
        _, want, _ = F.conv_backward(np.ones(y.shape, np.float32), x, w, padding=2, method="gemm")
        np.testing.assert_allclose(tw.grad, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    finally:
        _backend.set_backend(previous)


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("xs, ws, stride, padding, expected", [
    ((32, 32, 16, 16), (32, 32, 7, 7), 1, 3, "fft"),  # 7x7: 49 taps a channel against a few per bin
    ((32, 16, 24, 24), (32, 16, 5, 5), 1, 2, "fft"),  # the 5x5 layer (F(2x2, 5x5) the other choice)
    ((8, 128, 14, 14), (128, 128, 5, 5), 1, 2, "fft"),  # 128 channels (the implicit kernels the other)
    # a period of 60, 4 samples: the weight gradient's 4,096 spectra, each a sum of 4 products (AVX2:
    # traffic, and F(2x2, 5x5) the faster)
    ((4, 64, 56, 56), (64, 64, 5, 5), 1, 2, ("fft", "winograd")),
    ((16, 64, 8, 8), (64, 64, 5, 5), 1, 2, "fft"),  # 64 positions a plane
    ((8, 32, 64, 64), (32, 32, 5, 5), 1, 2, "winograd"),  # a period of 68: F(2x2, 5x5) modelled faster
    ((4, 64, 64, 64), (64, 64, 7, 7), 1, 3, "fft"),  # a period of 70
    ((8, 32, 100, 100), (32, 32, 9, 9), 1, 4, "fft"),  # a period of 108
    ((2, 32, 128, 128), (32, 32, 7, 7), 1, 3, "implicit"),  # a period of 134: past the dense transforms
    ((64, 32, 14, 14), (64, 32, 3, 3), 1, 1, "winograd"),  # 3x3: fewer taps than FFT_MIN_TAPS
    ((1, 64, 32, 32), (64, 64, 7, 7), 1, 3, "implicit"),  # one image: 4096 filter planes to transform
    ((8, 64, 56, 56), (16, 64, 7, 7), 2, 3, "implicit"),  # stride 2: a quarter of the outputs
    ((32, 32, 16, 16), (32, 16, 7, 7), 1, 3, "implicit"),  # two groups
    ((64, 1, 28, 28), (32, 1, 5, 5), 1, 0, "direct"),  # a first layer
    ((8, 192, 28, 28), (192, 192, 7, 7), 1, 3, "implicit"),  # 36,864 filter planes: 151 MB of spectra
    ((8, 128, 28, 28), (128, 128, 7, 7), 1, 3, "fft"),  # 16,384 of them: 70 MB
])
@pytest.mark.parametrize("wide", [True, False])
def test_automatic_rule(xs, ws, stride, padding, expected, wide, monkeypatch):
    """The rule's choice by the model of the kernels' vector width (``expected``: one method for
    both, or the AVX-512 and AVX2 ones)."""
    from cnnlab.functional import _numba_simd
    from cnnlab.functional._columns import _with_pads

    monkeypatch.setattr(_numba_simd, "WIDE", wide)
    expected = expected if isinstance(expected, str) else expected[0 if wide else 1]
    previous = _backend.set_backend("numba")
    try:
        groups = xs[1] // ws[1]
        pads = ((padding, padding),) * 2
        xp = _with_pads(xs, pads)
        got = _conv_kernels.choose_method(xp, ws, groups, (stride, stride), np.float32, (1, 1), pads)
        assert got == expected
        # the rule's inputs: the model's times, on the side the choice says
        if expected == "fft":
            winograd = _winograd.chosen(xp, ws, groups, (stride, stride), (1, 1))  # (the other method's)
            assert _fft_conv.chosen(xs, ws, groups, pads, (stride, stride), (1, 1), winograd)
    finally:
        _backend.set_backend(previous)


def test_float64_and_no_numba_take_the_other_paths():
    """'auto' never takes the FFT for float64 (its rule is the compiled float32 path's) nor without
    Numba."""
    from cnnlab.functional._columns import _with_pads

    pads = ((3, 3), (3, 3))
    xp = _with_pads((32, 32, 16, 16), pads)
    assert _conv_kernels.choose_method(xp, (32, 32, 7, 7), 1, (1, 1), np.float64, (1, 1), pads) != "fft"
    previous = _backend.set_backend("numpy")
    try:
        assert _conv_kernels.choose_method(xp, (32, 32, 7, 7), 1, (1, 1), np.float32, (1, 1), pads) != "fft"
    finally:
        _backend.set_backend(previous)


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("xs, ws, padding", [
    ((3, 5, 20, 37), (6, 5, 5, 5), 2),  # half spectra of two vectors; rows of 37 (a masked last vector)
    ((5, 3, 9, 9), (7, 3, 7, 7), 3),  # odd batch and filters: blocks past the last row and column
])
def test_no_scratch_value_is_read_before_it_is_written(monkeypatch, xs, ws, padding):
    """Every array the compiled path allocates uninitialised (packed spectra and products, the
    transforms' scratch rows, the outputs) is written before it is read: with ``np.empty``
    handing out arrays full of nan, the results still match the reference."""
    rng = np.random.default_rng(17)
    x = rng.uniform(-1, 1, xs).astype(np.float32)
    w = rng.uniform(-1, 1, ws).astype(np.float32)
    b = np.zeros(ws[0], np.float32)
    empty = np.empty
    previous = _backend.set_backend("numba")
    try:
        monkeypatch.setattr(np, "empty", nan_empty(empty))
        y = F.conv2d(x, w, b, padding=padding, method="fft")
        g = rng.uniform(-1, 1, y.shape).astype(np.float32)
        gx, gw, _ = F.conv_backward(g, x, w, b, padding=padding, method="fft")
        monkeypatch.setattr(np, "empty", empty)
    finally:
        _backend.set_backend(previous)
    ry, rx, rw = _reference(x, w, b, g, 1, padding, 1, 1)
    for got, want in ((y, ry), (gx, rx), (gw, rw)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("wide", [True, False])
def test_a_forward_alone_is_weighed_alone(monkeypatch, wide):
    """Without a backward to follow (``backward=False``: a call with nothing to save), the rule
    weighs the forward's work alone: the issue's 5x5 layer keeps F(2x2, 5x5) (9 products an
    output and channel against spectra made for one product), a 7x7 layer still takes the FFT
    (by either vector width's model)."""
    from cnnlab.functional import _numba_simd
    from cnnlab.functional._columns import _with_pads

    monkeypatch.setattr(_numba_simd, "WIDE", wide)
    previous = _backend.set_backend("numba")
    try:
        for xs, ws, p, fb, alone in (((32, 16, 24, 24), (32, 16, 5, 5), 2, "fft", "winograd"),
                                     ((32, 32, 16, 16), (32, 32, 7, 7), 3, "fft", "fft")):
            pads = ((p, p), (p, p))
            xp = _with_pads(xs, pads)
            assert _conv_kernels.choose_method(xp, ws, 1, (1, 1), np.float32, (1, 1), pads) == fb
            assert _conv_kernels.choose_method(xp, ws, 1, (1, 1), np.float32, (1, 1), pads, backward=False) == alone
    finally:
        _backend.set_backend(previous)


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
def test_transposed_convolution_through_the_rule(monkeypatch):
    """A transposed 7x7 layer's gradients run a convolution by the automatic rule (its input
    gradient a forward, its weight gradient that forward's weight gradient with the layer's input
    as the upstream gradient): the FFT's, within float32's rounding of the float64 computation."""
    rng = np.random.default_rng(23)
    x = rng.standard_normal((32, 32, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((32, 32, 7, 7)) * 0.1).astype(np.float32)
    y = F.conv_transpose2d(x, w, None, 1, 3)
    g = rng.standard_normal(y.shape).astype(np.float32)
    calls = spied(monkeypatch, _fft_conv, "forward", "backward")
    gx, gw, _ = F.conv_transpose_backward(g, x, w, None, 1, 3)
    assert calls == {"forward": 1, "backward": 1}
    # (float64 takes the other paths)
    rx, rw, _ = F.conv_transpose_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), None,
                                          1, 3)
    for got, want in ((gx, rx), (gw, rw)):
        assert np.abs(got - want).max() <= 1e-6 * np.abs(want).max()


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("a_rows, b_rows, groups, kind, conj_a, conj_b", [
    ((5, 6), (7, 6), 1, "forward", False, False),  # 7 filters: a block of 4 and one past the end
    ((3, 8), (8, 2), 2, "grad_x", False, False),  # groups
    ((4, 9), (4, 6), 3, "grad_w", True, False),  # the conjugate of a
    ((2, 5), (6, 5), 1, "forward", False, True),  # the conjugate of b
])
def test_narrow_products_give_the_wide_kernels_bits(monkeypatch, a_rows, b_rows, groups, kind, conj_a, conj_b):
    """Without AVX-512 the products run by 1 x 4 blocks of 8 lanes (``NARROW_KERNELS``): each sum's
    terms in the 2 x 4 kernel's order, so the same bits; and the complex128 sums' values."""
    from cnnlab.functional import _numba_fft_products, _numba_simd

    rng = np.random.default_rng(31)
    bins = 37  # (3 chunks of 16 bins, the last part-filled)

    def spectrum(shape):
        return (rng.standard_normal((*shape, bins)) + 1j * rng.standard_normal((*shape, bins))).astype(np.complex64)

    a, b = spectrum(a_rows), spectrum(b_rows)
    calls = spied(monkeypatch, _numba_fft_products, "_products", "_products_narrow")
    got = {}
    for narrow in (True, False):
        monkeypatch.setattr(_numba_simd, "WIDE", not narrow)
        got[narrow] = _numba_fft_products.products(a, b, groups, conj_a, conj_b, kind)
    assert calls == {"_products": 1, "_products_narrow": 1}
    np.testing.assert_array_equal(got[True].view(np.int32), got[False].view(np.int32))
    a64 = np.conj(a).astype(np.complex128) if conj_a else a.astype(np.complex128)
    b64 = np.conj(b).astype(np.complex128) if conj_b else b.astype(np.complex128)
    if kind == "forward":  # z[n, o] = sum_c a[n, g c] b[o, c]
        n, c = a_rows
        og = b_rows[0] // groups
        want = np.concatenate([np.einsum("nkf,okf->nof", a64[:, g * (c // groups):(g + 1) * (c // groups)],
                                         b64[g * og:(g + 1) * og]) for g in range(groups)], axis=1)
    elif kind == "grad_x":  # z[n, g cg + c] = sum_o a[n, g og + o] b[g og + o, c]
        og = a_rows[1] // groups
        want = np.concatenate([np.einsum("nof,ocf->ncf", a64[:, g * og:(g + 1) * og], b64[g * og:(g + 1) * og])
                               for g in range(groups)], axis=1)
    else:  # z[g og + o, c] = sum_n a[n, g og + o] b[n, g cg + c]
        og, cg = a_rows[1] // groups, b_rows[1] // groups
        want = np.concatenate([np.einsum("nof,ncf->ocf", a64[:, g * og:(g + 1) * og], b64[:, g * cg:(g + 1) * cg])
                               for g in range(groups)], axis=0)
    np.testing.assert_allclose(got[True], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("xs, ws, padding, stride", [
    ((3, 5, 13, 11), (6, 5, 5, 5), 2, 1),  # 13 rows: blocks of 2 and 4 rows end unevenly
    ((2, 4, 16, 16), (5, 4, 7, 7), 3, 2),  # strided: the output's positions every other one
    ((4, 3, 29), (5, 3, 9), 4, 1),  # 1-d
])
def test_narrow_transforms_give_the_wide_kernels_bits(monkeypatch, xs, ws, padding, stride):
    """The transforms by blocks of 2 rows (without AVX-512) and of 4 give each value's sums in the
    same order: the same bits through a whole forward and backward; and the loop reference's values."""
    from cnnlab.functional import _numba_fft, _numba_simd

    rng = np.random.default_rng(37)
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal(ws) * 0.2).astype(np.float32)
    conv = F.conv1d if len(xs) == 3 else F.conv2d
    g = rng.standard_normal(conv(x, w, None, stride, padding, method="fft").shape).astype(np.float32)
    calls = spied(monkeypatch, _numba_fft, "_spectra", "_spectra_narrow", "_planes", "_planes_narrow")
    runs = {}
    previous = _backend.set_backend("numba")
    try:
        for narrow in (True, False):
            monkeypatch.setattr(_numba_simd, "WIDE", not narrow)
            runs[narrow] = (conv(x, w, None, stride, padding, method="fft"),
                            *F.conv_backward(g, x, w, None, stride, padding, method="fft")[:2])
    finally:
        _backend.set_backend(previous)
    assert min(calls.values()) >= 2
    for a, b in zip(runs[True], runs[False], strict=True):
        np.testing.assert_array_equal(a.view(np.int32), b.view(np.int32))
    pads = padding_pairs("conv", padding, len(xs) - 2)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    want = (_naive.naive_conv(x64, w64, None, (stride,) * (len(xs) - 2), pads, (1,) * (len(xs) - 2), 1),
            *_naive.naive_conv_backward(g.astype(np.float64), x64, w64, (stride,) * (len(xs) - 2), pads,
                                        (1,) * (len(xs) - 2), 1)[:2])
    for got, ref in zip(runs[True], want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
