"""Continuous convolution / correlation: exact results against numerical integration, the numeric
fallback, sampled sums against the discrete operators, and their convergence.
"""

from __future__ import annotations

import doctest
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sp = pytest.importorskip("sympy")
integrate = pytest.importorskip("scipy.integrate")

from cnnlab.explain import continuous  # noqa: E402
from cnnlab.explain._piecewise import import_sympy  # noqa: E402
from cnnlab.explain.continuous import (  # noqa: E402
    ContinuousResult,
    convergence_table,
    convolve,
    correlate,
    rect,
    sampled_sum,
)
from cnnlab.functional._correlate import convolve as discrete_convolve  # noqa: E402
from cnnlab.functional._correlate import correlate as discrete_correlate  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs"
t = sp.Symbol("t", real=True)
a = sp.Symbol("a", positive=True)


def reference(f, g, t_values, op="convolve", lo=-np.inf, hi=np.inf, f_points=(), g_points=()):
    """``int f(tau) g(t -/+ tau) dtau`` by scipy.integrate.quad, from the signals alone.

    ``f_points`` / ``g_points`` are where f and g jump or kink; quad is told where they land.
    """
    fn = sp.lambdify(t, f, "numpy")
    gn = sp.lambdify(t, g, "numpy")
    sign = -1.0 if op == "convolve" else 1.0
    out = []
    for t0 in t_values:

        def integrand(tau, t0=t0):
            return float(fn(tau)) * float(gn(t0 + sign * tau))

        if np.isfinite(lo) and np.isfinite(hi):
            # g(t0 + sign*tau) breaks where t0 + sign*tau = q
            breaks = list(f_points) + [(q - t0) * sign for q in g_points]
            pts = sorted({p for p in breaks if lo < p < hi}) or None
            out.append(integrate.quad(integrand, lo, hi, points=pts, limit=200)[0])
        else:
            out.append(integrate.quad(integrand, lo, hi, limit=200)[0])
    return np.array(out)


@pytest.fixture(scope="module")
def classic():
    """The classic pairs, each computed once (SymPy integration is the slow part)."""
    box = rect(t)
    decay = sp.exp(-a * t) * sp.Heaviside(t)
    return {
        "rect": convolve(box, box),
        "rect_heaviside": convolve(sp.Heaviside(t + sp.S.Half) - sp.Heaviside(t - sp.S.Half), box),
        "decay_step": convolve(decay, sp.Heaviside(t)),
        "gauss": convolve(sp.exp(-(t**2) / 2), sp.exp(-((t - 1) ** 2) / 8)),
        "decay_corr": correlate(decay.subs(a, 1), decay.subs(a, 1)),
    }


T_SAMPLES = np.array([-2.3, -1.0, -0.75, -0.2, 0.0, 0.1, 0.5, 0.999, 1.4, 3.0])


# ----------------------------------------------------------------------------------------------
# classic pairs


def test_rect_convolved_with_rect_is_the_triangle(classic):
    res = classic["rect"]
    assert res.exact and isinstance(res, ContinuousResult)
    assert isinstance(res.expr, sp.Piecewise)
    box = rect(t)
    np.testing.assert_allclose(
        res.evaluate(T_SAMPLES),
        reference(box, box, T_SAMPLES, lo=-0.5, hi=0.5, f_points=(-0.5, 0.5), g_points=(-0.5, 0.5)),
        atol=1e-10,
    )
    # the triangle: 1 - |t| on [-1, 1], zero outside, as an expression identity
    tri = sp.Max(0, 1 - sp.Abs(t))
    for t0 in [sp.Rational(-3, 2), sp.Rational(-1, 3), 0, sp.Rational(2, 7), sp.Rational(5, 4)]:
        assert sp.simplify(res.expr.subs(t, t0) - tri.subs(t, t0)) == 0


def test_heaviside_form_gives_the_same_triangle(classic):
    assert classic["rect_heaviside"].exact
    assert sp.simplify(classic["rect_heaviside"].expr - classic["rect"].expr) == 0


