"""1-D signals through explain, backprop and matrix (against loops written here), and the lecture's
remaining questions: filter bank, receptive fields, the flipped filter, the scale experiment,
continuous convolution from text."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.explain import (
    Conv,
    Pool,
    backprop,
    continuous_report,
    explain,
    filter_bank,
    flip_experiment,
    matrix_view,
    model_field,
    parse_signal,
    rescale,
    synthetic_image,
)

# ---------------------------------------------------------------------------------------------
# loop references for 1-D


def loop_conv1d(x, w, stride=1, pad=(0, 0), dilation=1, convolve=False):
    w = w[::-1] if convolve else w
    xp = np.concatenate([np.zeros(pad[0], x.dtype), x, np.zeros(pad[1], x.dtype)])
    span = dilation * (len(w) - 1) + 1
    out = []
    for start in range(0, len(xp) - span + 1, stride):
        out.append(sum(xp[start + t * dilation] * w[t] for t in range(len(w))))
    return np.array(out)


def loop_pool1d(x, k, stride, kind):
    out = []
    for start in range(0, len(x) - k + 1, stride):
        window = x[start:start + k]
        out.append(max(window) if kind == "max" else sum(window) / k)
    return np.array(out)


CASES = [(n, k, s, p, d) for n in (5, 9) for k in (1, 2, 3) for s in (1, 2) for p in (0, 1, 2) for d in (1, 2)
         if d * (k - 1) + 1 <= n + 2 * p]


@pytest.mark.parametrize("n, k, stride, pad, dilation", CASES)
@pytest.mark.parametrize("convolve", [False, True])
def test_signal_conv_matches_the_loops(n, k, stride, pad, dilation, convolve):
    rng = np.random.default_rng(n * 100 + k * 10 + stride + pad + dilation)
    x, w = rng.integers(-4, 5, n), rng.integers(-3, 4, k)
    sol = explain(x, [Conv(w, stride=stride, padding=pad, dilation=dilation,
                           mode="convolve" if convolve else "correlate")])
    expected = loop_conv1d(x, w, stride, (pad, pad), dilation, convolve)
    assert sol.output.shape == expected.shape
    np.testing.assert_array_equal(sol.output, expected)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("k, stride", [(2, 2), (3, 1), (2, 1)])
def test_signal_pool_matches_the_loops(kind, k, stride):
    x = np.array([3, -1, 4, 1, -5, 9, 2, 6])
    sol = explain(x, [Pool(kind, k, stride=stride)])
    np.testing.assert_array_equal(np.array(sol.output, dtype=float), loop_pool1d(x, k, stride, kind))


def test_signal_backprop_matches_the_loops():
    x, w = np.array([1, 2, -1, 3, 0, 2]), np.array([2, -1, 1])
    bp = backprop(x, [Conv(w, padding=1)])
    # sum loss: dL/dx[i] = sum of the filter taps that touched x[i]; dL/dw[t] = sum of the windows' cells
    grad_x = np.zeros(len(x), dtype=np.int64)
    xp = np.concatenate([[0], x, [0]])
    grad_w = np.zeros(len(w), dtype=np.int64)
    for j in range(len(xp) - len(w) + 1):
        for t in range(len(w)):
            if 0 <= j + t - 1 < len(x):
                grad_x[j + t - 1] += w[t]
            grad_w[t] += xp[j + t]
    np.testing.assert_array_equal(np.ravel(bp.grad_input), grad_x)
    np.testing.assert_array_equal(np.ravel(bp.grad_filters[0]), grad_w)


def test_the_lecture_style_discrete_example_and_toeplitz():
    # (f * g)[n] = sum_m f[m] g[n - m] with full padding: the lecture's discrete 1-D convolution
    f, g = np.array([1, 2, 3]), np.array([0, 1, 2])
    sol = explain(f, [Conv(g, mode="convolve", padding="full")])
    np.testing.assert_array_equal(sol.output, np.convolve(f, g))
    view = matrix_view(explain(np.arange(6), [Conv([1, 2, -1])]))
    m = view.matrix
    assert all(len(set(np.diagonal(m, k))) == 1 for k in range(-m.shape[0] + 1, m.shape[1]))
    assert "Toeplitz" in view.render() and view.forward_ok and view.backward_ok


# ---------------------------------------------------------------------------------------------
# the lecture's remaining questions


def test_filter_bank_responds_where_the_feature_is():
    bank = filter_bank(synthetic_image())
    v, h = bank.responses["vertical edge"], bank.responses["horizontal edge"]
    assert v[8, 12] == 0 and h[8, 12] == 0  # inside the flat rectangle
    assert abs(v[8, 5]) == 800 and h[8, 5] == 0  # on its left edge: vertical, not horizontal
    assert abs(h[5, 12]) == 800 and v[5, 12] == 0  # on its top edge
    assert bank.responses["blur"].max() == 16 * 200
    assert "strongest response" in bank.render()


def test_filter_bank_on_a_real_image_when_available():
    from cnnlab.data import DatasetNotFoundError, load_mnist

    try:
        x, _ = load_mnist("fashion-mnist", "test")
    except DatasetNotFoundError:
        pytest.skip("Fashion-MNIST is not available")
    bank = filter_bank(x[1], source="Fashion-MNIST test image 1")
    assert bank.image.shape == (28, 28) and set(bank.responses) == {"vertical edge", "horizontal edge",
                                                                    "blur", "sharpen"}
    assert bank.summary("blur")["peak"] > 0


def test_model_field_of_builtin_models():
    from cnnlab.training.models import build_model

    field = model_field(build_model("lenet5"), (1, 28, 28), name="lenet5")
    assert [r for *_, r, _ in field.rows] == [5, 6, 14, 16] and field.field == 16
    assert field.first_layer_covering(28) is None
    one_d = model_field(build_model("mnist1d-cnn"), (1, 40))
    assert [r for *_, r, _ in one_d.rows] == [5, 9, 17]


def test_flip_experiment_learns_the_flipped_filter_with_the_same_loss():
    exp = flip_experiment(steps=60)
    assert exp.flipped and exp.loss_gap < 1e-9
    assert exp.correlate_losses[-1] < exp.correlate_losses[0] / 10


def test_rescale_zooms_about_the_centre():
    img = np.zeros((1, 9, 9))
    img[0, 3:6, 3:6] = 1.0
    np.testing.assert_allclose(rescale(img, 1.0), img)
    assert rescale(img, 0.5).sum() < img.sum() < rescale(img, 2.0).sum()
    assert rescale(img, 2.0)[0, 4, 4] == 1.0


def test_scale_experiment_runs_on_a_tiny_subset():
    from cnnlab.data import DataError, load_dataset
    from cnnlab.explain import scale_experiment

    try:
        d = load_dataset("fashion-mnist")
    except DataError:
        pytest.skip("Fashion-MNIST is not available")
    exp = scale_experiment(d.x_train[:64], d.y_train[:64], d.x_test[:32], d.y_test[:32], epochs=1,
                           scales=(0.5, 1.0), data="fashion-mnist")
    assert len(exp.plain) == len(exp.augmented) == 2
    assert all(0 <= a <= 1 for a in exp.plain + exp.augmented)
    assert "| scale | 0.5x | 1x |" in exp.table()
    with pytest.raises(ValueError, match="must be \\(N, 28, 28\\) images"):
        scale_experiment(d.x_train[:4, 0, :10], d.y_train[:4], d.x_test[:4], d.y_test[:4])


HOSTILE = [
    "__import__('os').system('touch /tmp/cnnlab-pwned')",
    "t.__class__.__mro__",
    "().__class__.__bases__[0].__subclasses__()",
    "exec('print(1)')",
    "eval('1')",
    "open('/etc/passwd')",
    "Symbol('x').evalf",
    "lambda: 1",
    "[t for t in (1,)]",
    "t if t else 1",
    "'abc'",
    "t[0]",
    "exp(t, x=1)",
    "1" * 600,
    "t**10**10",
    "f\"{t}\"",
    "t; import os",
    "(t := 1)",
    "__builtins__",
    "getattr(t, 'func')",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_signals_are_refused(text, tmp_path):
    with pytest.raises(ValueError, match="signal"):
        parse_signal(text)


def test_signals_parse_and_converge():
    expr, t = parse_signal("exp(-t)*Heaviside(t)")
    assert str(expr) == "exp(-t)*Heaviside(t)"
    assert str(parse_signal("t^2 + 2*rect(t/2)")[0]).startswith("t**2")
    report = continuous_report("rect(t)", "exp(-t)*Heaviside(t)")
    errors = [e for *_, e in report.rows]
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False))
    assert "Piecewise" in report.render()
