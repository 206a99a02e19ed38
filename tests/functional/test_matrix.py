"""conv_matrix / conv_transpose_matrix: the matrix equals the operator, its transpose equals the
transposed conv and the input gradient, its structure is (doubly block) Toeplitz, dtypes stay exact.
"""

from __future__ import annotations

import doctest
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.functional import _matrix as matrix_mod
from cnnlab.functional._args import padding_pairs, same_padding
from cnnlab.functional._conv import conv, conv_backward
from cnnlab.functional._conv_transpose import conv_transpose
from cnnlab.functional._correlate import convolve, correlate
from cnnlab.functional._matrix import conv_matrix, conv_transpose_matrix
from cnnlab.functional._naive import naive_conv, naive_correlate

try:
    import scipy.signal as scipy_signal
except ImportError:  # pragma: no cover
    scipy_signal = None

DOCS = Path(__file__).resolve().parents[2] / "docs"
SIGNAL_OPS = {"correlate": correlate, "convolve": convolve}


def _ints(shape, seed, low=-5, high=6):
    return np.random.default_rng(seed).integers(low, high, size=shape)


def _signal_ok(in_shape, k_shape, mode, dilation):
    """Whether the signal op is defined (SciPy's 'valid' rule needs one array to contain the other)."""
    if mode != "valid":
        return True
    spans = [d * (k - 1) + 1 for k, d in zip(k_shape, dilation, strict=True)]
    return all(e <= n for e, n in zip(spans, in_shape, strict=True)) or all(
        e >= n for e, n in zip(spans, in_shape, strict=True)
    )


# ----------------------------------------------------------------------------------------------
# the lecture's example and the Toeplitz structure


def _toeplitz_rows(f, rows, cols, offset=0):
    """The rows x cols matrix with T[i, j] = f[j - i + offset] where that index exists."""
    out = np.zeros((rows, cols), dtype=np.asarray(f).dtype)
    for i in range(rows):
        for j in range(cols):
            if 0 <= j - i + offset < len(f):
                out[i, j] = f[j - i + offset]
    return out


def test_lecture_example_is_doubly_block_toeplitz():
    image = np.array([[1, 0, 2], [3, 1, 0], [0, 0, 4]])
    kernel = np.array([[1, 0], [0, 1]])
    m = conv_matrix(image.shape, kernel)
    assert m.shape == (4, 9)
    assert m.dtype == np.int64
    # Block (a, b) (2 output columns x 3 input columns) maps input row b to output row a: it is
    # the Toeplitz matrix of kernel row b - a, or zero when there is no such row.
    for a in range(2):
        for b in range(3):
            block = m[2 * a : 2 * a + 2, 3 * b : 3 * b + 3]
            if 0 <= b - a < 2:
                expected = _toeplitz_rows(kernel[b - a], 2, 3)
            else:
                expected = np.zeros((2, 3), dtype=int)
            np.testing.assert_array_equal(block, expected)
    # By hand: [1*1 + 1*1, 0*1 + 0*1, 3*1 + 0*1, 1*1 + 4*1] (top-left and bottom-right taps).
    np.testing.assert_array_equal(m @ image.ravel(), [2, 0, 3, 5])


@pytest.mark.parametrize("mode", ["valid", "same", "full"])
@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("seed", range(4))
def test_2d_stride1_matrix_is_doubly_block_toeplitz(mode, op, seed):
    rng = np.random.default_rng(seed)
    in_shape = tuple(int(v) for v in rng.integers(3, 6, size=2))
    k_shape = tuple(int(v) for v in rng.integers(1, 4, size=2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, size=2))
    if not _signal_ok(in_shape, k_shape, mode, dilation):
        dilation = (1, 1)
    kernel = _ints(k_shape, seed)
    m = conv_matrix(in_shape, kernel, op=op, mode=mode, dilation=dilation)
    out_shape = SIGNAL_OPS[op](np.zeros(in_shape), kernel, mode, dilation=dilation).shape
    m4 = m.reshape(out_shape[0], out_shape[1], in_shape[0], in_shape[1])
    # Entry ((a, i), (b, j)) depends only on (b - a, j - i): Toeplitz blocks arranged Toeplitz.
    seen = {}
    for a, i, b, j in np.ndindex(*m4.shape):
        key = (b - a, j - i)
        seen.setdefault(key, m4[a, i, b, j])
        assert m4[a, i, b, j] == seen[key]
    # And every non-zero entry is a kernel value.
    assert set(np.unique(m[m != 0])) <= set(np.unique(kernel))


