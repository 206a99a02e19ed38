"""Worked solutions: the lecture's example in every format, random pipelines checked cell by cell
against the library's operators (and torch's where installed), exact rationals, errors, docs."""

from __future__ import annotations

import doctest
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.explain import (
    Activation,
    ActivationStage,
    Comparison,
    Conv,
    ConvStage,
    Pool,
    PoolStage,
    Solution,
    compare,
    explain,
    lecture_example,
)
from cnnlab.explain._parse import MatrixError, parse_matrix

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - the torch oracle is optional
    torch = None

DOCS = Path(__file__).resolve().parents[2] / "docs"
LECTURE_I = [[1, 0, 2], [3, 1, 0], [0, 0, 4]]
LECTURE_F = [[1, 0], [0, 1]]


def _no_style(text: str) -> str:
    return re.sub(r"<style>.*?</style>", "", text, flags=re.S)


# ---------------------------------------------------------------------------------------------
# the lecture's example


def test_lecture_numbers_are_exact_integers():
    sol = lecture_example()
    conv, act, pool = sol.stages
    assert isinstance(conv, ConvStage) and isinstance(act, ActivationStage)
    assert isinstance(pool, PoolStage)
    assert conv.output.dtype == np.int64
    assert conv.output[0].tolist() == [[2, 0], [3, 5]]
    assert act.output[0].tolist() == [[2, 0], [3, 5]]
    assert pool.output.dtype == np.int64
    assert sol.answer == 5 and type(sol.answer) is int
    # the four windows, products and sums the lecture writes out
    expected = {
        (0, 0): ([[1, 0], [3, 1]], 2),
        (0, 1): ([[0, 2], [1, 0]], 0),
        (1, 0): ([[3, 1], [0, 0]], 3),
        (1, 1): ([[1, 0], [0, 4]], 5),
    }
    assert len(conv.cells) == 4
    for cell in conv.cells:
        window, total = expected[cell.index[1:]]
        assert cell.window[0].tolist() == window
        assert cell.products[0].tolist() == (np.array(window) * np.array(LECTURE_F)).tolist()
        assert cell.value == total == cell.products.sum()
    (cell,) = pool.cells
    assert cell.terms == [2, 0, 3, 5]
    assert cell.value == 5 and cell.chosen == (1, 1)
    # F is symmetric under a 180-degree rotation, so the true convolution agrees
    assert conv.symmetric
    assert conv.other_output[0].tolist() == [[2, 0], [3, 5]]
    assert sol.alternative.ravel().tolist() == [5]


LECTURE_LINES = {
    "text": [
        "Conv(I)[0,0] = 1*1 + 0*0 + 3*0 + 1*1 = 1 + 0 + 0 + 1 = 2",
        "Conv(I)[0,1] = 0*1 + 2*0 + 1*0 + 0*1 = 0 + 0 + 0 + 0 = 0",
        "Conv(I)[1,0] = 3*1 + 1*0 + 0*0 + 0*1 = 3 + 0 + 0 + 0 = 3",
        "Conv(I)[1,1] = 1*1 + 0*0 + 0*0 + 4*1 = 1 + 0 + 0 + 4 = 5",
        "Conv(I) = | 2  0 |",
        "          | 3  5 |",
        "Pool(ReLU(Conv(I)))[0,0] = max(2, 0, 3, 5) = 5",
        "Pool(ReLU(Conv(I))) = 5",
        "flip(F) = | 1  0 |",
    ],
    "md": [
        "`Conv(I)[0,0] = 1*1 + 0*0 + 3*0 + 1*1 = 1 + 0 + 0 + 1 = 2`",
        "`Conv(I)[1,1] = 1*1 + 0*0 + 0*0 + 4*1 = 1 + 0 + 0 + 4 = 5`",
        "| 0 | 2 | 0 |\n| 1 | 3 | 5 |",
        "| 0 | **1** | **0** | 2 |\n| 1 | **3** | **1** | 0 |\n| 2 | 0 | 0 | 4 |",
        "`Pool(ReLU(Conv(I)))[0,0] = max(2, 0, 3, 5) = 5",
        "`Pool(ReLU(Conv(I))) = 5`",
    ],
    "latex": [
        r"I = {\begin{bmatrix} 1 & 0 & 2 \\ 3 & 1 & 0 \\ 0 & 0 & 4 \end{bmatrix}}",
        r"F = {\begin{bmatrix} 1 & 0 \\ 0 & 1 \end{bmatrix}}",
        r"\begin{bmatrix} \boxed{1} & \boxed{0} & 2 \\ \boxed{3} & \boxed{1} & 0 \\ 0 & 0 & 4 \end{bmatrix}",
        r"\mathrm{Conv}(I)[0,0] = 1 \cdot 1 + 0 \cdot 0 + 3 \cdot 0 + 1 \cdot 1 = 1 + 0 + 0 + 1 = 2",
        r"\mathrm{Conv}(I) = {\begin{bmatrix} 2 & 0 \\ 3 & 5 \end{bmatrix}}",
        r"\max\left(2, 0, 3, 5\right) = 5",
        r"\mathrm{Pool}(\mathrm{ReLU}(\mathrm{Conv}(I))) = 5",
    ],
    "html": [
        "Conv(I)[0,0] = 1&middot;1 + 0&middot;0 + 3&middot;0 + 1&middot;1 = 1 + 0 + 0 + 1 = 2",
        "<tr><td>2</td><td>0</td></tr><tr><td>3</td><td>5</td></tr>",
        '<tr><td class="cnnlab-window">1</td><td class="cnnlab-window">0</td><td>2</td></tr>',
        "Pool(ReLU(Conv(I)))[0,0] = max(2, 0, 3, 5) = 5",
    ],
}


