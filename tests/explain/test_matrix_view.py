"""The matrix view of a conv stage: M @ vec(I) is the conv (checked against torch), M.T @ vec(g)
is its input gradient (checked against torch's autograd), exact fractions, rendering, errors, CLI."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from cnnlab.cli import main
from cnnlab.explain import Activation, Conv, MatrixView, Pool, backprop, explain, matrix_view
from cnnlab.functional._matrix import conv_matrix

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - the torch oracle is optional
    torch = None

LECTURE_I = [[1, 0, 2], [3, 1, 0], [0, 0, 4]]
LECTURE_F = [[1, 0], [0, 1]]


def _f(a) -> np.ndarray:
    a = np.asarray(a)
    return np.array([float(v) for v in a.ravel()]).reshape(a.shape)


def _random_conv(rng, kind: str):
    while True:
        c, o = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        h, w = (int(v) for v in rng.integers(2, 6, 2))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        x = rng.integers(-3, 4, (c, h, w))
        weight = rng.integers(-2, 3, (o, c, kh, kw)).astype(object if kind == "fraction" else np.int64)
        if kind == "float":
            x = x + rng.random(x.shape).round(3)
        if kind == "fraction":
            weight[0, 0, 0, 0] = Fraction(int(rng.integers(-4, 5)), int(rng.integers(2, 5)))
        spec = Conv(weight, mode=["correlate", "convolve"][rng.integers(2)],
                    stride=tuple(int(v) for v in rng.integers(1, 3, 2)),
                    padding=[0, 1, (0, 2), ((1, 0), (0, 1)), "same", "full"][rng.integers(6)],
                    dilation=tuple(int(v) for v in rng.integers(1, 3, 2)),
                    bias=None if rng.random() < 0.5 else rng.integers(-2, 3, o))
        try:
            return x, spec, explain(x, [spec])
        except ValueError:
            continue


@pytest.mark.parametrize("kind", ["int", "float", "fraction"])
def test_matrix_is_the_conv_and_its_transpose_the_gradient(kind):
    rng = np.random.default_rng({"int": 1, "float": 2, "fraction": 3}[kind])
    for _ in range(25):
        x, spec, sol = _random_conv(rng, kind)
        st = sol.stages[0]
        g = rng.integers(-2, 3, st.output.shape)
        view = matrix_view(sol, grad_out=g)
        assert view.forward_ok and view.backward_ok
        assert view.matrix.shape == (st.output.size, st.input.size)
        if kind == "fraction":
            # the exact matrix holds the same numbers as the matrix of the float filters
            float_m = conv_matrix(st.input.shape, _f(st.applied), op="conv", stride=st.stride, padding=st.pads,
                                  dilation=st.dilation)
            assert np.array_equal(_f(view.matrix), float_m)
            assert view.product.dtype == object
            assert all(isinstance(v, (int, Fraction)) for v in (*view.product, *view.transpose_product))
        if kind == "int":
            assert view.matrix.dtype == np.int64 and view.transpose_product.dtype == np.int64
        if torch is None:
            continue
        xt = torch.tensor(_f(st.input), requires_grad=True)
        (rlo, rhi), (clo, chi) = st.pads
        w = torch.tensor(_f(st.applied))
        b = None if st.bias is None else torch.tensor(_f(st.bias))
        y = TF.conv2d(TF.pad(xt[None], (clo, chi, rlo, rhi))[0][None], w, b, st.stride, 0, st.dilation)[0]
        np.testing.assert_allclose(_f(view.product), y.detach().numpy().ravel(), rtol=1e-9, atol=1e-9)
        (y * torch.tensor(_f(g))).sum().backward()
        np.testing.assert_allclose(_f(view.transpose_product), xt.grad.numpy().ravel(), rtol=1e-9, atol=1e-9)


def test_lecture_matrix_and_the_backprop_gradient():
    bp = backprop(LECTURE_I, [Conv(LECTURE_F), "relu", Pool("max", 2, stride=1)])
    view = matrix_view(bp)
    # row p of M is the filter laid over the raveled input at output cell p
    assert view.matrix.tolist() == [[1, 0, 0, 0, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 1, 0, 0, 0],
                                    [0, 0, 0, 1, 0, 0, 0, 1, 0], [0, 0, 0, 0, 1, 0, 0, 0, 1]]
    assert view.product.tolist() == [2, 0, 3, 5]
    assert view.grad_out.tolist() == bp.conv_steps[0].grad_out.ravel().tolist() == [0, 0, 0, 1]
    assert view.transpose_product.tolist() == bp.grad_input.ravel().tolist()
    # without a backward pass, g defaults to ones: M.T @ 1 counts how often each cell is used (times F)
    plain = matrix_view(explain(LECTURE_I, [Conv(LECTURE_F)]))
    assert plain.transpose_product.tolist() == view.matrix.sum(axis=0).tolist()


def test_stage_choice_and_conv_stage_source():
    sol = explain(np.arange(36).reshape(6, 6) % 5, [Conv([[1, 2], [0, 1]]), "relu", Conv([[1, -1], [1, 0]], stride=2)])
    second = matrix_view(sol, stage=1)
    assert second.stage is sol.stages[2] and second.forward_ok
    assert matrix_view(sol.stages[0]).stage is sol.stages[0]


@pytest.mark.parametrize("fmt, needles", [
    ("text", ["M vec(I) and vec(Conv(I)) are equal: checked", "M^T = "]),
    ("md", ["| M |", "| vec(I) |"]),
    ("latex", ["M = {\\begin{bmatrix}", "M^T = {\\begin{bmatrix}", "\\mathrm{vec}(I)"]),
    ("html", ["cnnlab-matrix", "M^T vec(g)"]),
])
def test_renders(fmt, needles):
    view = matrix_view(explain(LECTURE_I, [Conv(LECTURE_F, bias=1)]))
    out = view.render(fmt)
    for needle in needles:
        assert needle in out
    assert isinstance(view, MatrixView) and "M 4x9" in repr(view)


@pytest.mark.parametrize("source, kwargs, exc, match", [
    ("sol", {"stage": 1}, ValueError, r"stage must be in \[0, 1\)"),
    ("sol", {"stage": "0"}, TypeError, "stage must be an int"),
    ("sol", {"grad_out": [[1, 2, 3]]}, ValueError, "grad_out must have"),
    ("none", {}, ValueError, "no conv stage"),
    ("reflect", {}, ValueError, "only zero padding"),
    ("list", {}, TypeError, "source must be"),
])
def test_errors(source, kwargs, exc, match):
    obj = {
        "sol": explain(LECTURE_I, [Conv(LECTURE_F)]),
        "none": explain(LECTURE_I, [Activation("relu")]),
        "reflect": explain(LECTURE_I, [Conv(LECTURE_F, padding=1, padding_mode="reflect")]),
        "list": [[1]],
    }[source]
    with pytest.raises(exc, match=match):
        matrix_view(obj, **kwargs)


def run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_matrix(capsys):
    code, out, err = run(capsys, ["matrix", "-i", "[[1,0,2],[3,1,0],[0,0,4]]", "-f", "[[1,0],[0,1]]"])
    assert code == 0 and err == ""
    assert "M vec(I) and vec(Conv(I)) are equal: checked" in out and "dL/dI are equal: checked" in out
    code, out, _ = run(capsys, ["matrix", "-i", "1 2 3; 4 5 6", "-f", "1/2 1", "--grad", "1 -1; 0 2",
                                "--format", "latex"])
    assert code == 0 and "\\frac{1}{2}" in out


@pytest.mark.parametrize("argv, message", [
    (["-i", "1 2; 3 4", "--activation", "relu"], "needs a --filter"),
    (["-i", "1 2; 3 4", "-f", "1", "--padding", "1", "--padding-mode", "reflect"], "only zero padding"),
    (["-i", "1 2; 3 4", "-f", "1", "--grad", "1 2 3"], "grad_out must have"),
    (["-i", "1 2; 3 4", "-f", "1", "--grad", "[[1,2],[3]]"], "--grad"),
])
def test_cli_matrix_bad_input(capsys, argv, message):
    code, out, err = run(capsys, ["matrix", *argv])
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("cnnlab matrix") and message in err
