"""Volumes in explain: a 3-D input (D, H, W) or (C, D, H, W) with filters that have a depth axis.

Every output is checked against the loop references written here (not the library's), and every
printed window's three ranges and each product and sum are checked as text in all four formats.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnlab.explain import MAX_VALUES, Conv, Pool, VolumeSolution, backprop, explain, matrix_view

SRC = Path(__file__).resolve().parents[2] / "src"
FORMATS = ("text", "md", "latex", "html")

# ---------------------------------------------------------------------------------------------
# loop references


def ref_conv(x, w, bias, stride, pads, dilation):
    """x (C, D, H, W), w (O, C, kD, kH, kW): the cross-correlation, one loop per index."""
    x = np.pad(x, ((0, 0), *pads))
    o_count, channels, kd, kh, kw = w.shape
    sizes = [(x.shape[a + 1] - dilation[a] * (k - 1) - 1) // stride[a] + 1
             for a, k in enumerate((kd, kh, kw))]
    out = np.zeros((o_count, *sizes), dtype=np.result_type(x, w))
    for o in range(o_count):
        for z in range(sizes[0]):
            for i in range(sizes[1]):
                for j in range(sizes[2]):
                    total = 0
                    for c in range(channels):
                        for a in range(kd):
                            for b in range(kh):
                                for e in range(kw):
                                    total += (x[c, z * stride[0] + a * dilation[0],
                                                i * stride[1] + b * dilation[1],
                                                j * stride[2] + e * dilation[2]] * w[o, c, a, b, e])
                    out[o, z, i, j] = total + (0 if bias is None else bias[o])
    return out


def ref_pool(x, kind, kernel, stride, pads, count_include_pad=True):
    channels, *sizes = x.shape
    out_sizes = [(s + lo + hi - k) // st + 1 for s, k, st, (lo, hi) in zip(sizes, kernel, stride, pads, strict=True)]
    out = np.zeros((channels, *out_sizes), dtype=np.float64)
    for c in range(channels):
        for z in range(out_sizes[0]):
            for i in range(out_sizes[1]):
                for j in range(out_sizes[2]):
                    values, count = [], 0
                    for a in range(kernel[0]):
                        for b in range(kernel[1]):
                            for e in range(kernel[2]):
                                p = (z * stride[0] + a - pads[0][0], i * stride[1] + b - pads[1][0],
                                     j * stride[2] + e - pads[2][0])
                                if all(0 <= q < s for q, s in zip(p, sizes, strict=True)):
                                    values.append(x[c, p[0], p[1], p[2]])
                                    count += 1
                                elif count_include_pad:
                                    count += 1
                    out[c, z, i, j] = max(values) if kind == "max" else sum(values) / count
    return out


def factor(v) -> str:
    return f"({v})" if v < 0 else str(v)


def normalized(text: str) -> str:
    """One form for every format's equations: '*' for products, no spaces or line breaks."""
    for old, new in (("\\cdots", "..."), ("\\ldots", "..."), ("\\dots", "..."), ("&hellip;", "..."),
                     ("\u2026", "..."), ("&middot;", "*"), ("\\cdot", "*"), ("\\left(", "("), ("\\right)", ")"),
                     ("\\\\\n", ""), ("&minus;", "-")):
        text = text.replace(old, new)
    return re.sub(r"\s+", "", text)


def span(lo: int, count: int, step: int) -> str:
    taps = [lo + t * step for t in range(count)]
    return f"{taps[0]}-{taps[-1]}" if count > 1 and step == 1 else ", ".join(map(str, taps))


# ---------------------------------------------------------------------------------------------
# cases

CASES = [
    # (seed, input shape, filters shape, stride, padding, dilation, bias, pool)
    (0, (3, 4, 4), (2, 2, 2), 1, 0, 1, None, ("max", (2, 2, 2), (1, 1, 1), 0)),
    (1, (4, 5, 3), (2, 3, 2), (2, 1, 1), 1, 1, [3], ("avg", 2, 1, 0)),
    (2, (2, 3, 5, 4), (2, 2, 2, 2, 2), 1, (0, 1, 1), 1, [-1, 2], ("max", (1, 2, 2), (1, 2, 1), (0, 1, 1))),
    (3, (5, 5, 5), (2, 2, 2, 2), 2, 1, 1, None, ("avg", (2, 2, 2), 1, 1)),
    (4, (5, 6, 6), (2, 2, 2), 1, 0, (2, 1, 2), [5], None),
]