@pytest.mark.parametrize("fmt", sorted(LECTURE_LINES))
def test_lecture_in_every_format(fmt):
    # LaTeX may break a long equation into lines and allow breaks in long names
    text = lecture_example().render(fmt).replace(" \\\\\n", " ").replace("\\allowbreak{}", "")
    for line in LECTURE_LINES[fmt]:
        assert line in text, line
    # integers stay integers: no "2.0" or "5.0" anywhere
    assert re.search(r"\d\.\d", _no_style(text)) is None


def test_lecture_repr_hooks_and_str():
    sol = lecture_example()
    assert str(sol) == sol.to_text()
    assert sol._repr_html_().startswith('<div class="cnnlab-solution">')
    latex = sol._repr_latex_()
    assert latex.startswith("$$") and latex.endswith("$$")
    assert r"\max\left(2, 0, 3, 5\right) = 5" in latex
    assert "Solution" in repr(sol)


def test_text_highlights_window_and_colours_only_on_request():
    sol = lecture_example()
    plain = sol.to_text()
    assert "| [1] [0]  2  |" in plain and "\x1b[" not in plain
    coloured = sol.to_text(color=True)
    assert "\x1b[1m[1]\x1b[0m" in coloured


def test_cells_limit_keeps_summary_and_matrices():
    text = lecture_example().to_text(cells=1)
    assert text.index("Summary") < text.index("Step 1")
    assert len(re.findall(r"^  Conv\(I\)\[\d,\d\] = ", text, flags=re.M)) == 1
    assert "3 more cell(s) not shown" in text
    assert "Conv(I) = | 2  0 |" in text
    assert "Answer: Pool(ReLU(Conv(I))) = 5" in text


# ---------------------------------------------------------------------------------------------
# random pipelines: every number equals the library's (and torch's)

ACTS = ["relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh"]


