"""Backprop by hand: every gradient equals cnnlab.autograd's and torch's for random pipelines,
every worked cell adds up to its number, exact integers and fractions, ties and kinks, the loop
references of the backward functions, rendering, errors, the CLI and the doctested guide."""

from __future__ import annotations

import doctest
import importlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.autograd import Tensor
from cnnlab.cli import main
from cnnlab.explain import Activation, Conv, Pool
from cnnlab.explain._backprop import ActivationGrad, Backprop, ConvGrad, PoolGrad, backprop
from cnnlab.functional import _naive

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - the torch oracle is optional
    torch = None

DOCS = Path(__file__).resolve().parents[2] / "docs"
LECTURE_I = [[1, 0, 2], [3, 1, 0], [0, 0, 4]]
LECTURE_F = [[1, 0], [0, 1]]
ACTS = ["relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh"]
# the plain NumPy modules (the package namespace exports Tensor-aware functions of these names)
act_ops = importlib.import_module("cnnlab.functional._activation")
conv_ops = importlib.import_module("cnnlab.functional._conv")
pool_ops = importlib.import_module("cnnlab.functional._pool")
avg_pool_ops = importlib.import_module("cnnlab.functional._avg_pool")


def _f(a) -> np.ndarray:
    a = np.asarray(a)
    return np.array([float(v) for v in a.ravel()]).reshape(a.shape)


# ---------------------------------------------------------------------------------------------
# random pipelines, run independently on cnnlab.autograd and on torch


def _conv_pads(spec: Conv, size, kernel):
    """(lo, hi) per axis, worked out here from the spec (not read from the solution)."""
    stride = (spec.stride,) * 2 if isinstance(spec.stride, int) else spec.stride
    dil = (spec.dilation,) * 2 if isinstance(spec.dilation, int) else spec.dilation
    if spec.padding == "valid":
        return [(0, 0), (0, 0)]
    if spec.padding == "full":
        return [(d * (k - 1),) * 2 for d, k in zip(dil, kernel, strict=True)]
    if spec.padding == "same":
        pads = []
        for n, k, s, d in zip(size, kernel, stride, dil, strict=True):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        return pads
    if isinstance(spec.padding, int):
        return [(spec.padding,) * 2] * 2
    return [p if isinstance(p, tuple) else (p, p) for p in spec.padding]