def test_exponential_decay_with_step(classic):
    res = classic["decay_step"]
    assert res.exact and a in res.expr.free_symbols
    with pytest.raises(ValueError, match="substitute values first"):
        res.evaluate([1.0])
    res2 = res.subs({a: 2})
    f = sp.exp(-2 * t) * sp.Heaviside(t)
    ts = np.array([-1.0, 0.25, 1.0, 4.0])
    np.testing.assert_allclose(
        res2.evaluate(ts), reference(f, sp.Heaviside(t), ts, lo=0, hi=60, g_points=(0,)), atol=1e-9
    )
    # (1 - exp(-a t)) / a for t > 0, by hand
    assert sp.simplify(res.expr.subs(t, 3) - (1 - sp.exp(-3 * a)) / a) == 0


def test_gaussian_convolved_with_gaussian_is_gaussian(classic):
    res = classic["gauss"]
    assert res.exact
    ts = np.array([-3.0, -0.5, 0.0, 1.0, 2.5, 6.0])
    np.testing.assert_allclose(
        res.evaluate(ts),
        reference(sp.exp(-(t**2) / 2), sp.exp(-((t - 1) ** 2) / 8), ts),
        rtol=1e-9,
        atol=1e-12,
    )
    # a Gaussian: log of the result is a quadratic in t with negative leading coefficient
    log = sp.expand(sp.expand_log(sp.log(res.expr), force=True))
    poly = sp.Poly(log, t)
    assert poly.degree() == 2 and poly.all_coeffs()[0] < 0
    # variances add: 1 + 4 = 5, so the exponent is -(t - 1)^2 / 10
    assert sp.simplify(poly.all_coeffs()[0] + sp.Rational(1, 10)) == 0


def test_correlation_of_decays(classic):
    res = classic["decay_corr"]
    assert res.exact
    f = sp.exp(-t) * sp.Heaviside(t)
    ts = np.array([-2.0, -0.3, 0.0, 0.7, 2.0])
    np.testing.assert_allclose(
        res.evaluate(ts), reference(f, f, ts, op="correlate", lo=0, hi=60, g_points=(0,)), atol=1e-9
    )


def _random_piecewise_poly(rng):
    """Two or three polynomial pieces of degree <= 2 on rational breakpoints, zero elsewhere."""
    n = int(rng.integers(2, 4))
    quarters = rng.choice(np.arange(-8, 9), size=n + 1, replace=False)
    ends = sorted(sp.Rational(int(v), 4) for v in quarters)
    args = []
    for lo, hi in zip(ends[:-1], ends[1:], strict=True):
        coeffs = [int(c) for c in rng.integers(-3, 4, size=3)]
        args.append((coeffs[0] + coeffs[1] * t + coeffs[2] * t**2, sp.And(t >= lo, t < hi)))
    args.append((0, True))
    return sp.Piecewise(*args), [float(e) for e in ends]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("op", ["convolve", "correlate"])
def test_random_piecewise_polynomials_against_quadrature(seed, op):
    rng = np.random.default_rng(seed)
    f, f_ends = _random_piecewise_poly(rng)
    g, g_ends = _random_piecewise_poly(rng)
    res = (convolve if op == "convolve" else correlate)(f, g)
    assert res.exact
    ts = rng.uniform(-5, 5, size=8)
    ref = reference(f, g, ts, op=op, lo=f_ends[0], hi=f_ends[-1], f_points=f_ends, g_points=g_ends)
    np.testing.assert_allclose(res.evaluate(ts), ref, atol=1e-8)


def test_correlate_is_convolve_with_f_reversed():
    f = sp.Piecewise((t, sp.And(t >= 0, t < 1)), (0, True))
    g = rect(t, 2)
    ts = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(
        correlate(f, g).evaluate(ts), convolve(f.subs(t, -t), g).evaluate(ts), atol=1e-12
    )
    # the quadrature path uses the same convention
    np.testing.assert_allclose(
        correlate(f, g, method="numeric").evaluate(ts), correlate(f, g).evaluate(ts), atol=1e-10
    )
    # swapping the arguments mirrors the correlation
    np.testing.assert_allclose(
        correlate(f, g).evaluate(ts), correlate(g, f).evaluate(-ts), atol=1e-12
    )


