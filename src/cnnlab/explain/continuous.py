"""Continuous convolution and cross-correlation of signals written as SymPy expressions.

The discrete operators of :mod:`cnnlab.functional` are sampled versions of two integrals:

.. math::

    (f * g)(t) = \\int_{-\\infty}^{\\infty} f(\\tau)\\, g(t - \\tau)\\, d\\tau
    \\qquad
    (f \\star g)(t) = \\int_{-\\infty}^{\\infty} f(\\tau)\\, g(t + \\tau)\\, d\\tau

(the correlation is usually written with ``conj(f)``; for the real signals here that changes
nothing).  :func:`convolve` and :func:`correlate` compute them exactly with SymPy when it can,
piece by piece for piecewise signals (rectangles, steps, ramps...), and fall back to numerical
quadrature otherwise, saying so in the result.  :func:`sampled_sum` evaluates the Riemann sum
``step * sum_k f(k*step) g(t - k*step)`` - the discrete convolution of the samples - and
:func:`convergence_table` shows it approaching the integral as the step shrinks.

SymPy is an optional dependency: ``pip install cnnlab[explain]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.explain._piecewise import NoClosedForm, exact_integral, import_sympy, signal_support

__all__ = [
    "ContinuousResult",
    "convergence_table",
    "convolve",
    "correlate",
    "rect",
    "sampled_sum",
]

OPS = ("convolve", "correlate")
METHODS = ("auto", "exact", "numeric")


def _scipy_quad() -> Callable[..., Any] | None:
    """``scipy.integrate.quad`` when SciPy is installed, else ``None`` (NumPy rule is used)."""
    try:
        from scipy.integrate import quad
    except ImportError:  # pragma: no cover - exercised only without scipy
        return None
    return quad


# ----------------------------------------------------------------------------------------------
# argument handling


def _check_expr(op: str, name: str, value: Any) -> Any:
    sp = import_sympy()
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a SymPy expression or a number, got {value!r}")
    if isinstance(value, (int, float)):
        return sp.sympify(value)
    if not isinstance(value, sp.Expr):
        raise TypeError(
            f"{op}: {name} must be a SymPy expression or a number, got {type(value).__name__}"
        )
    return value


def _pick_symbol(op: str, f: Any, g: Any, t: Any) -> Any:
    """The signals' variable: ``t`` if given, else the one free symbol (or the one named 't')."""
    sp = import_sympy()
    if t is not None:
        if not isinstance(t, sp.Symbol):
            raise TypeError(f"{op}: t must be a SymPy Symbol, got {type(t).__name__}")
        return t
    free = f.free_symbols | g.free_symbols
    named = [s for s in free if s.name == "t"]
    if len(named) == 1:
        return named[0]
    if len(free) == 1:
        return next(iter(free))
    if not free:
        return sp.Symbol("t", real=True)
    names = sorted(s.name for s in free)
    raise ValueError(
        f"{op}: cannot tell which symbol is the signals' variable among {names}; pass t=..."
    )


def _pick_tau(t: Any, tau: Any, f: Any, g: Any) -> Any:
    sp = import_sympy()
    if tau is not None:
        if not isinstance(tau, sp.Symbol):
            raise TypeError(f"tau must be a SymPy Symbol, got {type(tau).__name__}")
        if tau == t or tau in f.free_symbols | g.free_symbols:
            raise ValueError(f"tau must be a new symbol, not one used by the signals, got {tau}")
        return tau
    names = {s.name for s in f.free_symbols | g.free_symbols | {t}}
    return sp.Symbol("tau", real=True) if "tau" not in names else sp.Dummy("tau", real=True)


# ----------------------------------------------------------------------------------------------
# numerical quadrature