# ----------------------------------------------------------------------------------------------
# M @ x equals the operator


@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("mode", ["valid", "same", "full"])
@pytest.mark.parametrize(
    ("in_shape", "k_shape", "stride", "dilation"),
    [
        ((7,), (3,), 1, 1),
        ((8,), (4,), 2, 1),
        ((9,), (2,), 3, 2),
        ((2,), (5,), 1, 1),  # kernel larger than the input
        ((5, 6), (2, 3), 1, 1),
        ((6, 5), (3, 2), (2, 1), (1, 2)),
        ((4, 4), (4, 4), 1, 1),
        ((3, 4, 5), (2, 2, 3), (1, 2, 2), (2, 1, 1)),
    ],
)
def test_signal_matrix_equals_operator(op, mode, in_shape, k_shape, stride, dilation):
    x = _ints(in_shape, 1)
    k = _ints(k_shape, 2)
    n = len(in_shape)
    dil = (dilation,) * n if isinstance(dilation, int) else dilation
    m = conv_matrix(in_shape, k, op=op, mode=mode, stride=stride, dilation=dilation)
    y = SIGNAL_OPS[op](x, k, mode, stride, dilation)
    np.testing.assert_array_equal(m @ x.ravel(), y.ravel())
    assert m.shape == (y.size, x.size)
    # Loop reference (convolve is correlate with the kernel flipped on every axis).
    kr = k if op == "correlate" else np.flip(k)
    st_t = (stride,) * n if isinstance(stride, int) else stride
    spans = [d * (kk - 1) + 1 for kk, d in zip(k_shape, dil, strict=True)]
    if all(e <= s for e, s in zip(spans, in_shape, strict=True)):
        ref = naive_correlate(x, kr, mode, st_t, dil)
        np.testing.assert_array_equal(m @ x.ravel(), ref.ravel())


@pytest.mark.skipif(scipy_signal is None, reason="SciPy not installed")
@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("mode", ["valid", "same", "full"])
@pytest.mark.parametrize("shapes", [((6,), (3,)), ((5, 4), (2, 3)), ((4, 5), (3, 3)), ((2, 3), (4, 4))])
def test_signal_matrix_equals_scipy(op, mode, shapes):
    in_shape, k_shape = shapes
    x, k = _ints(in_shape, 3), _ints(k_shape, 4)
    ref = getattr(scipy_signal, op)(x, k, mode=mode, method="direct")
    m = conv_matrix(in_shape, k, op=op, mode=mode)
    np.testing.assert_array_equal(m @ x.ravel(), ref.ravel())


@st.composite
def signal_cases(draw):
    n = draw(st.integers(1, 3))
    in_shape = tuple(draw(st.lists(st.integers(1, 6), min_size=n, max_size=n)))
    k_shape = tuple(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)))
    stride = tuple(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)))
    dilation = tuple(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)))
    mode = draw(st.sampled_from(["valid", "same", "full"]))
    op = draw(st.sampled_from(["correlate", "convolve"]))
    seed = draw(st.integers(0, 2**16))
    return in_shape, k_shape, stride, dilation, mode, op, seed


@given(signal_cases())
def test_signal_matrix_equals_operator_random(case):
    in_shape, k_shape, stride, dilation, mode, op, seed = case
    x, k = _ints(in_shape, seed), _ints(k_shape, seed + 1)
    try:
        y = SIGNAL_OPS[op](x, k, mode, stride, dilation)
    except ValueError:
        # Undefined for the operator: the matrix must refuse too.
        with pytest.raises(ValueError, match="conv_matrix"):
            conv_matrix(in_shape, k, op=op, mode=mode, stride=stride, dilation=dilation)
        return
    m = conv_matrix(in_shape, k, op=op, mode=mode, stride=stride, dilation=dilation)
    np.testing.assert_array_equal(m @ x.ravel(), y.ravel())