def _random_pipeline(rng: np.random.Generator, floats: bool):
    while True:
        c, o = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        h, w = (int(v) for v in rng.integers(3, 8, 2))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        x = rng.integers(-4, 5, (c, h, w))
        weight = rng.integers(-3, 4, (o, c, kh, kw))
        if floats:
            x = x + rng.random(x.shape).round(2)
        padding = [0, 1, (1, 0), ((0, 1), (2, 0)), "same", "valid", "full"][rng.integers(7)]
        conv = Conv(
            weight, mode=["correlate", "convolve"][rng.integers(2)],
            stride=tuple(int(v) for v in rng.integers(1, 3, 2)),
            padding=padding, dilation=tuple(int(v) for v in rng.integers(1, 3, 2)),
            bias=None if rng.random() < 0.5 else rng.integers(-2, 3, o),
        )
        stages: list = [conv]
        if rng.random() < 0.8:
            stages.append(Activation(ACTS[rng.integers(len(ACTS))],
                                     approximate=["none", "tanh"][rng.integers(2)]))
        if rng.random() < 0.8:
            kind = ["max", "avg"][rng.integers(2)]
            k = int(rng.integers(1, 4))
            stages.append(Pool(
                kind, k, stride=[None, 1, 2][rng.integers(3)], padding=int(rng.integers(0, k // 2 + 1)),
                dilation=1 if kind == "avg" else int(rng.integers(1, 3)),
                ceil_mode=bool(rng.random() < 0.4), count_include_pad=bool(rng.random() < 0.5),
            ))
        try:
            return x, stages, explain(x, stages)
        except ValueError:
            continue


def _pads(stage: ConvStage):
    return [(int(lo), int(hi)) for lo, hi in stage.pads]


def _check_conv_cells(st: ConvStage):
    (rlo, rhi), (clo, chi) = _pads(st)
    xpad = np.pad(st.input, ((0, 0), (rlo, rhi), (clo, chi)))  # independent of _windows.pad
    exact = st.output.dtype != np.float64 and st.output.dtype != np.float32
    for cell in st.cells:
        o, i, j = cell.index
        window = xpad[:, list(cell.rows)][:, :, list(cell.cols)]
        assert np.array_equal(cell.window, window)
        assert np.array_equal(cell.kernel, st.applied[o])
        assert np.array_equal(cell.products, window * st.applied[o])
        total = cell.products.sum() + (0 if cell.bias is None else cell.bias)
        assert cell.value == st.output[o, i, j]
        if exact:
            assert total == cell.value
        else:
            assert np.isclose(float(total), float(cell.value), rtol=1e-12, atol=1e-12)


def _check_pool_cells(st: PoolStage):
    for cell in st.cells:
        c, i, j = cell.index
        assert cell.value == st.output[c, i, j]
        inside = [v for v, r in zip(cell.window.ravel(), cell.roles.ravel(), strict=True) if r == 0]
        if st.pool == "max":
            assert cell.terms == inside
            assert cell.value == max(cell.terms)
            # the chosen cell holds the value and is the first maximum in row-major order
            assert st.grid[c][cell.chosen] == cell.value
            first = next(k for k, v in enumerate(cell.window.ravel()) if v == cell.value)
            assert (cell.rows[first // len(cell.cols)], cell.cols[first % len(cell.cols)]) == cell.chosen
        else:
            expect_div = len(cell.terms) if st.divisor_override is None else st.divisor_override
            assert cell.divisor == expect_div
            if st.input.dtype.kind in "iuO":
                assert Fraction(sum(cell.terms, Fraction(0))) / cell.divisor == cell.value
            else:
                assert np.isclose(sum(cell.terms) / cell.divisor, cell.value, rtol=1e-12)


def _library_chain(x: np.ndarray, stages: list) -> list[np.ndarray]:
    """The pipeline run on the library's public operators, float64 throughout."""
    outs = []
    y = np.asarray(x, dtype=np.float64)
    if y.ndim == 2:
        y = y[None]
    for s in stages:
        if isinstance(s, Conv):
            w = np.asarray(s.filters, dtype=np.float64)
            if s.mode == "convolve":
                w = w[..., ::-1, ::-1].copy()
            y = F.conv2d(y, w, None if s.bias is None else np.asarray(s.bias, dtype=np.float64),
                         stride=s.stride, padding=_conv_pads_of(s, y, w), dilation=s.dilation)
        elif isinstance(s, Activation):
            kwargs = {"approximate": s.approximate} if s.name == "gelu" else {}
            y = getattr(F, s.name)(y, **kwargs)
        else:
            fn = F.max_pool2d if s.kind == "max" else F.avg_pool2d
            if s.kind == "max":
                y = fn(y, s.kernel_size, s.stride, s.padding, s.dilation, s.ceil_mode)
            else:
                y = fn(y, s.kernel_size, s.stride, s.padding, s.ceil_mode, s.count_include_pad)
        outs.append(y)
    return outs


def _conv_pads_of(s: Conv, y: np.ndarray, w: np.ndarray):
    if s.padding == "full":
        d = (s.dilation,) * 2 if isinstance(s.dilation, int) else s.dilation
        return tuple((di * (k - 1), di * (k - 1)) for di, k in zip(d, w.shape[2:], strict=True))
    return s.padding


def _as_float(a: np.ndarray) -> np.ndarray:
    return np.array([float(v) for v in a.ravel()]).reshape(a.shape)


@pytest.mark.parametrize("floats", [False, True], ids=["int", "float"])
def test_random_pipelines_match_library_cell_by_cell(floats):
    rng = np.random.default_rng(1234 + floats)
    for _ in range(25):
        x, stages, sol = _random_pipeline(rng, floats)
        expected = _library_chain(x, stages)
        for st, want in zip(sol.stages, expected, strict=True):
            assert st.output.shape == want.shape
            np.testing.assert_allclose(_as_float(st.output), want, rtol=1e-9, atol=1e-12)
            if isinstance(st, ConvStage):
                _check_conv_cells(st)
                assert [d.out for d in st.shape] == list(st.output.shape[1:])
            elif isinstance(st, PoolStage):
                _check_pool_cells(st)
                assert [d.out for d in st.shape] == list(st.output.shape[1:])
            if not floats and isinstance(st, ConvStage):
                assert st.output.dtype == np.int64
        assert all(fmt_text for fmt_text in (sol.render(f, cells=2) for f in ("text", "md", "latex", "html")))


def _torch_chain(x: np.ndarray, stages: list) -> list[np.ndarray]:
    outs = []
    y = torch.tensor(np.asarray(x, dtype=np.float64))
    if y.ndim == 2:
        y = y[None]
    y = y[None]
    for s in stages:
        if isinstance(s, Conv):
            w = torch.tensor(np.asarray(s.filters, dtype=np.float64))
            if s.mode == "convolve":
                w = w.flip(-1, -2)
            d = (s.dilation,) * 2 if isinstance(s.dilation, int) else s.dilation
            if s.padding == "same":
                # SAME_UPPER: total padding from out = ceil(in / stride), odd cell at the end
                pads = []
                st = (s.stride,) * 2 if isinstance(s.stride, int) else s.stride
                for size, k, si, di in zip(y.shape[2:], w.shape[2:], st, d, strict=True):
                    out = -(-size // si)
                    total = max((out - 1) * si + di * (k - 1) + 1 - size, 0)
                    pads.append((total // 2, total - total // 2))
            elif s.padding == "valid":
                pads = [(0, 0), (0, 0)]
            elif s.padding == "full":
                pads = [(di * (k - 1),) * 2 for di, k in zip(d, w.shape[2:], strict=True)]
            elif isinstance(s.padding, int):
                pads = [(s.padding, s.padding)] * 2
            else:
                pads = [p if isinstance(p, tuple) else (p, p) for p in s.padding]
            y = TF.pad(y, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
            b = None if s.bias is None else torch.tensor(np.asarray(s.bias, dtype=np.float64))
            y = TF.conv2d(y, w, b, stride=s.stride, dilation=s.dilation)
        elif isinstance(s, Activation):
            y = {"relu": torch.relu, "leaky_relu": TF.leaky_relu, "elu": TF.elu,
                 "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                 "gelu": lambda t, a=s.approximate: TF.gelu(t, approximate=a)}[s.name](y)
        elif s.kind == "max":
            y = TF.max_pool2d(y, s.kernel_size, s.stride, s.padding, s.dilation, s.ceil_mode)
        else:
            y = TF.avg_pool2d(y, s.kernel_size, s.stride, s.padding, s.ceil_mode,
                              s.count_include_pad)
        outs.append(y[0].numpy())
    return outs


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_random_pipelines_match_torch():
    rng = np.random.default_rng(99)
    for floats in (False, True):
        for _ in range(20):
            x, stages, sol = _random_pipeline(rng, floats)
            for st, want in zip(sol.stages, _torch_chain(x, stages), strict=True):
                np.testing.assert_allclose(_as_float(st.output), want, rtol=1e-9, atol=1e-12)
            if sol.alternative is not None:
                flipped = [Conv(s.filters, "convolve" if s.mode == "correlate" else "correlate",
                                s.stride, s.padding, s.dilation, s.bias) if isinstance(s, Conv)
                           else s for s in stages]
                want = _torch_chain(x, flipped)[-1]
                np.testing.assert_allclose(_as_float(sol.alternative), want, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# exact rationals


def test_average_pooling_of_integers_gives_exact_fractions():
    sol = explain([[1, 2, 1], [0, 0, 1]], [Pool("avg", (1, 3), stride=1)])
    assert sol.output.tolist() == [[Fraction(4, 3)], [Fraction(1, 3)]]
    assert all(type(v) is Fraction for v in sol.output.ravel())
    text = sol.to_text()
    assert "(1 + 2 + 1) / 3 = 4/3" in text
    assert "1.33" not in text
    assert r"\frac{4}{3}" in sol.to_latex()
    # the library computes the same value in floating point
    np.testing.assert_allclose(
        F.avg_pool2d(np.array([[[1, 2, 1], [0, 0, 1]]]), (1, 3), 1)[0], [[4 / 3], [1 / 3]]
    )


def test_fraction_inputs_stay_exact_through_conv_relu_pool():
    rng = np.random.default_rng(7)
    num_x = rng.integers(-6, 7, (4, 5))
    num_w = rng.integers(-3, 4, (2, 2))
    x = [[Fraction(int(v), 3) for v in row] for row in num_x]
    w = [[Fraction(int(v), 2) for v in row] for row in num_w]
    sol = explain(x, [Conv(w, padding=1), "relu", Pool("avg", 2, stride=1, ceil_mode=True)])
    conv, _, pool = sol.stages
    assert conv.arithmetic == "rational" and conv.output.dtype == object
    # bilinearity: conv(x/3, w/2) = conv(x, w)/6, computed by the library in int64
    ints = F.conv2d(num_x[None], num_w[None, None], padding=1)
    assert conv.output.tolist() == [[[Fraction(int(v), 6) for v in row] for row in ints[0]]]
    _check_conv_cells(conv)
    _check_pool_cells(pool)
    relu_ints = F.relu(ints)
    pooled = F.avg_pool2d(relu_ints.astype(float), 2, 1, ceil_mode=True)
    np.testing.assert_allclose(_as_float(pool.output), pooled / 6, rtol=1e-12)
    assert all(isinstance(v, (int, Fraction)) for v in pool.output.ravel())


def test_leaky_relu_of_fractions_is_exact_and_sigmoid_switches_to_float():
    x = [[Fraction(-1, 2), Fraction(3, 4)]]
    leaky = explain(x, [Activation("leaky_relu", negative_slope=0.01)])
    assert leaky.output.tolist() == [[Fraction(-1, 200), Fraction(3, 4)]]
    np.testing.assert_allclose(_as_float(leaky.output), F.leaky_relu(np.array([[-0.5, 0.75]])))
    sig = explain(x, ["sigmoid"])
    assert sig.output.dtype == np.float64
    np.testing.assert_allclose(sig.output, F.sigmoid(np.array([[-0.5, 0.75]])))
    assert "not rational" in sig.to_text()


def test_float_input_wins_over_fraction_filter():
    sol = explain([[0.5, 1.0], [2.0, 4.0]], [Conv([[Fraction(1, 2)]])])
    assert sol.output.dtype == np.float64
    np.testing.assert_array_equal(sol.output, [[0.25, 0.5], [1.0, 2.0]])


# ---------------------------------------------------------------------------------------------
# convolution vs correlation, 'same', shapes


def test_convolve_mode_matches_library_convolve_and_scipy():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(3)
    x = rng.integers(-5, 6, (5, 6))
    k = rng.integers(-3, 4, (2, 3))
    sol = explain(x, [Conv(k, mode="convolve")])
    st = sol.stages[0]
    np.testing.assert_array_equal(sol.output, F.convolve(x, k))
    np.testing.assert_array_equal(sol.output, signal.convolve2d(x, k, mode="valid"))
    np.testing.assert_array_equal(st.applied[0, 0], k[::-1, ::-1])
    np.testing.assert_array_equal(st.other_output[0], F.correlate(x, k))
    assert not st.symmetric
    text = sol.to_text()
    assert "true convolution" in text and "flip(F) = " in text


def test_compare_shows_both_side_by_side():
    x = [[1, 2, 0], [0, 1, 3], [2, 2, 1]]
    k = [[1, 2], [0, 0]]
    both = compare(x, [Conv(k), "relu"])
    assert isinstance(both, Comparison)
    np.testing.assert_array_equal(both.correlation.output, F.correlate(np.array(x), np.array(k)))
    np.testing.assert_array_equal(both.convolution.output, F.convolve(np.array(x), np.array(k)))
    text = both.render("text")
    assert "corr: Conv(I) = " in text and "convolve: Conv(I) = " in text
    assert text.index("Worked solution with cross-correlation") < text.index(
        "Worked solution with convolution")
    for fmt in ("md", "latex", "html"):
        assert "flip(F)" in both.render(fmt).replace("\\allowbreak{}", "")


def test_same_padding_puts_the_odd_cell_last_and_notes_scipy():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(5)
    x = rng.integers(-4, 5, (4, 5))
    k = rng.integers(-2, 3, (2, 2))
    for mode, scipy_fn in (("correlate", signal.correlate), ("convolve", signal.convolve)):
        st = explain(x, [Conv(k, mode=mode, padding="same")]).stages[0]
        assert st.pads == ((0, 1), (0, 1))
        assert st.output.shape[1:] == x.shape
        assert st.scipy_same["pads"] == ((1, 0), (1, 0))
        np.testing.assert_array_equal(st.scipy_same["output"], scipy_fn(x, k, mode="same"))
    text = explain(x, [Conv(k, padding="same")]).to_text()
    assert "1 padding cell(s): 0 before and 1 after; the odd cell goes at the end" in text
    assert "SciPy's scipy.signal.correlate(..., mode='same') centres the other way" in text


def test_same_padding_with_stride_uses_ceil_rule():
    st = explain(np.ones((7, 7), dtype=int), [Conv(np.ones((3, 3), dtype=int), stride=2,
                                                   padding="same")]).stages[0]
    assert st.output.shape[1:] == (4, 4)  # ceil(7 / 2)
    assert st.pads == ((1, 1), (1, 1))
    np.testing.assert_array_equal(
        st.output[0], F.conv2d(np.ones((1, 7, 7), dtype=int), np.ones((1, 1, 3, 3), dtype=int),
                               stride=2, padding="same")[0])


def test_shape_formula_floor_and_ceil_are_explained():
    x = np.arange(25).reshape(5, 5)
    floor = explain(x, [Pool("max", 2)])
    text = floor.to_text()
    assert "rows: out = floor((5 + 0 + 0 - 1*(2 - 1) - 1) / 2) + 1 = floor(3 / 2) + 1 = 2" in text
    assert "leaves a remainder of 1" in text
    ceil = explain(x, [Pool("max", 2, ceil_mode=True)])
    assert ceil.output.shape == (3, 3)
    text = ceil.to_text()
    assert "rows: out = ceil((5 + 0 + 0 - 1*(2 - 1) - 1) / 2) + 1 = ceil(3 / 2) + 1 = 3" in text
    assert "runs past its end" in text
    np.testing.assert_array_equal(ceil.output, F.max_pool2d(x[None], 2, ceil_mode=True)[0])


def test_max_pool_ties_choose_the_first_maximum():
    sol = explain([[3, 1], [3, 3]], [Pool("max", 2)])
    (cell,) = sol.stages[0].cells
    assert cell.chosen == (0, 0)
    assert "(the maximum is I[0,0])" in sol.to_text()


def test_channels_and_several_filters():
    rng = np.random.default_rng(11)
    x = rng.integers(-3, 4, (3, 4, 4))
    w = rng.integers(-2, 3, (2, 3, 2, 2))
    sol = explain(x, [Conv(w, bias=[1, -1]), Pool("max", 2, stride=1)])
    conv = sol.stages[0]
    np.testing.assert_array_equal(conv.output, F.conv2d(x, w, np.array([1, -1])))
    assert conv.filter_labels == ["F1", "F2"]
    _check_conv_cells(conv)
    text = sol.to_text(cells=1)
    assert "Conv(I)[0][0,0] = " in text and "I[2] = " in text


# ---------------------------------------------------------------------------------------------
# errors

ERRORS = [
    ("hello", [Conv([[1]])], TypeError, "input must be an array of real numbers"),
    ([[1, 2], [3]], [Conv([[1]])], ValueError, "ragged"),
    ([[[[1, 2, 3]]]], [Conv([[1]])], ValueError, r"2-D matrix \(H, W\) or a stack of channels"),
    ([1, 2, 3], [Conv([[[1]]])], ValueError, r"filters for a 1-D signal must be \(k,\)"),
    ([[]], [Conv([[1]])], ValueError, "must not be empty"),
    ([["a", "b"]], [Conv([[1]])], TypeError, "real numbers"),
    ([[1, 2], [3, 4]], [Conv([[1, 2, 3]] * 3)], ValueError,
     "filter is larger than the padded input along rows"),
    (np.ones((2, 3, 3)), [Conv([[1, 0], [0, 1]])], ValueError, "2 channels must be"),
    (np.ones((2, 3, 3)), [Conv(np.ones((3, 3, 2, 2)))], ValueError,
     r"an input with 2 channels must be \(2, kH, kW\) for one filter or \(O, 2, kH, kW\) for several, "
     r"got shape \(3, 3, 2, 2\)"),
    ([[1, 2], [3, 4]], [Conv(np.ones((1, 1, 1, 1, 1)))], ValueError,
     r"an input with 1 channel must be \(kH, kW\) for one filter or \(O, kH, kW\) for several"),
    ([[1, 2], [3, 4]], [Conv([[1]], stride=0)], ValueError, "stride must be positive"),
    ([[1, 2], [3, 4]], [Conv([[1]], padding="middle")], ValueError, "padding must be"),
    ([[1, 2], [3, 4]], [Conv([[1]], mode="flip")], ValueError, "mode must be one of"),
    ([[1, 2], [3, 4]], [Conv([[1]], bias=[1, 2])], ValueError, "bias must be one number per filter"),
    ([[1, 2], [3, 4]], ["softplus"], ValueError, "activation must be one of"),
    ([[1, 2], [3, 4]], [Pool("min")], ValueError, "pool must be one of"),
    ([[1, 2], [3, 4]], [Pool("max", 2, padding=2)], ValueError, "no input cell"),
    ([[1, 2], [3, 4]], [42], TypeError, "stage 1 must be a Conv"),
]


@pytest.mark.parametrize("x, stages, exc, match", ERRORS)
def test_bad_input_raises_clear_errors(x, stages, exc, match):
    with pytest.raises(exc, match=match):
        explain(x, stages)


def test_render_rejects_bad_options():
    sol = lecture_example()
    with pytest.raises(ValueError, match="format must be one of"):
        sol.render("pdf")
    with pytest.raises(ValueError, match="cells must be >= 0"):
        sol.render("text", cells=-1)


def test_parse_matrix_messages():
    assert parse_matrix("[[1, 0, 2], [3, 1, 0]]").tolist() == [[1, 0, 2], [3, 1, 0]]
    assert parse_matrix("1 0; 0 1").dtype == np.int64
    assert parse_matrix("0.5 1/2").tolist() == [[Fraction(1, 2), Fraction(1, 2)]]
    for text, message in [
        ("[[1,0,2],[3,1],[0,0,4]]", "row 2 has 2 entries, expected 3"),
        ("[[1,x]]", "entry 'x' at row 1, column 2 is not a number"),
        ("[[1,2],3]", "row 2 is the number '3', expected a list"),
        ("[[1,2]", "unbalanced brackets"),
        ("", "is empty"),
        ("[[[1],[2]],[[3]]]", "channel 2 has 1 row, expected 2"),
    ]:
        with pytest.raises(MatrixError, match=re.escape(message)):
            parse_matrix(text)


# ---------------------------------------------------------------------------------------------
# documentation examples


@pytest.mark.parametrize("name", ["lecture-example.md", "convolution-vs-correlation.md"])
def test_docs_doctest(name):
    result = doctest.testfile(str(DOCS / name), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_module_doctests():
    import cnnlab.explain as pkg
    from cnnlab.explain import _engine, _lecture, _parse

    for module in (pkg, _engine, _lecture, _parse):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__


def test_solution_type():
    assert isinstance(lecture_example(), Solution)