# ----------------------------------------------------------------------------------------------
# numeric fallback


HARD_F = sp.sin(sp.sin(t)) * rect(t)  # no elementary antiderivative


def _hard_reference(ts):
    out = []
    for t0 in ts:
        lo, hi = max(-0.5, t0 - 0.5), min(0.5, t0 + 0.5)
        out.append(integrate.quad(lambda s: math.sin(math.sin(s)), lo, hi)[0] if lo < hi else 0.0)
    return np.array(out)


@pytest.fixture(scope="module")
def hard():
    return convolve(HARD_F, rect(t))


def test_numeric_fallback_is_flagged_and_right(hard):
    assert hard.exact is False
    assert "numeric" in hard.method and "numeric" in str(hard)
    assert isinstance(hard.expr, sp.Integral)  # what was integrated, unevaluated
    ts = np.array([-1.2, -0.6, 0.2, 0.45, 0.9])
    np.testing.assert_allclose(hard.evaluate(ts), _hard_reference(ts), atol=1e-10)
    assert hard(np.array([[0.2]])).shape == (1, 1)


def test_exact_method_refuses_when_there_is_no_closed_form():
    with pytest.raises(ValueError, match="no closed form"):
        convolve(HARD_F, rect(t), method="exact")


def test_numpy_quadrature_without_scipy(monkeypatch, classic):
    monkeypatch.setattr(continuous, "_scipy_quad", lambda: None)
    res = convolve(HARD_F, rect(t))
    assert not res.exact and "Gauss-Legendre" in res.method
    ts = np.array([-0.6, 0.2, 0.9])
    np.testing.assert_allclose(res.evaluate(ts), _hard_reference(ts), atol=1e-10)
    # infinite ranges are mapped to finite ones
    gauss = convolve(sp.exp(-(t**2) / 2), sp.exp(-((t - 1) ** 2) / 8), method="numeric")
    ts = np.array([-1.0, 0.5, 3.0])
    np.testing.assert_allclose(gauss.evaluate(ts), classic["gauss"].evaluate(ts), rtol=1e-7)


def test_numeric_method_agrees_with_exact(classic):
    box = rect(t)
    res = convolve(box, box, method="numeric")
    assert not res.exact
    np.testing.assert_allclose(res.evaluate(T_SAMPLES), classic["rect"].evaluate(T_SAMPLES), atol=1e-10)


def test_numeric_fallback_needs_numbers():
    b = sp.Symbol("b", positive=True)
    with pytest.raises(ValueError, match=r"depend on \['b'\]"):
        convolve(sp.sin(sp.sin(b * t)) * rect(t), rect(t), t=t)


# ----------------------------------------------------------------------------------------------
# sampled sums


def _samples(expr, step, lo, hi):
    k = np.arange(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)
    values = sp.lambdify(t, expr, "numpy")(k * step)
    return k[0], np.broadcast_to(np.asarray(values, dtype=float), k.shape)


def test_sampled_convolution_is_the_discrete_convolution():
    f = sp.Piecewise((1 - t, sp.And(t >= 0, t <= 1)), (0, True))
    g = rect(t, 2) * (t + 2)
    step = 0.125
    k0, fs = _samples(f, step, 0, 1)
    m0, gs = _samples(g, step, -1, 1)
    full = discrete_convolve(fs, gs, mode="full")
    n = k0 + m0 + np.arange(full.size)
    np.testing.assert_allclose(sampled_sum(f, g, step, n * step), step * full, atol=1e-12)


def test_sampled_correlation_is_the_discrete_correlation_with_arguments_swapped():
    f = sp.Piecewise((t + 1, sp.And(t >= -1, t <= 0)), (0, True))  # the "kernel"
    g = sp.Piecewise((t**2, sp.And(t >= 0, t <= 2)), (0, True))  # the "signal"
    step = 0.25
    k0, fs = _samples(f, step, -1, 0)
    m0, gs = _samples(g, step, 0, 2)
    full = discrete_correlate(gs, fs, mode="full")
    n = m0 - k0 - (fs.size - 1) + np.arange(full.size)
    np.testing.assert_allclose(
        sampled_sum(f, g, step, n * step, op="correlate"), step * full, atol=1e-12
    )


