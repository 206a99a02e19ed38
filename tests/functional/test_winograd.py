"""The Winograd method (``functional/_winograd.py`` and its kernels in ``_numba_winograd.py``),
F(2x2, 3x3) and F(2x2, 5x5), against the loop reference: the forward and both gradients for
channel and filter counts that its blocks split unevenly, paddings (asymmetric, none, past the
kernel's reach), dilations, one image and many; the weight transforms and the weight gradient's
adjoint against their definitions (F(2x2, 5x5)'s matrices built here from its interpolation
points); the fall-backs (values that are not finite, other dtypes and layers, no Numba); the
weight gradient's fixed order of sums; the automatic rule."""

from __future__ import annotations

import fractions

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import _backend, _conv_kernels, _fft_conv, _naive, _winograd
from cnnlab.functional._args import padding_pairs
from tests.functional.spies import nan_empty

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")

CASES = [
    # x shape, filters, padding, dilation
    ((2, 16, 7, 9), 16, 1, 1),  # odd sizes: tiles with one output row or column
    ((3, 9, 8, 8), 17, 1, 1),  # 9 channels (a partial block of 8), 17 filters (a block of 16 and one)
    ((1, 8, 6, 6), 5, 0, 1),  # no padding; 5 filters
    ((2, 12, 11, 10), 20, ((2, 0), (1, 3)), (2, 1), ),  # asymmetric padding, dilated along the height
    ((2, 16, 13, 12), 24, 2, 2),  # dilation 2: tiles of every residue
    ((2, 8, 14, 9), 8, (3, 1), (3, 1)),  # dilation 3
    ((1, 72, 5, 6), 40, 1, 1),  # 72 channels: two chunks of the forward (64) and of the weight gradient (48)
    ((1, 100, 4, 4), 33, 1, 1),  # 100 channels: a chunk of 36 (not a multiple of 6)
    ((4, 16, 26, 25), 16, 1, 1),  # 676 tiles: many jobs, and the weight gradient's tail
    ((1, 16, 5, 5), 16, (4, 5), 1),  # padding past the kernel's reach: the weight gradient by the implicit kernels
]
# F(2x2, 5x5): the same kinds of layer with 5x5 kernels
CASES_5 = [
    ((2, 16, 7, 9), 16, 2, 1),  # odd sizes: tiles with one output row or column
    ((3, 9, 8, 8), 17, 2, 1),  # a partial block of 8 channels, a block of 16 filters and one
    ((1, 8, 6, 7), 5, 0, 1),  # no padding: 2 x 3 outputs
    ((2, 12, 11, 10), 20, ((4, 0), (1, 3)), (2, 1)),  # asymmetric padding, dilated along the height
    ((2, 16, 13, 12), 24, 4, 2),  # dilation 2
    ((1, 72, 6, 6), 40, 2, 1),  # two chunks of the forward (64) and of the weight gradient (48)
    ((4, 16, 22, 21), 16, 2, 1),  # 484 tiles: many jobs of TILES_5, and the weight gradient's tail
    ((1, 16, 5, 5), 16, (5, 6), 1),  # padding past the kernel's reach: the weight gradient by the implicit kernels
]


def _inputs(xs, out_ch, seed, size=3):
    g = np.random.default_rng(seed)
    x = g.uniform(-2, 2, xs).astype(np.float32)
    w = g.uniform(-2, 2, (out_ch, xs[1], size, size)).astype(np.float32)
    b = g.uniform(-2, 2, out_ch).astype(np.float32)
    return x, w, b


def _reference(x, w, b, g, padding, dilation):
    pads = padding_pairs("", padding, 2)
    d = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = _naive.naive_conv(x64, w64, b.astype(np.float64), (1, 1), pads, d, 1)
    if g is None:
        return y
    rx, rw = _naive.naive_conv_backward(g.astype(np.float64), x64, w64, (1, 1), pads, d, 1)[:2]
    return y, rx, rw