def _case(seed, xshape, wshape, bias):
    rng = np.random.default_rng(seed)
    x = rng.integers(-5, 6, size=xshape)
    w = rng.integers(-3, 4, size=wshape)
    return x, w, None if bias is None else np.array(bias)


def _as5(x, w):
    x4 = x[None] if x.ndim == 3 else x
    if w.ndim == 3:
        return x4, w[None, None]
    if w.ndim == 4:
        return x4, (w[:, None] if x4.shape[0] == 1 else w[None])
    return x4, w


def _three(v):
    return (v,) * 3 if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("case", CASES, ids=[f"seed{c[0]}" for c in CASES])
@pytest.mark.parametrize("mode", ["correlate", "convolve"])
def test_outputs_match_loop_reference(case, mode):
    seed, xshape, wshape, stride, padding, dilation, bias, pool = case
    x, w, b = _case(seed, xshape, wshape, bias)
    stages = [Conv(w, mode=mode, stride=stride, padding=padding, dilation=dilation, bias=b), "relu"]
    if pool is not None:
        stages.append(Pool(pool[0], pool[1], stride=pool[2], padding=pool[3]))
    sol = explain(x, stages, volume=True)
    assert isinstance(sol, VolumeSolution)
    x4, w5 = _as5(x, w)
    if mode == "convolve":
        w5 = w5[..., ::-1, ::-1, ::-1]
    pads = tuple((p, p) for p in _three(padding))
    conv = ref_conv(x4, w5, b, _three(stride), pads, _three(dilation))
    np.testing.assert_array_equal(sol.stages[0].output, conv)
    relu = np.maximum(conv, 0)
    np.testing.assert_array_equal(sol.stages[1].output, relu)
    if pool is not None:
        pooled = ref_pool(relu, pool[0], _three(pool[1]), _three(pool[2]),
                          tuple((p, p) for p in _three(pool[3])))
        np.testing.assert_allclose(sol.stages[2].output, pooled, rtol=1e-12)