def _gauss_legendre(func: Callable[[np.ndarray], np.ndarray], a: float, b: float) -> float:
    """Composite 10-point Gauss-Legendre rule on [a, b] (infinite ends mapped to [0, 1))."""
    nodes, weights = np.polynomial.legendre.leggauss(10)
    if math.isinf(a) and math.isinf(b):
        return _gauss_legendre(func, -math.inf, 0.0) + _gauss_legendre(func, 0.0, math.inf)
    if math.isinf(a) or math.isinf(b):
        sign = 1.0 if math.isinf(b) else -1.0
        base = a if math.isinf(b) else b

        def mapped(s: np.ndarray) -> np.ndarray:  # tau = base + sign * s / (1 - s)
            return func(base + sign * s / (1 - s)) / (1 - s) ** 2

        return _gauss_legendre(mapped, 0.0, 1.0 - 1e-12)
    panels = np.linspace(a, b, 201)
    mid = (panels[:-1] + panels[1:]) / 2
    half = (panels[1:] - panels[:-1]) / 2
    points = mid[:, None] + half[:, None] * nodes[None, :]
    values = np.asarray(func(points), dtype=float)
    return float(np.sum(values * weights[None, :] * half[:, None]))


def _numeric_integral(
    func: Callable[[Any], Any], a: float, b: float, breaks: Sequence[float]
) -> float:
    """``int_a^b func``: scipy.integrate.quad when available, split at the signals' breakpoints."""
    inner = sorted(v for v in breaks if a < v < b)
    edges = [a, *inner, b]
    quad = _scipy_quad()
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if quad is not None:
            total += quad(func, lo, hi, limit=200)[0]
        else:
            total += _gauss_legendre(func, lo, hi)
    return total


def _lambdify(expr: Any, t: Any) -> Callable[[Any], np.ndarray]:
    """A NumPy function of ``t`` that always returns an array of the argument's shape."""
    sp = import_sympy()
    raw = sp.lambdify(t, expr, modules="numpy")

    def call(values: Any) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        return np.broadcast_to(np.asarray(raw(values), dtype=float), values.shape)

    return call


# ----------------------------------------------------------------------------------------------
# results


@dataclass
class ContinuousResult:
    """The result of a continuous convolution or correlation.

    Attributes
    ----------
    op : str
        ``'convolve'`` or ``'correlate'``.
    f, g : sympy.Expr
        The two signals.
    t : sympy.Symbol
        Their variable (and the result's).
    exact : bool
        ``True`` when ``expr`` is SymPy's closed form; ``False`` when the integral could not be
        done symbolically and :meth:`evaluate` uses numerical quadrature.
    expr : sympy.Expr
        The closed form when ``exact``; otherwise the unevaluated integral (for display).
    method : str
        How the values are obtained, e.g. ``'exact (SymPy)'`` or
        ``'numeric (scipy.integrate.quad)'``.
    """

    op: str
    f: Any
    g: Any
    t: Any
    exact: bool
    expr: Any
    method: str
    _func: Callable[[Any], np.ndarray] | None = field(default=None, repr=False, compare=False)

    def evaluate(self, t_values: Any) -> np.ndarray:
        """The result at the given times, as a float array of ``t_values``' shape.

        Raises ``ValueError`` when the expression still has symbols other than ``t``
        (substitute values first, e.g. ``result.subs({a: 2})``).
        """
        if self._func is None:
            extra = self.expr.free_symbols - {self.t}
            if extra:
                names = sorted(s.name for s in extra)
                raise ValueError(
                    f"evaluate: the result still depends on {names}; substitute values first "
                    f"with .subs({{symbol: value}})"
                )
            self._func = _lambdify(self.expr, self.t)
        return self._func(t_values)

    __call__ = evaluate

    def subs(self, values: dict[Any, Any]) -> ContinuousResult:
        """The same result with parameters replaced (``{symbol: value}``)."""
        f, g = self.f.subs(values), self.g.subs(values)
        if self.exact:
            return ContinuousResult(
                self.op, f, g, self.t, True, self.expr.subs(values), self.method
            )
        return _numeric_result(self.op, f, g, self.t, self.expr.subs(values))

    def __str__(self) -> str:
        kind = "exact" if self.exact else "numeric, no closed form found"
        return f"{self.op}: {self.expr}  [{kind}; {self.method}]"

    def _repr_latex_(self) -> str:
        sp = import_sympy()
        note = "" if self.exact else r"\quad\text{(numeric quadrature)}"
        return f"$${sp.latex(self.expr)}{note}$$"