def _matches_reference(x, w, b, kw, seed):
    """Run the forward and both gradients with ``kw`` (an upstream gradient drawn from ``seed``)
    and check each against the float64 loop reference; the bias gradient, returned."""
    y = F.conv2d(x, w, b, **kw)
    g = np.random.default_rng(seed).uniform(-1, 1, y.shape).astype(np.float32)
    gx, gw, gb = F.conv_backward(g, x, w, b, **kw)
    ry, rx, rw = _reference(x, w, b, g, kw["padding"], kw["dilation"])
    for got, want in ((y, ry), (gx, rx), (gw, rw)):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    return g, gb


@pytest.fixture
def compiled():
    previous = _backend.set_backend("numba")
    yield
    _backend.set_backend(previous)


def _counted(monkeypatch, *names):
    """How often each Winograd step (``correlate`` and ``grad_w``, or ``names``) ran and gave a
    result (not None)."""
    counts = dict.fromkeys(names or ("correlate", "grad_w"), 0)
    for name in counts:
        original = getattr(_winograd, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            out = _original(*args, **kwargs)
            counts[_name] += out is not None
            return out
        monkeypatch.setattr(_winograd, name, spy)
    return counts


@pytest.mark.parametrize("xs, out_ch, padding, dilation", CASES)
def test_matches_the_loop_reference(compiled, monkeypatch, xs, out_ch, padding, dilation):
    x, w, b = _inputs(xs, out_ch, seed=sum(xs) + out_ch)
    kw = {"padding": padding, "dilation": dilation, "method": "winograd"}
    counts = _counted(monkeypatch)
    g, gb = _matches_reference(x, w, b, kw, seed=5)
    # the bias gradient against the float64 sum, within twice float32's rounding of the sum of the
    # magnitudes (a float32 sum in any order stays well inside it; one value left out does not)
    g64 = g.astype(np.float64)
    bound = 2 * np.finfo(np.float32).eps * np.abs(g64).sum(axis=(0, 2, 3))
    assert (np.abs(gb - g64.sum(axis=(0, 2, 3))) <= bound).all()
    # the forward twice (once per call above) and the input gradient by the kernel; the weight
    # gradient by it unless the padding reaches past the kernel
    assert counts["correlate"] == 3
    assert counts["grad_w"] == (0 if padding == (4, 5) else 1)


@pytest.mark.parametrize("xs, out_ch, padding, dilation", CASES_5)
def test_five_by_five_matches_the_loop_reference(compiled, monkeypatch, xs, out_ch, padding, dilation):
    """F(2x2, 5x5): the forward and the input gradient of 5x5 layers by the kernels (36 products
    a tile and channel), within float32's rounding of the loop reference; the weight gradient by
    the implicit kernels (the adjoint's transforms lose a digit on the kernel's outer taps)."""
    from cnnlab.functional import _implicit_grad_w

    x, w, b = _inputs(xs, out_ch, seed=sum(xs) + out_ch, size=5)
    kw = {"padding": padding, "dilation": dilation, "method": "winograd"}
    counts = _counted(monkeypatch)
    implicit = {"grad_w": 0}
    original = _implicit_grad_w.grad_w

    def spy(*args, **kwargs):
        implicit["grad_w"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(_implicit_grad_w, "grad_w", spy)
    _matches_reference(x, w, b, kw, seed=9)
    assert counts == {"correlate": 3, "grad_w": 0}
    assert implicit["grad_w"] == 1


def test_autograd_runs_the_same_kernels(compiled, monkeypatch):
    """Through the autograd engine (the forward keeps its blocked input for the weight gradient)."""
    from cnnlab.autograd import Tensor

    x, w, b = _inputs((2, 16, 9, 10), 24, seed=4)
    counts = _counted(monkeypatch)
    xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, padding=1, method="winograd")
    g = np.random.default_rng(2).uniform(-1, 1, y.shape).astype(np.float32)
    (y * Tensor(g)).sum().backward()
    ry, rx, rw = _reference(x, w, b, g, 1, 1)
    np.testing.assert_allclose(y.data, ry, rtol=1e-5, atol=1e-5 * np.abs(ry).max())
    np.testing.assert_allclose(xt.grad, rx, rtol=1e-5, atol=1e-5 * np.abs(rx).max())
    np.testing.assert_allclose(wt.grad, rw, rtol=1e-5, atol=1e-5 * np.abs(rw).max())
    assert counts == {"correlate": 2, "grad_w": 1}


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("out_ch, channels", [(16, 8), (17, 9), (5, 3)])
def test_transformed_weights_are_g_w_g_transposed(compiled, monkeypatch, out_ch, channels, swap):
    """``U = G w G'`` of every filter and channel (for the input gradient, of the weights turned by
    180 degrees with their channel axes swapped), packed 16 filters to a panel, zeros past the
    last filter and up to a multiple of 8 channels (written by the kernel: its buffer comes from
    ``np.empty``, here full of nan)."""
    monkeypatch.setattr(np, "empty", nan_empty(np.empty))
    w = np.random.default_rng(out_ch).uniform(-2, 2, (out_ch, channels, 3, 3)).astype(np.float32)
    v = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3) if swap else w
    rows, cols = v.shape[:2]
    g = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    u = np.zeros((4, 4, -(-rows // 16) * 16, -(-cols // 8) * 8))
    for o in range(rows):
        for c in range(cols):
            u[:, :, o, c] = g @ v[o, c].astype(np.float64) @ g.T
    want = u.reshape(16, -1, 16, u.shape[3]).transpose(0, 1, 3, 2).astype(np.float32).reshape(-1)
    np.testing.assert_array_equal(_winograd.transformed(w, swap), want)


def _g_of_points(points, taps):
    """G of F(m, taps) for the finite interpolation points ``points`` and infinity, exactly:
    row i maps the taps w to w(p_i) / prod_{j != i} (p_i - p_j), the last row to the last tap."""
    rows = []
    for p in points:
        scale = fractions.Fraction(1)
        for q in points:
            if q != p:
                scale *= p - q
        rows.append([fractions.Fraction(p) ** k / scale for k in range(taps)])
    rows.append([0] * (taps - 1) + [1])
    return np.array([[float(v) for v in row] for row in rows])


def _g5():
    return _g_of_points([0, 1, -1, 2, -2], 5)


def test_five_by_five_matrices_compute_the_correlation():
    """The test's own F(2x2, 5x5) matrices: ``A' [(G w G') * (B' d B)] A`` is the 2 x 2
    correlation of a 6 x 6 tile with a 5 x 5 kernel (in float64), so the checks below hold the
    kernels to a right definition."""
    bt = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                   [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
    at = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]], np.float64)
    g = _g5()
    rng = np.random.default_rng(12)
    d, w = rng.uniform(-2, 2, (6, 6)), rng.uniform(-2, 2, (5, 5))
    want = np.array([[np.sum(d[i:i + 5, j:j + 5] * w) for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(at @ ((g @ w @ g.T) * (bt @ d @ bt.T)) @ at.T, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("out_ch, channels", [(16, 8), (17, 9), (5, 3)])
def test_five_by_five_weights_are_g_w_g_transposed(compiled, monkeypatch, out_ch, channels, swap):
    """F(2x2, 5x5)'s ``U = G w G'`` (36 entries, xi = 6*i + k) of every filter and channel, packed
    as the 3x3 layers' are, against the test's own ``G`` (float64, rounded once), and zeros in the
    padding (written by the kernel: its buffer comes from ``np.empty``, here full of nan)."""
    monkeypatch.setattr(np, "empty", nan_empty(np.empty))
    w = np.random.default_rng(out_ch + 1).uniform(-2, 2, (out_ch, channels, 5, 5)).astype(np.float32)
    v = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3) if swap else w
    rows, cols = v.shape[:2]
    g = _g5()
    u = np.zeros((6, 6, -(-rows // 16) * 16, -(-cols // 8) * 8))
    for o in range(rows):
        for c in range(cols):
            u[:, :, o, c] = g @ v[o, c].astype(np.float64) @ g.T
    want = u.reshape(36, -1, 16, u.shape[3]).transpose(0, 1, 3, 2).astype(np.float32).reshape(-1)
    np.testing.assert_allclose(_winograd.transformed(w, swap), want, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="3x3"):  # (no BLAS layout for 5x5 weights)
        _winograd.transformed(w, swap, blas=True)


@pytest.mark.parametrize("size, dilation, want", [
    (4, 1, [0, 2]), (5, 1, [0, 2, 4]), (1, 1, [0]), (8, 2, [0, 1, 4, 5]), (7, 2, [0, 1, 4, 5]),
    (9, 3, [0, 1, 2, 6, 7, 8]), (2, 3, [0, 1]),
])
def test_tile_bases_cover_every_output_once(size, dilation, want):
    """Each output index is the first or the second (``d`` further) of exactly one tile."""
    bases = _winograd.tile_bases(size, dilation)
    assert bases.tolist() == want
    covered = sorted([int(b) for b in bases] + [int(b) + dilation for b in bases if b + dilation < size])
    assert covered == list(range(size))


@pytest.mark.parametrize("bad", ["weight", "input"])
def test_values_not_finite_match_the_reference(compiled, monkeypatch, bad):
    """The transforms subtract input values (``inf - inf`` is ``nan`` where the defining sum has
    ``inf``): a call with a value that is not finite is run again by the implicit kernels, and
    every result keeps the reference's pattern of nan and inf."""
    x, w, b = _inputs((2, 16, 6, 6), 16, seed=3)
    (w if bad == "weight" else x)[0, 1, 1, 2] = np.inf
    kw = {"padding": 1, "method": "winograd"}
    counts = _counted(monkeypatch)
    y = F.conv2d(x, w, b, **kw)
    g = np.random.default_rng(1).uniform(-1, 1, y.shape).astype(np.float32)
    gx, gw, _ = F.conv_backward(g, x, w, b, **kw)
    ry, rx, rw = _reference(x, w, b, g, 1, 1)
    for got, want in ((y, ry), (gx, rx), (gw, rw)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-4)
    assert counts == {"correlate": 0, "grad_w": 0}


def test_weight_gradient_sums_do_not_depend_on_the_thread(compiled, monkeypatch):
    """Each thread, and each job of the tail, adds into sums of its own, added in a fixed order:
    repeated calls give the same bits, with or without a tail."""
    x, w, b = _inputs((8, 16, 24, 20), 16, seed=11)  # 960 tiles: 20 jobs
    g = np.random.default_rng(4).uniform(-1, 1, (8, 16, 24, 20)).astype(np.float32)
    kw = {"padding": 1, "method": "winograd"}
    rw = _reference(x, w, b, g, 1, 1)[2]
    for tail in (0, 3):
        monkeypatch.setattr(_winograd, "GRAD_W_TAIL", tail)
        first = F.conv_backward(g, x, w, b, **kw)[1]
        np.testing.assert_allclose(first, rw, rtol=1e-5, atol=1e-5 * np.abs(rw).max())
        for _ in range(4):
            np.testing.assert_array_equal(F.conv_backward(g, x, w, b, **kw)[1], first)


@pytest.mark.parametrize("tiles", [6, 12])
def test_jobs_of_fewer_tiles_change_no_value_of_the_forward(compiled, monkeypatch, tiles):
    """Every tile is computed whole by one job, so the forward's bits do not depend on how many
    tiles a job takes (``TILES``)."""
    from cnnlab.functional import _numba_winograd as nw

    x, w, b = _inputs((3, 24, 10, 9), 20, seed=8)
    first = F.conv2d(x, w, b, padding=1, method="winograd")
    monkeypatch.setattr(nw, "TILES", tiles)
    np.testing.assert_array_equal(F.conv2d(x, w, b, padding=1, method="winograd"), first)
    x5, w5, b5 = _inputs((3, 24, 10, 9), 20, seed=8, size=5)
    first = F.conv2d(x5, w5, b5, padding=2, method="winograd")
    monkeypatch.setattr(nw, "TILES_5", tiles)
    np.testing.assert_array_equal(F.conv2d(x5, w5, b5, padding=2, method="winograd"), first)


@pytest.mark.parametrize("case", ["stride 2", "groups 2", "7x7", "3x5", "1-d", "float64", "int64"])
def test_other_layers_take_another_method(compiled, monkeypatch, case):
    """The kernels are for float32 3x3 and 5x5 layers of stride 1 and one group: any other convolution
    asked for with ``method='winograd'`` is computed another way, with the same result."""
    g = np.random.default_rng(3)
    xs, ws, kw = (2, 8, 9, 9), (8, 8, 3, 3), {"padding": 1}
    if case == "stride 2":
        kw["stride"] = 2
    elif case == "groups 2":
        ws, kw["groups"] = (8, 4, 3, 3), 2
    elif case == "7x7":
        ws = (8, 8, 7, 7)
    elif case == "3x5":
        ws, kw["padding"] = (8, 8, 3, 5), (1, 2)
    elif case == "1-d":
        xs, ws = (2, 8, 9), (8, 8, 3)
    dtype = {"float64": np.float64, "int64": np.int64}.get(case, np.float32)
    x = g.integers(-3, 4, xs).astype(dtype)
    w = g.integers(-3, 4, ws).astype(dtype)
    counts = _counted(monkeypatch)
    conv = F.conv1d if case == "1-d" else F.conv2d
    y = conv(x, w, method="winograd", **kw)
    want = conv(x, w, method="gemm", **kw)
    assert y.dtype == want.dtype
    if dtype == np.int64:
        np.testing.assert_array_equal(y, want)
    else:
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    assert counts["correlate"] == 0


def test_float64_upstream_gradient_takes_another_method(compiled):
    x, w, b = _inputs((2, 16, 6, 7), 16, seed=6)
    g = np.random.default_rng(1).uniform(-1, 1, (2, 16, 6, 7))
    gx, gw, _ = F.conv_backward(g, x, w, b, padding=1, method="winograd")
    ry, rx, rw = _reference(x, w, b, g, 1, 1)
    np.testing.assert_allclose(gx, rx, rtol=1e-5, atol=1e-5 * np.abs(rx).max())
    np.testing.assert_allclose(gw, rw, rtol=1e-5, atol=1e-5 * np.abs(rw).max())


def test_without_numba_the_method_is_the_gemm_path(monkeypatch):
    previous = _backend.set_backend("numpy")
    try:
        counts = _counted(monkeypatch)
        x, w, b = _inputs((2, 16, 6, 6), 16, seed=2)
        y = F.conv2d(x, w, b, padding=1, method="winograd")
        np.testing.assert_allclose(y, _reference(x, w, b, None, 1, 1), rtol=1e-5, atol=1e-4)
        assert counts["correlate"] == 0
    finally:
        _backend.set_backend(previous)


@pytest.mark.parametrize("xs, ws, groups, stride, dilation, expected", [
    ((64, 32, 16, 16), (64, 32, 3, 3), 1, (1, 1), (1, 1), "winograd"),  # the 14x14 layer, padded
    ((16, 64, 58, 58), (64, 64, 3, 3), 1, (1, 1), (1, 1), "winograd"),  # the 56x56 layer
    ((32, 32, 32, 32), (32, 32, 3, 3), 1, (1, 1), (2, 2), "winograd"),  # dilated
    ((32, 32, 34, 34), (64, 32, 3, 3), 1, (2, 2), (1, 1), "implicit"),  # stride 2
    ((64, 8, 30, 30), (16, 8, 3, 3), 1, (1, 1), (1, 1), "implicit"),  # 8 channels: below MIN_CHANNELS
    ((8, 512, 16, 16), (512, 512, 3, 3), 1, (1, 1), (1, 1), "winograd"),  # 512 channels (by the BLAS)
    ((8, 640, 16, 16), (640, 640, 3, 3), 1, (1, 1), (1, 1), "gemm"),  # 640 channels: above MAX_CHANNELS
    ((8, 640, 16, 16), (256, 640, 3, 3), 1, (1, 1), (1, 1), "implicit"),  # (256 filters: the implicit kernels)
    ((11, 512, 9, 9), (512, 512, 3, 3), 1, (1, 1), (1, 1), "gemm"),  # 11 * 16 = 176 tiles: below MIN_TILES
    ((64, 32, 16, 16), (64, 16, 3, 3), 2, (1, 1), (1, 1), "implicit"),  # two groups
    ((32, 16, 28, 28), (32, 16, 5, 5), 1, (1, 1), (1, 1), "winograd"),  # 5x5: 4608 tiles
    ((4, 16, 20, 20), (32, 16, 5, 5), 1, (1, 1), (1, 1), "winograd"),  # 4 * 256 = 1024 outputs
    ((3, 16, 20, 20), (32, 16, 5, 5), 1, (1, 1), (1, 1), "implicit"),  # 768 outputs: below MIN_OUTPUTS_5
    ((21, 64, 11, 11), (64, 64, 5, 5), 1, (1, 1), (1, 1), "winograd"),  # 21 * 49 = 1029 outputs
    ((20, 64, 11, 11), (64, 64, 5, 5), 1, (1, 1), (1, 1), "implicit"),  # 980 outputs (in 320 tiles)
    ((8, 64, 18, 18), (64, 64, 5, 5), 1, (1, 1), (1, 1), "winograd"),  # 64 x 64: MAX_CHANNELS_5
    ((8, 65, 18, 18), (64, 65, 5, 5), 1, (1, 1), (1, 1), "implicit"),  # 65 channels: above it
    ((8, 64, 18, 18), (65, 64, 5, 5), 1, (1, 1), (1, 1), "implicit"),  # 65 filters
    ((8, 256, 18, 18), (16, 256, 5, 5), 1, (1, 1), (1, 1), "implicit"),  # 256 x 16
    ((64, 8, 28, 28), (32, 8, 5, 5), 1, (1, 1), (1, 1), "implicit"),  # 8 channels: below MIN_CHANNELS
    ((32, 16, 28, 28), (32, 16, 5, 5), 1, (1, 1), (2, 2), "winograd"),  # dilated: 24 x 24 outputs
    ((32, 16, 28, 28), (32, 16, 7, 7), 1, (1, 1), (1, 1), "implicit"),  # 7x7
    ((4, 64, 16, 16), (64, 64, 3, 3), 1, (1, 1), (1, 1), "winograd"),  # 4 * 49 = 196 tiles
    ((3, 64, 16, 16), (64, 64, 3, 3), 1, (1, 1), (1, 1), "implicit"),  # 147 tiles: below MIN_TILES
])
def test_automatic_rule(compiled, monkeypatch, xs, ws, groups, stride, dilation, expected):
    # (the rule among the other methods: where the FFT's model would take a layer first is
    # test_fft_conv.py's to check)
    monkeypatch.setattr(_fft_conv, "chosen", lambda *args: False)
    assert _conv_kernels.choose_method(xs, ws, groups, stride, np.float32, dilation) == expected


def test_vector_add_and_subtract():
    """vadd / vsub in a compiled function against NumPy, lane by lane."""
    from numba import njit

    from cnnlab.functional._numba_simd import vadd, vload, vstore, vsub

    @njit
    def both(x, out):
        vstore(out, 0, vadd(vload(x, 0), vload(x, 8)))
        vstore(out, 8, vsub(vload(x, 0), vload(x, 8)))

    x = np.random.default_rng(2).uniform(-2, 2, 16).astype(np.float32)
    out = np.full(16, np.nan, np.float32)
    both(x, out)
    np.testing.assert_array_equal(out[:8], x[:8] + x[8:])
    np.testing.assert_array_equal(out[8:], x[:8] - x[8:])


@pytest.mark.parametrize("size", [3, 5])
def test_no_scratch_value_is_read_before_it_is_written(compiled, monkeypatch, size):
    """Every buffer the method allocates uninitialised (blocked copies, transforms, sums, the
    tail jobs' sums, which the jobs zero themselves) is written before it is read: with
    ``np.empty`` handing out arrays full of nan, the results still match the reference."""
    empty = np.empty
    monkeypatch.setattr(_winograd, "GRAD_W_TAIL", 3)
    x, w, b = _inputs((8, 24, 20, 18), 20, seed=13, size=size)  # 720 tiles: 15 jobs of 48 (30 of 24), 3 the tail
    g = np.random.default_rng(5).uniform(-1, 1, (8, 20, 20, 18)).astype(np.float32)
    pad = size // 2
    monkeypatch.setattr(np, "empty", nan_empty(empty))
    counts = _counted(monkeypatch)
    y = F.conv2d(x, w, b, padding=pad, method="winograd")
    gx, gw, _ = F.conv_backward(g, x, w, b, padding=pad, method="winograd")
    monkeypatch.setattr(np, "empty", empty)
    ry, rx, rw = _reference(x, w, b, g, pad, 1)
    for got, want in ((y, ry), (gx, rx), (gw, rw)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert counts == {"correlate": 3, "grad_w": 1 if size == 3 else 0}


@pytest.mark.parametrize("chunk_tiles", [10**6, 5])
@pytest.mark.parametrize("xs, out_ch, padding, dilation", [CASES[i] for i in (0, 1, 3, 4, 6, 8)])
def test_products_by_the_blas_match_the_loop_reference(compiled, monkeypatch, xs, out_ch, padding, dilation,
                                                       chunk_tiles):
    """Large layers run the 16 products as matrix products by the BLAS, between the transforms
    of runs of tiles (``BLAS_MIN_PRODUCT`` and ``GRAD_W_BLAS_MIN_PRODUCT`` 0: every layer here;
    runs of 5 tiles, or all at once): the forward and both gradients agree with the loop reference."""
    monkeypatch.setattr(_winograd, "BLAS_MIN_PRODUCT", 0)
    monkeypatch.setattr(_winograd, "GRAD_W_BLAS_MIN_PRODUCT", 0)
    width = max(-(-xs[1] // 8) * 8, -(-out_ch // 8) * 8)
    monkeypatch.setattr(_winograd, "BLAS_CHUNK_BYTES", chunk_tiles * 16 * 4 * width)
    x, w, b = _inputs(xs, out_ch, seed=sum(xs) + 3 * out_ch)
    kw = {"padding": padding, "dilation": dilation, "method": "winograd"}
    counts = _counted(monkeypatch)
    blas = _counted(monkeypatch, "correlate_by_blas", "grad_w_by_blas")
    _matches_reference(x, w, b, kw, seed=6)
    assert blas == {"correlate_by_blas": 3, "grad_w_by_blas": 1}
    assert counts == {"correlate": 0, "grad_w": 0}


@pytest.mark.parametrize("correlate_least, grad_w_least", [(0, 10**9), (10**9, 0), (20 * 12, 20 * 12 + 1)])
def test_weight_gradient_takes_the_blas_on_its_own_rule(compiled, monkeypatch, correlate_least, grad_w_least):
    """The forward and input gradient (``BLAS_MIN_PRODUCT``) and the weight gradient
    (``GRAD_W_BLAS_MIN_PRODUCT``) choose the BLAS's products apart, each from its own number of
    input channels times filters on (a 12 -> 20 layer: 240); either way the loop reference's values."""
    monkeypatch.setattr(_winograd, "BLAS_MIN_PRODUCT", correlate_least)
    monkeypatch.setattr(_winograd, "GRAD_W_BLAS_MIN_PRODUCT", grad_w_least)
    x, w, b = _inputs((2, 12, 9, 10), 20, seed=41)
    counts = _counted(monkeypatch)
    blas = _counted(monkeypatch, "correlate_by_blas", "grad_w_by_blas")
    _matches_reference(x, w, b, {"padding": 1, "dilation": 1, "method": "winograd"}, seed=7)
    fused_correlations = 3 if correlate_least > 240 else 0
    fused_grad_w = 1 if grad_w_least > 240 else 0
    assert counts == {"correlate": fused_correlations, "grad_w": fused_grad_w}
    assert blas == {"correlate_by_blas": 3 - fused_correlations, "grad_w_by_blas": 1 - fused_grad_w}


def test_blas_weights_are_the_packed_ones_rearranged(compiled, monkeypatch):
    """The BLAS's ``U[xi, c, o]`` holds the same float32 values as the fused kernels' panels
    (both computed in float64 and rounded once), for the forward's and the input gradient's, and
    zeros in its padding (its buffer from ``np.empty``, here full of nan)."""
    monkeypatch.setattr(np, "empty", nan_empty(np.empty))
    w = np.random.default_rng(9).uniform(-2, 2, (20, 12, 3, 3)).astype(np.float32)
    for swap in (False, True):
        rows, cols = (12, 20) if swap else (20, 12)
        packed = _winograd.transformed(w, swap).reshape(16, -(-rows // 16), -(-cols // 8) * 8, 16)
        packed = packed.transpose(0, 2, 1, 3).reshape(16, -(-cols // 8) * 8, -1)[:, :cols, :rows]
        u = _winograd.transformed(w, swap, blas=True)
        assert u.shape == (16, -(-cols // 8) * 8, -(-rows // 8) * 8)
        np.testing.assert_array_equal(u[:, :cols, :rows], packed)
        assert not u[:, cols:].any() and not u[:, :, rows:].any()


@pytest.mark.parametrize("channels, out_ch, sliced", [(7, 5, False), (9, 37, False), (9, 37, True), (1, 1, True)])
def test_weight_gradient_adjoint_is_g_transposed_du_g(compiled, channels, out_ch, sliced):
    """``G' dU G`` of every filter and channel against a float64 loop: filters past one job of 16,
    and ``dU`` read in place from a slice of larger sums (the BLAS's, padded to 8 lanes)."""
    full = np.random.default_rng(10 + out_ch).uniform(-2, 2, (16, channels + 3, out_ch + 5)).astype(np.float32)
    du = full[:, 1:channels + 1, 2:out_ch + 2] if sliced else np.ascontiguousarray(full[:, :channels, :out_ch])
    g = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    want = np.empty((out_ch, channels, 3, 3))
    for o in range(out_ch):
        for c in range(channels):
            want[o, c] = g.T @ du[:, c, o].astype(np.float64).reshape(4, 4) @ g
    np.testing.assert_array_equal(_winograd._adjoint(du, channels, out_ch), want.astype(np.float32))


@pytest.mark.parametrize("size, padding, needs, blocks", [
    (5, 2, (False, True), 0),  # a 5x5 layer's weight gradient alone: the implicit kernels', nothing blocked
    (3, 4, (False, True), 0),  # a padding past the kernel's reach: the same
    (3, 1, (False, True), 1),  # a 3x3 weight gradient reads the blocked upstream gradient
    (5, 2, (True, False), 1),  # so does any input gradient
])
def test_the_upstream_gradient_is_blocked_only_for_a_kernel_that_reads_it(compiled, monkeypatch, size, padding, needs,
                                                                         blocks):
    x, w, _ = _inputs((1, 16, 6, 6), 16, seed=3, size=size)
    out = 6 + 2 * padding - size + 1
    g = np.random.default_rng(2).uniform(-1, 1, (1, 16, out, out)).astype(np.float32)
    pads = ((padding, padding), (padding, padding))
    block = _winograd.blocked(x, [padding, padding], (out, out), (1, 1), size=size)
    calls = []
    original = _winograd.blocked
    monkeypatch.setattr(_winograd, "blocked", lambda *a, **k: calls.append(1) or original(*a, **k))
    gx, gw = _winograd.backward(g, w, x.shape, block, pads, (1, 1), needs)
    assert len(calls) == blocks
    assert (gx is not None) == (needs[0] and blocks == 1)
    assert (gw is not None) == (needs[1] and blocks == 1)