@pytest.mark.parametrize("case", CASES[:3], ids=[f"seed{c[0]}" for c in CASES[:3]])
def test_every_printed_conv_window_and_sum(case):
    seed, xshape, wshape, stride, padding, dilation, bias, _ = case
    x, w, b = _case(seed, xshape, wshape, bias)
    sol = explain(x, [Conv(w, stride=stride, padding=padding, dilation=dilation, bias=b)],
                  volume=True, cells=5)
    x4, w5 = _as5(x, w)
    pads = tuple((p, p) for p in _three(padding))
    grid = np.pad(x4, ((0, 0), *pads))
    st, s, d = sol.stages[0], _three(stride), _three(dilation)
    k = w5.shape[2:]
    texts = {f: sol.render(f) for f in FORMATS}
    flat = {f: normalized(t) for f, t in texts.items()}
    assert len(st.cells) == min(5, st.output.size)
    for cell in st.cells:
        o, z, i, j = cell.index
        ranges = (f"the window at depth {span(z * s[0], k[0], d[0])}, rows {span(i * s[1], k[1], d[1])}, "
                  f"cols {span(j * s[2], k[2], d[2])}")
        window = grid[:, z * s[0]: z * s[0] + d[0] * (k[0] - 1) + 1: d[0],
                      i * s[1]: i * s[1] + d[1] * (k[1] - 1) + 1: d[1],
                      j * s[2]: j * s[2] + d[2] * (k[2] - 1) + 1: d[2]]
        terms = [f"{factor(a)}*{factor(f)}" for a, f in zip(window.ravel(), w5[o].ravel(), strict=True)]
        products = [factor(a * f) for a, f in zip(window.ravel(), w5[o].ravel(), strict=True)]
        if b is not None:
            terms.append(factor(b[o]))
            products.append(factor(b[o]))
        total = int((window * w5[o]).sum()) + (0 if b is None else int(b[o]))
        assert total == st.output[o, z, i, j]
        if len(terms) > 12:  # long sums show their first and last four terms
            terms, products = terms[:4] + ["..."] + terms[-4:], products[:4] + ["..."] + products[-4:]
        equation = "=" + "+".join(terms) + "=" + "+".join(products) + f"={total}"
        for f in FORMATS:
            assert ranges in texts[f], (f, ranges)
            assert normalized(equation) in flat[f], (f, equation)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_every_printed_pool_window(kind):
    rng = np.random.default_rng(7)
    x = rng.integers(-9, 10, size=(3, 4, 4))
    sol = explain(x, [Pool(kind, (2, 2, 2), stride=(1, 2, 2), padding=(0, 1, 1))], volume=True)
    st = sol.stages[0]
    expected = ref_pool(x[None], kind, (2, 2, 2), (1, 2, 2), ((0, 0), (1, 1), (1, 1)))
    np.testing.assert_allclose(st.output, expected)
    texts = {f: sol.render(f) for f in FORMATS}
    assert len(st.cells) == st.output.size  # a small stage: every cell worked out
    for cell in st.cells:
        _, z, i, j = cell.index
        ranges = f"the window at depth {z}-{z + 1}, rows {2 * i}-{2 * i + 1}, cols {2 * j}-{2 * j + 1}"
        inside = [x[a, p - 1, q - 1] for a in (z, z + 1) for p in (2 * i, 2 * i + 1)
                  for q in (2 * j, 2 * j + 1) if 1 <= p <= 4 and 1 <= q <= 4]
        for f in FORMATS:
            assert ranges in texts[f]
        if kind == "max":
            line = f"=max({','.join(map(str, inside))})={max(inside)}"
            for f in ("text", "md", "html"):
                assert line in normalized(texts[f]), (f, line)
        else:
            assert cell.divisor == 8 and cell.value == pytest.approx(sum(inside) / 8)
            # padding zeros count in the divisor (count_include_pad) and are shown as terms
            terms = [x[a, p - 1, q - 1] if 1 <= p <= 4 and 1 <= q <= 4 else 0
                     for a in (z, z + 1) for p in (2 * i, 2 * i + 1) for q in (2 * j, 2 * j + 1)]
            line = f"sum={'+'.join(factor(t) for t in terms)}={sum(terms)}"
            for f in ("text", "md", "html"):
                assert line in normalized(texts[f]), (f, line)
                assert f"={sum(terms)}/8={sum(terms) / 8}" in normalized(texts[f])


def test_channels_and_float_input():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 3, 3, 3))
    w = rng.normal(size=(3, 2, 2, 2, 2))
    sol = explain(x, [Conv(w, padding="same"), "tanh", Pool("avg", 2, stride=1)], volume=True)
    conv = ref_conv(x, w, None, (1, 1, 1), ((0, 1),) * 3, (1, 1, 1))
    np.testing.assert_allclose(sol.stages[0].output, conv, rtol=1e-10, atol=1e-12)
    pooled = ref_pool(np.tanh(conv), "avg", (2, 2, 2), (1, 1, 1), ((0, 0),) * 3)
    np.testing.assert_allclose(sol.output, pooled, rtol=1e-10, atol=1e-12)
    for f in FORMATS:
        assert "Conv(I)[2][2,2,2]" in sol.render(f).replace("\\allowbreak{}", "")


def test_large_volume_works_out_a_few_cells_and_limits_come_first():
    x = np.ones((20, 20, 20))
    sol = explain(x, [Conv(np.ones((3, 3, 3)))], volume=True)
    assert sol.stages[0].output.shape == (1, 18, 18, 18)
    assert np.all(sol.stages[0].output == 27)
    assert len(sol.stages[0].cells) == 4
    assert "more cell(s) not shown" in str(sol)
    side = round(MAX_VALUES ** (1 / 3)) + 5
    with pytest.raises(ValueError, match="MAX_VALUES"):
        explain(np.broadcast_to(np.float64(1), (side, side, side)), [Conv(np.ones((2, 2, 2)))], volume=True)
    with pytest.raises(ValueError, match="MAX_VALUES"):
        explain(np.ones((2, 2, 2)), [Conv(np.ones((2, 2, 2)), padding=100_000)], volume=True)