def _random_pipeline(rng, kind: str):
    """``(x, stages, loss kwargs, backprop)``; kind is 'int', 'float' or 'fraction'."""
    while True:
        c, o = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        h, w = (int(v) for v in rng.integers(3, 7, 2))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        x = rng.integers(-3, 4, (c, h, w)).astype(object if kind == "fraction" else np.int64)
        weight = rng.integers(-2, 3, (o, c, kh, kw))
        if kind == "float":
            x = x + rng.random(x.shape).round(2)
        if kind == "fraction":
            x[0, 0, 0] = Fraction(int(rng.integers(-5, 6)), int(rng.integers(1, 4)))
        padding = [0, 1, (1, 0), ((0, 1), (2, 0)), "same", "valid", "full"][rng.integers(7)]
        mode = ["zeros", "zeros", "reflect", "replicate", "circular"][rng.integers(5)]
        stages: list = [Conv(
            weight, mode=["correlate", "convolve"][rng.integers(2)],
            stride=tuple(int(v) for v in rng.integers(1, 3, 2)), padding=padding,
            dilation=tuple(int(v) for v in rng.integers(1, 3, 2)),
            bias=None if rng.random() < 0.4 else rng.integers(-2, 3, o), padding_mode=mode)]
        if rng.random() < 0.8:
            names = ACTS if rng.random() < 0.5 else ["relu", "leaky_relu"]
            name = names[rng.integers(len(names))]
            stages.append(Activation(name, approximate=["none", "tanh"][rng.integers(2)]))
        if rng.random() < 0.8:
            pool = ["max", "avg"][rng.integers(2)]
            k = int(rng.integers(1, 4))
            stages.append(Pool(pool, k, stride=[None, 1, 2][rng.integers(3)], padding=int(rng.integers(0, k // 2 + 1)),
                               dilation=1 if pool == "avg" else int(rng.integers(1, 3)),
                               ceil_mode=bool(rng.random() < 0.3), count_include_pad=bool(rng.random() < 0.5)))
        loss = ["sum", "mse", "cross_entropy"][rng.integers(3)]
        try:
            from cnnlab.explain import explain

            out = explain(x, stages).output
        except ValueError:
            continue
        kwargs: dict = {"loss": loss}
        if loss == "mse":
            kwargs.update(target=rng.integers(-2, 3, out.shape), reduction=["mean", "sum"][rng.integers(2)])
        elif loss == "cross_entropy":
            kwargs["target"] = int(rng.integers(out.size))
        return x, stages, kwargs, backprop(x, stages, **kwargs)


def _autograd_grads(x, stages, kwargs):
    """dL/dx and (dL/dw, dL/db) per conv stage, from cnnlab.autograd in float64."""
    xt = Tensor(_f(x), requires_grad=True)
    y, params = xt, []
    for s in stages:
        if isinstance(s, Conv):
            w = np.asarray(s.filters, dtype=np.float64)
            wt = Tensor(w, requires_grad=True)
            bt = None if s.bias is None else Tensor(np.asarray(s.bias, dtype=np.float64), requires_grad=True)
            params.append((wt, bt))
            weight = wt if s.mode == "correlate" else wt[:, :, ::-1, ::-1]
            y = F.conv2d(y, weight, bt, s.stride, tuple(_conv_pads(s, y.shape[1:], w.shape[2:])), s.dilation, 1,
                         s.padding_mode)
        elif isinstance(s, Activation):
            extra = {"approximate": s.approximate} if s.name == "gelu" else {}
            y = getattr(F, s.name)(y, **extra)
        elif s.kind == "max":
            y = F.max_pool2d(y, s.kernel_size, s.stride, s.padding, s.dilation, s.ceil_mode)
        else:
            y = F.avg_pool2d(y, s.kernel_size, s.stride, s.padding, s.ceil_mode, s.count_include_pad)
    if kwargs["loss"] == "sum":
        loss = y.sum()
    elif kwargs["loss"] == "mse":
        loss = F.mse_loss(y, np.asarray(kwargs["target"], dtype=np.float64), kwargs["reduction"])
    else:
        loss = F.cross_entropy(y.reshape(1, -1), np.array([kwargs["target"]]))
    loss.backward()
    return xt.grad, [(wt.grad, None if bt is None else bt.grad) for wt, bt in params]


def _torch_chain(x, stages, kwargs):
    """The input, every stage output (gradients retained), the conv parameters, after backward."""
    xt = torch.tensor(_f(x), requires_grad=True)
    y, outs, params = xt, [], []
    for s in stages:
        if isinstance(s, Conv):
            w = torch.tensor(np.asarray(s.filters, dtype=np.float64), requires_grad=True)
            b = None if s.bias is None else torch.tensor(np.asarray(s.bias, dtype=np.float64), requires_grad=True)
            params.append((w, b))
            (rlo, rhi), (clo, chi) = _conv_pads(s, y.shape[1:], w.shape[2:])
            mode = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
            yp = TF.pad(y[None], (clo, chi, rlo, rhi), mode=mode[s.padding_mode])[0]
            y = TF.conv2d(yp[None], w if s.mode == "correlate" else w.flip(-1, -2), b, s.stride, 0, s.dilation)[0]
        elif isinstance(s, Activation):
            y = {"relu": torch.relu, "leaky_relu": TF.leaky_relu, "elu": TF.elu, "sigmoid": torch.sigmoid,
                 "tanh": torch.tanh, "gelu": lambda t, a=s.approximate: TF.gelu(t, approximate=a)}[s.name](y)
        elif s.kind == "max":
            y = TF.max_pool2d(y, s.kernel_size, s.stride, s.padding, s.dilation, s.ceil_mode)
        else:
            y = TF.avg_pool2d(y, s.kernel_size, s.stride, s.padding, s.ceil_mode, s.count_include_pad)
        y.retain_grad()
        outs.append(y)
    if kwargs["loss"] == "sum":
        loss = y.sum()
    elif kwargs["loss"] == "mse":
        loss = TF.mse_loss(y, torch.tensor(np.asarray(kwargs["target"], dtype=np.float64)).reshape(y.shape),
                           reduction=kwargs["reduction"])
    else:
        loss = TF.cross_entropy(y.reshape(1, -1), torch.tensor([kwargs["target"]]))
    loss.backward()
    return xt, outs, params, loss


def _close(a, b):
    np.testing.assert_allclose(_f(a), np.asarray(b, dtype=np.float64), rtol=1e-9, atol=1e-10)


def _check_cells(bp: Backprop):
    """Every worked cell adds up to the number in its matrix; the routes rebuild pooling's gradient."""
    for step in bp.steps:
        if isinstance(step, ConvGrad):
            st = step.stage
            for cell in step.filter_cells:
                assert np.array_equal(cell.products, cell.window * cell.grads)
                assert np.isclose(float(cell.products.sum()), float(cell.value), rtol=1e-12, atol=1e-12)
                assert cell.value == step.grad_applied[cell.index]
            for cell in step.input_cells:
                assert np.isclose(float(cell.products.sum()), float(cell.value), rtol=1e-12, atol=1e-12)
                assert cell.value == step.grad_grid[cell.index]
            if step.grad_bias is not None:
                _close(step.grad_bias, _f(step.grad_out).sum(axis=(1, 2)))
            flipped = step.grad_applied[..., ::-1, ::-1] if st.mode == "convolve" else step.grad_applied
            assert np.array_equal(step.grad_filters, flipped)
            if st.padding_mode == "zeros":
                (rlo, rhi), (clo, chi) = st.pads
                inner = step.grad_grid[:, rlo:step.grad_grid.shape[1] - rhi, clo:step.grad_grid.shape[2] - chi]
                assert np.array_equal(inner, step.grad_in)
            # the padded upstream gradient holds the dilated gradient, which holds grad_out
            s0, s1 = st.stride
            assert np.array_equal(step.dilated[:, ::s0, ::s1], step.grad_out)
        elif isinstance(step, ActivationGrad):
            _close(step.grad_in, _f(step.grad_out) * _f(step.derivative))
        else:
            assert isinstance(step, PoolGrad)
            rebuilt = np.zeros(step.grad_in.shape, dtype=object)
            rebuilt[...] = 0
            for route in step.routes:
                for r, q in route.targets:
                    rebuilt[route.index[0], r, q] += route.share
            _close(rebuilt, step.grad_in)


@pytest.mark.parametrize("kind, count", [("int", 30), ("float", 20), ("fraction", 8)])
def test_random_pipelines_match_autograd(kind, count):
    rng = np.random.default_rng({"int": 5, "float": 6, "fraction": 7}[kind])
    for _ in range(count):
        x, stages, kwargs, bp = _random_pipeline(rng, kind)
        grad_x, params = _autograd_grads(x, stages, kwargs)
        _close(bp.grad_input, grad_x)
        assert len(bp.conv_steps) == len(params)
        for gw, gb, (want_w, want_b) in zip(bp.grad_filters, bp.grad_biases, params, strict=True):
            _close(gw, want_w)
            if want_b is None:
                assert gb is None
            else:
                _close(gb, want_b)
        _check_cells(bp)


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_random_pipelines_match_torch_step_by_step():
    rng = np.random.default_rng(11)
    for n in range(24):
        x, stages, kwargs, bp = _random_pipeline(rng, ["int", "float", "fraction"][n % 3])
        xt, outs, params, loss = _torch_chain(x, stages, kwargs)
        assert np.isclose(float(bp.loss.value), loss.item(), rtol=1e-9)
        # steps are in backward order: step k handles stage len - 1 - k
        for k, step in enumerate(bp.steps):
            i = len(stages) - 1 - k
            _close(step.grad_out, outs[i].grad.numpy())
            _close(step.grad_in, (outs[i - 1].grad if i > 0 else xt.grad).numpy())
        for gw, gb, (w, b) in zip(bp.grad_filters, bp.grad_biases, params, strict=True):
            _close(gw, w.grad.numpy())
            if b is not None:
                _close(gb, b.grad.numpy())


# ---------------------------------------------------------------------------------------------
# exact numbers


def test_lecture_gradients_by_hand():
    bp = backprop(LECTURE_I, [Conv(LECTURE_F), "relu", Pool("max", 2, stride=1)])
    assert bp.loss.value == 5
    pool, relu, conv = bp.steps
    # the window's maximum is Conv(I)[1, 1] = 5: it alone receives the gradient 1
    assert pool.routes[0].targets == [(1, 1)] and pool.grad_in[0].tolist() == [[0, 0], [0, 1]]
    # ReLU's input Conv(I)[0, 1] is 0: relu'(0) = 0
    assert relu.derivative[0].tolist() == [[1, 0], [1, 1]]
    # dL/dF[m, n] = I[1 + m, 1 + n]: the window under Conv(I)[1, 1]
    assert bp.grad_filters[0].tolist() == [[1, 0], [0, 4]]
    # dL/dI: F placed at the window of Conv(I)[1, 1]
    assert bp.grad_input.tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]
    for a in (bp.grad_input, bp.grad_filters[0], conv.grad_grid):
        assert a.dtype == np.int64


def test_integer_pipelines_stay_integer():
    rng = np.random.default_rng(3)
    for _ in range(10):
        x = rng.integers(-3, 4, (5, 5))
        w = rng.integers(-2, 3, (2, 2))
        stages = [Conv(w, stride=2, padding=1, bias=1), "relu", Pool("max", 2, stride=1)]
        for kwargs in ({}, {"loss": "mse", "target": np.zeros((2, 2), dtype=int), "reduction": "sum"}):
            bp = backprop(x, stages, **kwargs)
            assert bp.grad_input.dtype == np.int64 and bp.grad_filters[0].dtype == np.int64
            assert bp.grad_biases[0].dtype == np.int64


def test_average_pooling_and_mean_loss_give_exact_fractions():
    bp = backprop([[1, 2, 0, 1], [3, 0, 1, 1], [2, 2, 0, 4]], [Pool("avg", 2, stride=1)])
    grad = bp.grad_input
    assert grad.dtype == object and all(isinstance(v, Fraction) for v in grad.ravel())
    # each cell gets 1/4 from every window it is in
    counts = np.array([[1, 2, 2, 1], [2, 4, 4, 2], [1, 2, 2, 1]])
    assert grad.tolist() == [[Fraction(int(c), 4) for c in row] for row in counts]
    bp = backprop(LECTURE_I, [Conv(LECTURE_F)], loss="mse", target=[[2, 1], [3, 3]])
    assert bp.loss.value == Fraction(5, 4)   # ((0)^2 + (-1)^2 + 0^2 + 2^2) / 4
    assert bp.loss.grad[0].tolist() == [[0, Fraction(-1, 2)], [0, 1]]


def test_fraction_inputs_stay_exact():
    x = [[Fraction(1, 2), 0, 2], [3, Fraction(-1, 3), 0], [0, 1, 4]]
    bp = backprop(x, [Conv([[1, -1], [2, 0]], padding=1), "leaky_relu", Pool("avg", 2)], loss="mse",
                  target=[[1, 0], [0, 1]])
    for a in (bp.grad_input, bp.grad_filters[0]):
        assert all(isinstance(v, (int, Fraction)) for v in a.ravel())
    grad_x, [(grad_w, _)] = _autograd_grads(np.array(x, dtype=object)[None], [
        Conv([[[[1, -1], [2, 0]]]], padding=1), Activation("leaky_relu"), Pool("avg", 2)],
        {"loss": "mse", "target": [[1, 0], [0, 1]], "reduction": "mean"})
    _close(bp.grad_input, grad_x[0])
    _close(bp.grad_filters[0], grad_w[0, 0])


def test_max_pool_ties_go_to_the_first_maximum():
    bp = backprop([[1, 3, 3], [0, 1, 3]], [Pool("max", (2, 3))])
    assert bp.grad_input.tolist() == [[0, 1, 0], [0, 0, 0]]
    assert bp.steps[0].routes[0].tied == 3
    assert "the first of 3 tied cells" in bp.to_text()
    if torch is not None:
        t = torch.tensor([[[1.0, 3, 3], [0, 1, 3]]], requires_grad=True)
        TF.max_pool2d(t, (2, 3)).sum().backward()
        assert t.grad[0].tolist() == bp.grad_input.tolist()


def test_relu_kink_and_stride_dilation_are_shown():
    bp = backprop([[1, 0, 2, 1], [3, 1, 0, 2], [0, 0, 4, 1], [1, 2, 1, 0]],
                  [Conv([[1, -1], [0, 1]], stride=2), "relu"])
    conv = bp.steps[-1]
    assert conv.dilated.shape == (1, 3, 3)
    assert conv.dilated[0, 1].tolist() == [0, 0, 0] and conv.dilated[0, :, 1].tolist() == [0, 0, 0]
    text = bp.to_text()
    assert "dilate(dL/dConv(I))" in text and "stride - 1 zeros" in text
    relu = bp.steps[0]
    zero = [i for i in np.ndindex(*relu.stage.input.shape) if relu.stage.input[i] == 0]
    assert all(relu.derivative[i] == 0 for i in zero)


def test_convolve_mode_flips_the_filter_gradient_back():
    w = [[1, 2], [0, -1]]
    a = backprop(LECTURE_I, [Conv(w, mode="convolve")])
    b = backprop(LECTURE_I, [Conv(np.flip(w).tolist())])
    assert np.array_equal(a.grad_filters[0], np.flip(b.grad_filters[0]))
    assert np.array_equal(a.grad_input, b.grad_input)
    assert "flipped back" in a.to_text()


# ---------------------------------------------------------------------------------------------
# the loop references of the backward functions, against the vectorised backward functions


def test_naive_backward_references_match_the_operators():
    rng = np.random.default_rng(21)
    for _ in range(15):
        x = rng.integers(-3, 4, (2, 2, 5, 6))
        w = rng.integers(-2, 3, (3, 2, 2, 3))
        stride, dilation = tuple(rng.integers(1, 3, 2)), tuple(rng.integers(1, 3, 2))
        pads = ((int(rng.integers(0, 2)), int(rng.integers(0, 2))), (int(rng.integers(0, 3)), 1))
        mode = ["zeros", "reflect", "replicate", "circular"][rng.integers(4)]
        y = conv_ops.conv(x, w, None, stride, pads, dilation, 1, mode)
        g = rng.integers(-2, 3, y.shape)
        want = conv_ops.conv_backward(g, x, w, np.zeros(3), stride, pads, dilation, 1, mode)
        got = _naive.naive_conv_backward(g, x, w, stride, pads, dilation, 1, mode)
        for a, b in zip(got, want, strict=True):
            assert np.array_equal(a, b)
        k, s = tuple(rng.integers(1, 4, 2)), tuple(rng.integers(1, 3, 2))
        pp = ((int(rng.integers(0, k[0] // 2 + 1)),) * 2, (int(rng.integers(0, k[1] // 2 + 1)),) * 2)
        ceil = bool(rng.integers(2))
        ym = pool_ops.max_pool(x, k, s, pp, 1, ceil)
        gm = rng.integers(-2, 3, ym.shape)
        assert np.array_equal(_naive.naive_max_pool_backward(gm, x, k, s, pp, (1, 1), ceil),
                              pool_ops.max_pool_backward(gm, x, k, s, pp, 1, ceil))
        ya = avg_pool_ops.avg_pool(x, k, s, pp, ceil, True)
        ga = rng.integers(-2, 3, ya.shape)
        exact = _naive.naive_avg_pool_backward(ga.astype(object), x.astype(object), k, s, pp, (1, 1), ceil)
        _close(exact, avg_pool_ops.avg_pool_backward(ga, x, k, s, pp, ceil, True))
        assert np.array_equal(_naive.naive_relu_backward(g, y), act_ops.relu_backward(g, y))
        _close(_naive.naive_leaky_relu_backward(g, y, 0.5), act_ops.leaky_relu_backward(g, y, 0.5))


# ---------------------------------------------------------------------------------------------
# rendering, errors, CLI, docs


@pytest.mark.parametrize("fmt, needle", [("text", "dL/dF[1,1] = 1*0 + 0*0 + 0*0 + 4*1 = 4"),
                                         ("md", "`dL/dF[1,1] = 1*0 + 0*0 + 0*0 + 4*1 = 4`"),
                                         ("latex", "\\begin{bmatrix}"), ("html", "cnnlab-window")])
def test_renders_in_every_format(fmt, needle):
    bp = backprop(LECTURE_I, [Conv(LECTURE_F), "relu", Pool("max", 2, stride=1)])
    out = bp.render(fmt)
    assert needle in out
    assert "Answer" in out
    if fmt == "latex":
        assert bp._repr_latex_().startswith("$$")
    if fmt == "html":
        assert bp._repr_html_() == out


def test_cells_limit_shortens_but_keeps_matrices():
    bp = backprop(np.arange(25).reshape(5, 5) % 7 - 3, [Conv([[1, 0, -1], [2, 1, 0], [0, 1, 1]], padding=1), "relu"])
    full, short = bp.to_text(), bp.to_text(cells=1)
    assert len(short) < len(full) / 2
    assert "more cell(s) not shown" in short and "dL/dI =" in short.split("Answer")[-1]


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"loss": "hinge"}, ValueError, "loss must be one of"),
    ({"loss": "mse"}, ValueError, "needs a target"),
    ({"loss": "mse", "target": [[1, 2, 3]]}, ValueError, "target must have the output's shape"),
    ({"loss": "mse", "target": [[1, 2], [3, 4]], "reduction": "max"}, ValueError, "reduction"),
    ({"loss": "sum", "target": 1}, ValueError, "takes no target"),
    ({"loss": "cross_entropy", "target": 1.5}, TypeError, "class index"),
    ({"loss": "cross_entropy", "target": 4}, ValueError, r"in \[0, 4\)"),
    ({"loss": "cross_entropy"}, TypeError, "class index"),
])
def test_bad_losses_raise_clear_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        backprop(LECTURE_I, [Conv(LECTURE_F)], **kwargs)


def run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_backprop_lecture(capsys):
    code, out, err = run(capsys, ["backprop", "-i", "[[1,0,2],[3,1,0],[0,0,4]]", "-f", "[[1,0],[0,1]]",
                                  "--activation", "relu", "--pool", "max", "--pool-size", "2", "--pool-stride", "1"])
    assert code == 0 and err == ""
    assert "dL/dF[1,1] = 1*0 + 0*0 + 0*0 + 4*1 = 4" in out
    code, out, _ = run(capsys, ["backprop", "-i", "1 2; 3 4", "-f", "1/2", "--loss", "mse", "--target", "0 0; 0 0",
                                "--format", "md"])
    assert code == 0 and "L = 15/8" in out   # (1/4 + 1 + 9/4 + 4) / 4
    code, out, _ = run(capsys, ["backprop", "-i", "1 2; 3 4", "-f", "1", "--loss", "cross_entropy", "--target", "3"])
    assert code == 0 and "softmax" in out


@pytest.mark.parametrize("argv, message", [
    (["--loss", "mse"], "needs a --target"),
    (["--loss", "sum", "--target", "1"], "takes no --target"),
    (["--loss", "cross_entropy", "--target", "x"], "class index"),
    (["--loss", "cross_entropy", "--target", "7"], "class index must be in [0, 4)"),
    (["--loss", "mse", "--target", "[[1,2],[3]]"], "--target"),
    (["--both"], "unrecognized arguments: --both"),
    (["--loss", "mse", "--target", "1 2 3"], "target must have the output's shape"),
])
def test_cli_backprop_bad_input_one_line_exit_2(capsys, argv, message):
    code, out, err = run(capsys, ["backprop", "-i", "1 2; 3 4", "-f", "1", *argv])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err
    assert err.startswith("cnnlab backprop") or err.startswith("cnnlab: unrecognized")


def test_docs_doctest():
    result = doctest.testfile(str(DOCS / "backprop-by-hand.md"), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