def _padding_values(draw, n):
    kind = draw(st.sampled_from(["int", "tuple", "pairs", "same", "valid"]))
    if kind == "int":
        return draw(st.integers(0, 2))
    if kind == "tuple":
        return tuple(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    if kind == "pairs":
        pair = st.tuples(st.integers(0, 2), st.integers(0, 2))
        return tuple(draw(st.lists(pair, min_size=n, max_size=n)))
    return kind


@st.composite
def conv_cases(draw):
    n = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    channels = groups * draw(st.integers(1, 2))
    out_ch = groups * draw(st.integers(1, 2))
    sp = tuple(draw(st.lists(st.integers(1, 6 if n < 3 else 4), min_size=n, max_size=n)))
    kernel = tuple(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)))
    stride = tuple(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)))
    dilation = tuple(draw(st.lists(st.integers(1, 2), min_size=n, max_size=n)))
    padding = _padding_values(draw, n)
    seed = draw(st.integers(0, 2**16))
    return channels, out_ch, groups, sp, kernel, stride, dilation, padding, seed


def _conv_case_arrays(case):
    channels, out_ch, groups, sp, kernel, stride, dilation, padding, seed = case
    x = _ints((channels, *sp), seed)
    w = _ints((out_ch, channels // groups, *kernel), seed + 1)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, w, kwargs


@given(conv_cases())
def test_conv_matrix_equals_conv_random(case):
    x, w, kwargs = _conv_case_arrays(case)
    try:
        y = conv(x, w, **kwargs)
    except ValueError:
        with pytest.raises(ValueError, match="conv_matrix"):
            conv_matrix(x.shape, w, op="conv", **kwargs)
        return
    m = conv_matrix(x.shape, w, op="conv", **kwargs)
    np.testing.assert_array_equal(m @ x.ravel(), y.ravel())


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(padding=1),
        dict(padding=((0, 2), (1, 0))),
        dict(padding="same"),
        dict(padding="same", stride=2),
        dict(padding="valid", stride=(2, 1)),
        dict(padding=(2, 1), dilation=2),
        dict(padding=1, stride=2, dilation=(1, 2), groups=2),
    ],
)
def test_conv_matrix_equals_loop_reference(kwargs):
    x = _ints((2, 5, 6), 5)
    groups = kwargs.get("groups", 1)
    w = _ints((4, 2 // groups, 3, 2), 6)
    m = conv_matrix(x.shape, w, op="conv", **kwargs)
    y = conv(x, w, **kwargs)
    np.testing.assert_array_equal(m @ x.ravel(), y.ravel())
    # Independent oracle: the loop reference with the padding conv() resolved.
    padding = kwargs.get("padding", 0)
    stride = kwargs.get("stride", 1)
    stride = (stride,) * 2 if isinstance(stride, int) else stride
    dilation = kwargs.get("dilation", 1)
    dilation = (dilation,) * 2 if isinstance(dilation, int) else dilation
    if padding == "same":
        pads = same_padding(x.shape[1:], w.shape[2:], stride, dilation)
    elif padding == "valid":
        pads = ((0, 0), (0, 0))
    else:
        pads = padding_pairs("test", padding, 2)
    ref = naive_conv(x[None], w, None, stride, pads, dilation, groups)[0]
    np.testing.assert_array_equal(m @ x.ravel(), ref.ravel())


def test_conv_matrix_equals_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 7, 6))
    w = rng.standard_normal((6, 2, 3, 2))
    m = conv_matrix(x.shape, w, op="conv", stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    ref = torch.nn.functional.conv2d(
        torch.from_numpy(x[None]), torch.from_numpy(w), stride=(2, 1), padding=(1, 2),
        dilation=(1, 2), groups=2,
    )[0].numpy()
    np.testing.assert_allclose(m @ x.ravel(), ref.ravel(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# M.T is the transposed convolution and the input gradient


def _output_padding(in_sp, out_sp, kernel, stride, pads, dilation):
    """The output_padding that makes conv_transpose map out_sp back to exactly in_sp."""
    return tuple(
        n - ((o - 1) * s - lo - hi + d * (k - 1) + 1)
        for n, o, k, s, (lo, hi), d in zip(in_sp, out_sp, kernel, stride, pads, dilation, strict=True)
    )


@given(conv_cases())
def test_transpose_equals_conv_transpose_and_grad_x(case):
    x, w, kwargs = _conv_case_arrays(case)
    try:
        y = conv(x, w, **kwargs)
    except ValueError:
        return
    n = w.ndim - 2
    stride, dilation = kwargs["stride"], kwargs["dilation"]
    padding = kwargs["padding"]
    if padding == "same":
        pads = same_padding(x.shape[1:], w.shape[2:], stride, dilation)
    elif padding == "valid":
        pads = ((0, 0),) * n
    else:
        pads = padding_pairs("test", padding, n)
    g = _ints(y.shape, case[-1] + 2)
    m = conv_matrix(x.shape, w, op="conv", **kwargs)
    back = m.T @ g.ravel()

    grad_x = conv_backward(g, x, w, **kwargs)[0]
    np.testing.assert_array_equal(back, grad_x.ravel())

    out_pad = _output_padding(x.shape[1:], y.shape[1:], w.shape[2:], stride, pads, dilation)
    xt = conv_transpose(
        g, w, stride=stride, padding=pads, output_padding=out_pad, groups=kwargs["groups"],
        dilation=dilation,
    )
    assert xt.shape == x.shape
    np.testing.assert_array_equal(back, xt.ravel())

    t = conv_transpose_matrix(
        g.shape, w, stride=stride, padding=pads, output_padding=out_pad,
        groups=kwargs["groups"], dilation=dilation,
    )
    np.testing.assert_array_equal(t, m.T)
    np.testing.assert_array_equal(t @ g.ravel(), xt.ravel())


@pytest.mark.parametrize("mode", ["valid", "same", "full"])
def test_signal_transpose_is_adjoint(mode):
    # <M x, g> == <x, M.T g> for the signal ops too: M.T maps output-shaped arrays to inputs.
    x, k = _ints((5, 6), 8), _ints((2, 3), 9)
    m = conv_matrix(x.shape, k, op="convolve", mode=mode, stride=(1, 2))
    y = convolve(x, k, mode, (1, 2))
    g = _ints(y.shape, 10)
    assert int(np.sum(y * g)) == int(x.ravel() @ (m.T @ g.ravel()))


# ----------------------------------------------------------------------------------------------
# dtypes and exactness


def test_integer_kernel_gives_exact_int64():
    big = 2**40
    x = np.array([[big + 1, -big + 3, 7], [5, big - 1, 2**39 + 1]], dtype=np.int64)
    k = np.array([[2**14 + 1, 3]], dtype=np.int32)
    m = conv_matrix(x.shape, k, mode="full")
    assert m.dtype == np.int64
    exact = naive_correlate(x.astype(object), k.astype(object), "full", (1, 1), (1, 1))
    assert [int(v) for v in m @ x.ravel()] == [int(v) for v in exact.ravel()]
    # float64 arithmetic would not be exact here (products exceed 2**53).
    assert any(abs(int(v)) > 2**53 for v in exact.ravel())


@pytest.mark.parametrize(
    ("kernel_dtype", "expected"),
    [(np.float32, np.float32), (np.float64, np.float64), (np.uint8, np.int64), (bool, np.int64)],
)
def test_matrix_dtype(kernel_dtype, expected):
    k = np.ones((2, 2), dtype=kernel_dtype)
    assert conv_matrix((3, 3), k).dtype == expected
    w = np.ones((1, 1, 2), dtype=kernel_dtype)
    assert conv_matrix((1, 4), w, op="conv").dtype == expected
    assert conv_transpose_matrix((1, 4), w).dtype == expected


# ----------------------------------------------------------------------------------------------
# errors


ERRORS = [
    (dict(input_shape=(3, 3), kernel=np.ones((2, 2)), op="corr"), ValueError, "conv_matrix: op"),
    (dict(input_shape=(3, 3), kernel=np.ones((2, 2)), op=1), TypeError, "conv_matrix: op"),
    (dict(input_shape=(3, 3), kernel=np.ones((2, 2)), mode="wide"), ValueError, "mode"),
    (dict(input_shape=(3,), kernel=np.ones((2, 2))), ValueError, "input_shape must have 2"),
    (dict(input_shape="33", kernel=np.ones((2, 2))), TypeError, "input_shape"),
    (dict(input_shape=(3, 2.5), kernel=np.ones((2, 2))), TypeError, "input_shape"),
    (dict(input_shape=(3, 0), kernel=np.ones((2, 2))), ValueError, "input_shape must be positive"),
    (dict(input_shape=(3, 3), kernel="ab"), TypeError, "kernel"),
    (dict(input_shape=(3, 3), kernel=np.ones((2, 2)), padding=1), ValueError, "padding is used by"),
    (dict(input_shape=(3, 3), kernel=np.ones((2, 2)), groups=2), ValueError, "groups is used by"),
    (dict(input_shape=(3, 3), kernel=np.ones((2, 2)), stride=0), ValueError, "stride"),
    (dict(input_shape=(3, 3), kernel=np.ones((2, 2)), dilation=(1, 1, 1)), ValueError, "dilation"),
    (dict(input_shape=(2, 5), kernel=np.ones((3, 3))), ValueError, "'valid'"),
    (dict(input_shape=(1, 3, 3), kernel=np.ones((1, 1, 2, 2)), op="conv", mode="same"),
     ValueError, "mode is used by"),
    (dict(input_shape=(3, 3), kernel=np.ones((2, 2)), op="conv"), ValueError, r"\(O, C/groups"),
    (dict(input_shape=(3, 3), kernel=np.ones((1, 1, 2, 2)), op="conv"), ValueError,
     "input_shape must have 3"),
    (dict(input_shape=(3, 4, 4), kernel=np.ones((2, 3, 2, 2)), op="conv", groups=2), ValueError,
     "in_channels 3 is not divisible by groups 2"),
    (dict(input_shape=(4, 4, 4), kernel=np.ones((3, 2, 2, 2)), op="conv", groups=2), ValueError,
     "out_channels 3 is not divisible by groups 2"),
    (dict(input_shape=(4, 4, 4), kernel=np.ones((2, 4, 2, 2)), op="conv", groups=2), ValueError,
     "in_channels / groups = 2"),
    (dict(input_shape=(1, 4, 4), kernel=np.ones((1, 1, 2, 2)), op="conv", groups=1.0), TypeError,
     "groups"),
    (dict(input_shape=(1, 4, 4), kernel=np.ones((1, 1, 2, 2)), op="conv", padding="full"),
     ValueError, "padding must be"),
    (dict(input_shape=(1, 4, 4), kernel=np.ones((1, 1, 2, 2)), op="conv", padding=-1), ValueError,
     "padding"),
    (dict(input_shape=(1, 2, 2), kernel=np.ones((1, 1, 3, 3)), op="conv"), ValueError,
     "kernel is larger than the padded input"),
    (dict(input_shape=(1, 4, 4), kernel=np.ones((1, 1, 2, 2)), op="conv", padding_mode="reflect"),
     ValueError, "padding_mode must be 'zeros'"),
    (dict(input_shape=(1, 4, 4), kernel=np.ones((1, 1, 2, 2)), op="conv", padding_mode="mirror"),
     ValueError, "padding_mode"),
]


@pytest.mark.parametrize(("kwargs", "exc", "match"), ERRORS)
def test_conv_matrix_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        conv_matrix(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(input_shape=(2, 3), weight=np.ones((2, 2))), ValueError, "C_in, O/groups"),
        (dict(input_shape=(3, 3), weight=np.ones((2, 1, 2))), ValueError, "in_channels = 3"),
        (dict(input_shape=(3, 3), weight=np.ones((3, 1, 2)), groups=2), ValueError, "divisible"),
        (dict(input_shape=(1, 3), weight=np.ones((1, 1, 2)), output_padding=1), ValueError,
         "output_padding must be smaller"),
        (dict(input_shape=(1, 2), weight=np.ones((1, 1, 2)), padding=2), ValueError,
         "output size"),
        (dict(input_shape=(1, 2), weight=np.ones((1, 1, 2)), padding="same"), ValueError,
         "padding"),
    ],
)
def test_conv_transpose_matrix_errors(kwargs, exc, match):
    with pytest.raises(exc, match=f"conv_transpose_matrix: .*{match}"):
        conv_transpose_matrix(**kwargs)


def test_too_large_matrix_is_refused():
    side = math.isqrt(matrix_mod.MAX_ENTRIES) // 8 + 1
    with pytest.raises(ValueError, match="matrix form is meant for small examples"):
        conv_matrix((side * 8, 8), np.ones((1, 1)), mode="same")


# ----------------------------------------------------------------------------------------------
# documentation


def test_matrix_form_doc():
    result = doctest.testfile(
        str(DOCS / "matrix-form.md"),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 0 and result.failed == 0