@pytest.mark.parametrize("x, stages, message", [
    (np.ones((3, 3)), [Conv(np.ones((2, 2, 2)))], r"\(D, H, W\) or \(C, D, H, W\)"),
    (np.ones((3, 3, 3)), [Conv(np.ones((2, 2)))], r"\(kD, kH, kW\)"),
    (np.ones((2, 3, 3, 3)), [Conv(np.ones((3, 2, 2, 2)))], r"\(2, kD, kH, kW\)"),
    (np.ones((2, 2, 2)), [Conv(np.ones((3, 2, 2)))], "larger than the padded input along depth"),
    (np.ones((3, 3, 3)), [Conv(np.ones((2, 2, 2)), padding=1, padding_mode="reflect")], "zeros only"),
    (np.ones((3, 3, 3)), [Pool("max", 2, ceil_mode=True)], "ceil_mode"),
    (np.ones((3, 3, 3)), [Pool("max", 2, padding=(2, 0, 0))], "no input cell"),
    ([[[1, 2], [3, 4]]], [Conv([[[1]]], bias="1/2")], None),
])
def test_bad_volumes_raise(x, stages, message):
    if message is None:  # fractions are refused, not silently rounded
        from fractions import Fraction
        with pytest.raises(ValueError, match="fractions"):
            explain([[[Fraction(1, 2)]]], [Conv([[[1]]])], volume=True)
        return
    with pytest.raises(ValueError, match=message):
        explain(x, stages, volume=True)


def test_volume_flag_type_and_refusals_elsewhere():
    with pytest.raises(TypeError, match="volume must be a bool"):
        explain(np.ones((2, 2, 2)), [Conv(np.ones((1, 1, 1)))], volume="yes")
    with pytest.raises(TypeError, match="volume must be a bool"):
        backprop(np.ones((2, 2, 2)), [Conv(np.ones((1, 1, 1)))], volume=1)
    with pytest.raises(ValueError, match="loss must be one of"):
        backprop(np.ones((2, 2, 2)), [Conv(np.ones((1, 1, 1)))], volume=True, loss="cross_entropy")
    with pytest.raises(ValueError, match="target must be"):
        backprop(np.ones((2, 2, 2)), [Conv(np.ones((1, 1, 1)))], volume=True, loss="mse", target=[1, 2])
    # without volume=True a 3-D input is still a stack of 2-D channels
    stack = explain(np.ones((2, 3, 3)), [Conv(np.ones((2, 2, 2)))])
    assert stack.stages[0].output.shape == (1, 2, 2)


# ---------------------------------------------------------------------------------------------
# the CLI