@pytest.mark.parametrize(
    ("f", "g", "op", "support"),
    [
        (rect(t), rect(t), "convolve", None),
        (rect(t), sp.Max(0, 1 - sp.Abs(t)), "convolve", None),
        (rect(t), rect(t, 3), "correlate", None),
        (sp.exp(-2 * t) * sp.Heaviside(t), sp.Heaviside(t), "convolve", (0, 30)),
    ],
)
def test_sampled_sum_converges_as_the_step_halves(f, g, op, support):
    steps = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    ts = np.arange(-2, 3.01, 0.25)  # on every grid, so each step sees the same alignment
    errors = [err for _, err in convergence_table(f, g, steps, ts, op=op, support=support)]
    assert all(e2 < e1 for e1, e2 in zip(errors[:-1], errors[1:], strict=True))
    assert errors[-1] < errors[0] / 4  # at least first order: 3 halvings divide it by ~8


def test_gaussian_sampled_sum_converges_fast():
    f, g = sp.exp(-(t**2)), sp.exp(-((t - 1) ** 2) / 4)
    rows = convergence_table(f, g, [1.0, 0.5], [0.3, 1.7, -3.1], support=(-12, 12))
    assert rows[1][1] < rows[0][1] / 100 and rows[1][1] < 1e-9


# ----------------------------------------------------------------------------------------------
# errors and helpers


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: convolve("t", rect(t)), TypeError, "convolve: f must be a SymPy expression"),
        (lambda: correlate(rect(t), [1, 2]), TypeError, "correlate: g must be a SymPy expression"),
        (lambda: convolve(rect(t), rect(t), t="t"), TypeError, "t must be a SymPy Symbol"),
        (lambda: convolve(rect(t), rect(t), method="fast"), ValueError, "method must be one of"),
        (
            lambda: convolve(sp.Symbol("x") + sp.Symbol("y"), sp.Symbol("y")),
            ValueError,
            "cannot tell which symbol",
        ),
        (lambda: sampled_sum(rect(t), rect(t), 0, [0.0]), ValueError, "step must be a positive"),
        (lambda: sampled_sum(rect(t), rect(t), "1", [0.0]), TypeError, "step must be a positive"),
        (lambda: sampled_sum(rect(t), rect(t), 0.1, [0.0], op="conv"), ValueError, "op must be"),
        (lambda: sampled_sum(sp.exp(-(t**2)), rect(t), 0.1, [0.0]), ValueError, "support="),
        (lambda: sampled_sum(rect(t), rect(t), 0.1, [0.0], support=(1, 0)), ValueError, "lo <= hi"),
        (lambda: sampled_sum(a * rect(t), rect(t), 0.1, [0.0], t=t), ValueError, r"\['a'\]"),
        (lambda: convergence_table(rect(t), rect(t), [], [0.0]), ValueError, "non-empty"),
        (lambda: convergence_table(rect(t), rect(t), [0.1], [0.0], op="conv"), ValueError, "op must be"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_missing_sympy_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "sympy", None)
    with pytest.raises(ImportError, match=r"pip install cnnlab\[explain\]"):
        import_sympy()


def test_variable_is_inferred_and_kept():
    s = sp.Symbol("s")  # not declared real: the result is still in terms of s
    res = convolve(rect(s), rect(s))
    assert res.t == s and res.expr.free_symbols == {s}
    assert float(res.evaluate(0.5)) == pytest.approx(0.5)


def test_latex_repr_states_numeric(hard, classic):
    assert "numeric" in hard._repr_latex_()
    assert "numeric" not in classic["rect"]._repr_latex_()


def test_continuous_convolution_doc():
    result = doctest.testfile(
        str(DOCS / "continuous-convolution.md"),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
    )
    assert result.attempted > 0 and result.failed == 0