def _numeric_result(op: str, f: Any, g: Any, t: Any, shown: Any) -> ContinuousResult:
    """Values by quadrature of ``f(tau) g(t -/+ tau)`` over the overlap of the supports."""
    extra = (f.free_symbols | g.free_symbols) - {t}
    if extra:
        names = sorted(s.name for s in extra)
        raise ValueError(
            f"{op}: SymPy found no closed form and numeric quadrature needs numbers, but the "
            f"signals depend on {names}; substitute values for them first"
        )
    fn, gn = _lambdify(f, t), _lambdify(g, t)
    f_lo, f_hi, f_breaks = signal_support(f, t)
    g_lo, g_hi, g_breaks = signal_support(g, t)
    sign = -1.0 if op == "convolve" else 1.0  # g(t - tau) or g(t + tau)

    def one(t0: float) -> float:
        # g's argument t0 + sign*tau lies in [g_lo, g_hi]  <=>  tau in this interval:
        ends = sorted(((g_lo - t0) * sign, (g_hi - t0) * sign))
        lo, hi = max(f_lo, ends[0]), min(f_hi, ends[1])
        if not lo < hi:
            return 0.0
        breaks = f_breaks + [(b - t0) * sign for b in g_breaks]

        def integrand(tau: Any) -> Any:
            tau = np.asarray(tau, dtype=float)
            return fn(tau) * gn(t0 + sign * tau)

        return _numeric_integral(integrand, lo, hi, breaks)

    def evaluate(t_values: Any) -> np.ndarray:
        values = np.asarray(t_values, dtype=float)
        out = np.array([one(float(v)) for v in values.ravel()])
        return out.reshape(values.shape)

    method = "numeric (scipy.integrate.quad)" if _scipy_quad() else "numeric (Gauss-Legendre)"
    return ContinuousResult(op, f, g, t, False, shown, method, evaluate)


def _run(op: str, f: Any, g: Any, t: Any, tau: Any, method: str) -> ContinuousResult:
    f = _check_expr(op, "f", f)
    g = _check_expr(op, "g", g)
    if not isinstance(method, str):
        raise TypeError(f"{op}: method must be one of {list(METHODS)}, got {method!r}")
    if method not in METHODS:
        raise ValueError(f"{op}: method must be one of {list(METHODS)}, got {method!r}")
    t = _pick_symbol(op, f, g, t)
    tau = _pick_tau(t, tau, f, g)
    if method != "numeric":
        try:
            value = exact_integral(f, g, t, op)
        except NoClosedForm:
            if method == "exact":
                raise ValueError(
                    f"{op}: SymPy found no closed form for {_integral(op, f, g, t, tau)}; use "
                    f"method='auto' or 'numeric' for numerical quadrature"
                ) from None
        else:
            return ContinuousResult(op, f, g, t, True, value, "exact (SymPy)")
    return _numeric_result(op, f, g, t, _integral(op, f, g, t, tau))


def _integral(op: str, f: Any, g: Any, t: Any, tau: Any) -> Any:
    """The integral being computed, unevaluated (shown when there is no closed form)."""
    sp = import_sympy()
    sign = -1 if op == "convolve" else 1
    return sp.Integral(f.subs(t, tau) * g.subs(t, t + sign * tau), (tau, -sp.oo, sp.oo))


def convolve(
    f: Any, g: Any, t: Any = None, tau: Any = None, *, method: str = "auto"
) -> ContinuousResult:
    """Continuous convolution ``(f * g)(t) = integral of f(tau) g(t - tau) dtau`` over the reals.

    Parameters
    ----------
    f, g : sympy.Expr or number
        Signals in one variable.  Piecewise, Heaviside, Abs, sign, Max and Min pieces are
        handled interval by interval; other parameters (such as a decay rate) may appear.
    t : sympy.Symbol, optional
        The signals' variable; by default their only free symbol, or the one named ``t``.
    tau : sympy.Symbol, optional
        The integration variable shown in a numeric result; ``tau`` by default.
    method : {'auto', 'exact', 'numeric'}, default 'auto'
        ``'auto'`` tries SymPy and falls back to quadrature; ``'exact'`` raises instead of
        falling back; ``'numeric'`` skips SymPy.

    Returns
    -------
    ContinuousResult
        ``.expr`` is the simplified closed form (a ``Piecewise`` for piecewise signals) when
        ``.exact`` is True; ``.evaluate(t_values)`` gives numbers either way.

    Raises
    ------
    TypeError
        If a signal is not a SymPy expression or number, or ``t``/``tau`` is not a Symbol.
    ValueError
        If the variable is ambiguous, ``method`` is unknown, ``method='exact'`` finds no closed
        form, or quadrature is needed while parameters are still symbolic.
    ImportError
        If SymPy is not installed (``pip install cnnlab[explain]``).

    Notes
    -----
    This is the integral that :func:`cnnlab.functional.convolve` samples: with step ``h``,
    ``h * convolve(f(h k), g(h k), mode='full')`` approximates it at ``t = h n``
    (see :func:`sampled_sum`).  Unlike the deep-learning "conv", convolution flips ``g``.

    Examples
    --------
    >>> import sympy as sp
    >>> from cnnlab.explain.continuous import convolve, rect
    >>> t = sp.Symbol("t", real=True)
    >>> convolve(rect(t), rect(t)).expr
    Piecewise((t + 1, (t >= -1) & (t < 0)), (1 - t, (t >= 0) & (t < 1)), (0, True))
    """
    return _run("convolve", f, g, t, tau, method)