def _cli(*args, cwd):
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_volume(tmp_path):
    x = np.arange(27).reshape(3, 3, 3)
    np.save(tmp_path / "vol.npy", x)
    np.save(tmp_path / "f.npy", np.ones((2, 2, 2), dtype=np.int64))
    np.save(tmp_path / "f2.npy", np.ones((2, 2), dtype=np.int64))
    done = _cli("explain", "--input", "vol.npy", "--filter", "f.npy", "--volume", "--activation",
                "relu", "--pool", "max", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Pool(ReLU(Conv(I))) = 156" in done.stdout
    assert "the window at depth 1-2, rows 1-2, cols 1-2 of I" in done.stdout
    for args, message in [
        (("--input", "vol.npy", "--filter", "f2.npy", "--volume"), "must be a 3-D filter"),
        (("--input", "f2.npy", "--filter", "f.npy", "--volume"), "--volume needs a 3-D --input"),
        (("--input", "vol.npy", "--filter", "f.npy", "--volume", "--both"), "--both is not supported"),
        (("--input", "vol.npy", "--filter", "f.npy", "--volume", "--pool", "max", "--pool-size", "9"),
         "larger than the padded input"),
    ]:
        bad = _cli("explain", *args, cwd=tmp_path)
        assert bad.returncode == 2, (args, bad.stderr)
        assert bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1 and message in bad.stderr
    done = _cli("backprop", "--input", "vol.npy", "--filter", "f.npy", "--volume", "--activation", "relu",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Backpropagation through the volume I" in done.stdout and "dL/dF[0,0,0] = " in done.stdout
    bad = _cli("backprop", "--input", "vol.npy", "--filter", "f.npy", "--volume", "--loss", "cross_entropy",
               "--target", "0", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "loss must be" in bad.stderr
    done = _cli("matrix", "--input", "vol.npy", "--filter", "f.npy", "--volume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "triply block Toeplitz" in done.stdout and "are equal: checked." in done.stdout
    assert "NOT equal" not in done.stdout


def _shifted(m: np.ndarray, x_shape, out_shape) -> bool:
    """Whether M[p, q] depends only on the differences of the (depth, row, col) positions of output
    cell p and input cell q: what 'triply block Toeplitz' means for stride 1."""
    seen: dict = {}
    for p in range(m.shape[0]):
        a = np.unravel_index(p, out_shape)
        for q in range(m.shape[1]):
            b = np.unravel_index(q, x_shape)
            key = tuple(int(u) - int(v) for u, v in zip(b, a, strict=True))
            if seen.setdefault(key, m[p, q]) != m[p, q]:
                return False
    return True


@pytest.mark.parametrize("case", CASES, ids=[f"seed{c[0]}" for c in CASES])
@pytest.mark.parametrize("mode", ["correlate", "convolve"])
def test_matrix_view_of_a_volume(case, mode):
    seed, xshape, wshape, stride, padding, dilation, bias, _ = case
    x, w, b = _case(seed, xshape, wshape, bias)
    sol = explain(x, [Conv(w, mode=mode, stride=stride, padding=padding, dilation=dilation, bias=b)],
                  volume=True)
    rng = np.random.default_rng(seed + 100)
    g = rng.integers(-3, 4, size=sol.stages[0].output.shape)
    view = matrix_view(sol, grad_out=g)
    assert view.forward_ok and view.backward_ok
    x4, w5 = _as5(x, w)
    if mode == "convolve":
        w5 = w5[..., ::-1, ::-1, ::-1]
    pads = tuple((p, p) for p in _three(padding))
    # M from the loop reference, column by column: the conv (without bias) of each unit volume
    columns = []
    for q in range(x4.size):
        unit = np.zeros(x4.size, dtype=np.int64)
        unit[q] = 1
        columns.append(ref_conv(unit.reshape(x4.shape), w5, None, _three(stride), pads,
                                _three(dilation)).ravel())
    m = np.stack(columns, axis=1)
    np.testing.assert_array_equal(view.matrix, m)
    np.testing.assert_array_equal(view.transpose_product, m.T @ g.ravel())
    one_filter = x4.shape[0] == 1 and w5.shape[0] == 1 and _three(stride) == (1, 1, 1)
    for f in FORMATS:
        text = view.render(f)
        assert ("triply block Toeplitz" in text) == one_filter
        assert "NOT equal" not in text
    if one_filter and _three(dilation) == (1, 1, 1) and pads == ((0, 0),) * 3:
        assert _shifted(m, x4.shape[1:], sol.stages[0].output.shape[1:])


def test_deep_volumes_leave_middle_slices_out():
    x = np.arange(10 * 3 * 3).reshape(10, 3, 3)
    sol = explain(x, [Conv(np.ones((8, 1, 1), dtype=np.int64))], volume=True, cells=1)
    np.testing.assert_array_equal(sol.stages[0].output[0, :, 0, 0],
                                  [sum(x[z:z + 8, 0, 0]) for z in range(3)])
    for f in FORMATS:
        text = sol.render(f).replace("\\allowbreak{}", "")
        assert "(the 4 depth slices z=3-6 are not shown)" in text  # the input
        assert "(the 2 depth slices z=3-4 are not shown)" in text  # the 8-deep filter and window
        assert "I[z=9]" in text and "I[z=3]" not in text and "I[z=4]" not in text


def _loss_value(x, w, b, case, target):
    _, _, _, stride, padding, dilation, _, pool = case
    stages = [Conv(w, stride=stride, padding=padding, dilation=dilation, bias=b), "tanh"]
    if pool is not None:
        stages.append(Pool(pool[0], pool[1], stride=pool[2], padding=pool[3]))
    y = explain(x, stages, volume=True, cells=0).output
    return float(((y - target) ** 2).mean()), stages


@pytest.mark.parametrize("case", CASES, ids=[f"seed{c[0]}" for c in CASES])
def test_backprop_matches_finite_differences(case):
    seed, xshape, wshape, *_ = case
    rng = np.random.default_rng(seed + 50)
    x, w = rng.normal(size=xshape), rng.normal(size=wshape)
    b = None if case[6] is None else rng.normal(size=len(case[6]))
    _, stages = _loss_value(x, w, b, case, 0.0)
    target = rng.normal(size=explain(x, stages, volume=True, cells=0).output.shape)
    bp = backprop(x, stages, loss="mse", target=target, volume=True)
    h = 1e-6
    for name, array, grad in (("x", x, bp.grad_input.reshape(x.shape)), ("w", w, bp.grad_filters[0].reshape(w.shape))):
        for flat in (0, array.size // 2, array.size - 1):
            index = tuple(int(v) for v in np.unravel_index(flat, array.shape))
            up, down = array.copy(), array.copy()
            up[index] += h
            down[index] -= h
            args = {"x": (up, w), "w": (x, up)}[name], {"x": (down, w), "w": (x, down)}[name]
            numeric = (_loss_value(*args[0], b, case, target)[0] - _loss_value(*args[1], b, case, target)[0]) / (2 * h)
            assert grad[index] == pytest.approx(numeric, rel=1e-5, abs=1e-7), (name, index)
    if b is not None:
        for o in range(len(b)):
            up, down = b.copy(), b.copy()
            up[o] += h
            down[o] -= h
            numeric = (_loss_value(x, w, up, case, target)[0] - _loss_value(x, w, down, case, target)[0]) / (2 * h)
            assert bp.grad_biases[0][o] == pytest.approx(numeric, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("case", CASES[:3], ids=[f"seed{c[0]}" for c in CASES[:3]])
@pytest.mark.parametrize("mode", ["correlate", "convolve"])
def test_backprop_filter_cells_as_text(case, mode):
    seed, xshape, wshape, stride, padding, dilation, bias, _ = case
    x, w, b = _case(seed, xshape, wshape, bias)
    bp = backprop(x, [Conv(w, mode=mode, stride=stride, padding=padding, dilation=dilation, bias=b), "relu"],
                  volume=True, cells=3)
    x4, w5 = _as5(x, w)
    applied = w5[..., ::-1, ::-1, ::-1] if mode == "convolve" else w5
    pads = tuple((p, p) for p in _three(padding))
    grid = np.pad(x4, ((0, 0), *pads))
    conv = ref_conv(x4, applied, b, _three(stride), pads, _three(dilation))
    g = (conv > 0).astype(np.int64)  # d sum(ReLU(Y)) / dY, with ReLU'(0) = 0
    s, d = _three(stride), _three(dilation)
    expected = np.zeros(applied.shape, dtype=np.int64)
    for o, c, a, bb, e in np.ndindex(*applied.shape):
        for z, i, j in np.ndindex(*g.shape[1:]):
            read = grid[c, z * s[0] + a * d[0], i * s[1] + bb * d[1], j * s[2] + e * d[2]]
            expected[o, c, a, bb, e] += read * g[o, z, i, j]
    own = expected[..., ::-1, ::-1, ::-1] if mode == "convolve" else expected
    np.testing.assert_array_equal(bp.grad_filters[0], own)
    if b is not None:
        np.testing.assert_array_equal(bp.grad_biases[0], g.sum(axis=(1, 2, 3)))
    step = next(st for st in bp.steps if st.stage.kind == "conv")
    assert len(step.cells) == 3
    texts = {f: normalized(bp.render(f)) for f in FORMATS}
    for index, _, value in step.cells:
        o, c, a, bb, e = index
        terms = [f"{factor(grid[c, z * s[0] + a * d[0], i * s[1] + bb * d[1], j * s[2] + e * d[2]])}"
                 f"*{factor(g[o, z, i, j])}" for z, i, j in np.ndindex(*g.shape[1:])]
        if len(terms) > 12:
            terms = terms[:4] + ["..."] + terms[-4:]
        line = "=" + "+".join(terms) + f"={expected[index]}"
        assert value == expected[index]
        for f in FORMATS:
            assert normalized(line) in texts[f], (f, line)