def correlate(
    f: Any, g: Any, t: Any = None, tau: Any = None, *, method: str = "auto"
) -> ContinuousResult:
    """Continuous cross-correlation ``(f ⋆ g)(t) = integral of f(tau) g(t + tau) dtau``.

    Same parameters, returns and errors as :func:`convolve`.  ``correlate(f, g)`` equals
    ``convolve(f(-t), g)``: correlation slides ``g`` without flipping it.

    Notes
    -----
    The convention is the usual mathematical one (``conj(f)`` in place of ``f`` for complex
    signals, irrelevant here): the result at ``t`` pairs ``f`` at ``tau`` with ``g`` shifted
    left by ``t``.  The discrete :func:`cnnlab.functional._correlate` ``(x, k)`` computes
    ``sum_m x[n + m] k[m]``, which samples ``correlate(k, x)`` - the kernel is the first
    argument here.  Swapping the arguments mirrors the result: ``(f ⋆ g)(t) = (g ⋆ f)(-t)``.

    Examples
    --------
    >>> import sympy as sp
    >>> from cnnlab.explain.continuous import correlate
    >>> t = sp.Symbol("t", real=True)
    >>> decay = sp.Heaviside(t) * sp.exp(-t)
    >>> correlate(decay, decay).expr          # exp(-|t|)/2
    Piecewise((exp(t)/2, t < 0), (exp(-t)/2, True))
    """
    return _run("correlate", f, g, t, tau, method)


def rect(t: Any, width: Any = 1) -> Any:
    """The rectangle ``1`` for ``|t| <= width/2`` and ``0`` elsewhere, as a SymPy Piecewise.

    Examples
    --------
    >>> import sympy as sp
    >>> from cnnlab.explain.continuous import rect
    >>> rect(sp.Symbol("t"))
    Piecewise((1, (t >= -1/2) & (t <= 1/2)), (0, True))
    """
    sp = import_sympy()
    half = sp.sympify(width) / 2
    return sp.Piecewise((1, sp.And(t >= -half, t <= half)), (0, True))


# ----------------------------------------------------------------------------------------------
# discrete sums as sampled integrals


def sampled_sum(
    f: Any,
    g: Any,
    step: float,
    t_values: Any,
    *,
    t: Any = None,
    op: str = "convolve",
    support: tuple[float, float] | None = None,
) -> np.ndarray:
    """The Riemann sum ``step * sum_k f(k*step) g(t -/+ k*step)`` at each of ``t_values``.

    For ``op='convolve'`` it is ``step * sum_k f(k h) g(t - k h)`` (``h = step``), for
    ``'correlate'`` ``step * sum_k f(k h) g(t + k h)``.  At ``t = n h`` the convolution sum is
    exactly ``h`` times the discrete full convolution of the samples ``f(k h)`` and ``g(k h)``;
    as ``h -> 0`` it tends to the integral (:func:`convolve`).

    Parameters
    ----------
    f, g : sympy.Expr or number
        Signals in one variable, with no other free symbols.
    step : float
        The sampling step ``h > 0``.
    t_values : array_like
        Where to evaluate.
    t : sympy.Symbol, optional
        The signals' variable (inferred as in :func:`convolve`).
    op : {'convolve', 'correlate'}, default 'convolve'
    support : (float, float), optional
        The interval of ``tau`` to sum over.  By default the support of ``f`` when it is
        bounded; required when ``f`` is nonzero on an unbounded set (e.g. a Gaussian).

    Returns
    -------
    numpy.ndarray
        Float array of ``t_values``' shape.

    Raises
    ------
    TypeError, ValueError
        For bad signals, a non-positive step, an unknown ``op``, symbolic parameters, or an
        unbounded ``f`` without ``support``.

    Examples
    --------
    >>> import sympy as sp
    >>> from cnnlab.explain.continuous import rect, sampled_sum
    >>> t = sp.Symbol("t", real=True)
    >>> sampled_sum(rect(t), rect(t), 0.25, [0.0, 0.5])   # exact values 1 and 0.5
    array([1.25, 0.75])
    """
    name = "sampled_sum"
    f = _check_expr(name, "f", f)
    g = _check_expr(name, "g", g)
    if not isinstance(op, str) or op not in OPS:
        raise ValueError(f"{name}: op must be one of {list(OPS)}, got {op!r}")
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, float, np.number)):
        raise TypeError(f"{name}: step must be a positive number, got {step!r}")
    if not step > 0 or not math.isfinite(step):
        raise ValueError(f"{name}: step must be a positive number, got {step!r}")
    t = _pick_symbol(name, f, g, t)
    extra = (f.free_symbols | g.free_symbols) - {t}
    if extra:
        raise ValueError(
            f"{name}: the signals must be numeric apart from {t}, got symbols "
            f"{sorted(s.name for s in extra)}; substitute values first"
        )
    if support is None:
        lo, hi, _ = signal_support(f, t)
        if math.isinf(lo) or math.isinf(hi):
            raise ValueError(
                f"{name}: f is nonzero on an unbounded set, so the sum has infinitely many "
                f"terms; pass support=(lo, hi) to truncate it"
            )
    else:
        if (
            not isinstance(support, Sequence)
            or len(support) != 2
            or not all(isinstance(v, (int, float, np.number)) for v in support)
        ):
            raise TypeError(f"{name}: support must be a pair of numbers (lo, hi), got {support!r}")
        lo, hi = float(support[0]), float(support[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"{name}: support must be finite with lo <= hi, got {support!r}")
    # k*step within [lo, hi], allowing for rounding at the ends
    k = np.arange(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)
    taus = k * float(step)
    fs = _lambdify(f, t)(taus)
    tv = np.asarray(t_values, dtype=float)
    sign = -1.0 if op == "convolve" else 1.0
    gs = _lambdify(g, t)(tv.reshape(-1, 1) + sign * taus.reshape(1, -1))
    return (float(step) * gs @ fs).reshape(tv.shape)


def convergence_table(
    f: Any,
    g: Any,
    steps: Sequence[float],
    t_values: Any,
    *,
    t: Any = None,
    op: str = "convolve",
    support: tuple[float, float] | None = None,
) -> list[tuple[float, float]]:
    """``[(step, max |sampled_sum - integral|), ...]``: the sampled sum converging to the integral.

    The integral comes from :func:`convolve` / :func:`correlate` (exact when SymPy finds a closed
    form).  For signals with jumps (rectangles, steps) the error shrinks in proportion to the
    step: halving it roughly halves the error.  Smooth, fast-decaying signals (Gaussians)
    converge much faster.

    Examples
    --------
    >>> import sympy as sp
    >>> from cnnlab.explain.continuous import convergence_table, rect
    >>> t = sp.Symbol("t", real=True)
    >>> for step, err in convergence_table(rect(t), rect(t), [0.1, 0.05, 0.025], [0.3, -0.55]):
    ...     print(f"{step:.3f} {err:.4f}")
    0.100 0.1000
    0.050 0.0500
    0.025 0.0250
    """
    if not isinstance(op, str) or op not in OPS:
        raise ValueError(f"convergence_table: op must be one of {list(OPS)}, got {op!r}")
    if not isinstance(steps, Sequence) or not steps:
        raise ValueError(f"convergence_table: steps must be a non-empty sequence, got {steps!r}")
    exact = (convolve if op == "convolve" else correlate)(f, g, t)
    target = exact.evaluate(t_values)
    rows = []
    for step in steps:
        approx = sampled_sum(f, g, step, t_values, t=exact.t, op=op, support=support)
        rows.append((float(step), float(np.max(np.abs(approx - target)))))
    return rows
