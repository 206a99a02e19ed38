"""Exact continuous convolution of piecewise signals with SymPy (private to cnnlab.explain.continuous).

A piecewise signal is split into pieces ``(lo, hi, expr)`` on intervals with numeric ends; the
convolution of two such signals is then, between consecutive breakpoints ``a + b``, a sum of
ordinary definite integrals with bounds linear in ``t`` (the "flip and slide" method), which
SymPy does quickly and which gives a clean Piecewise result.
"""

from __future__ import annotations

import functools
import math
from typing import Any


def import_sympy() -> Any:
    """Import SymPy on first use, with an install hint when it is missing."""
    try:
        import sympy
    except ImportError:  # pragma: no cover - exercised only without sympy
        raise ImportError(
            "cnnlab.explain.continuous needs SymPy, an optional dependency: pip install cnnlab[explain]"
        ) from None
    return sympy


class NoClosedForm(Exception):
    """SymPy returned an unevaluated integral."""


# ----------------------------------------------------------------------------------------------
# piecewise decomposition


def _prepare(expr: Any) -> Any:
    """Heaviside, Abs, sign, Max, Min rewritten as Piecewise and folded into one top-level one."""
    sp = import_sympy()
    for kind in (sp.Heaviside, sp.Abs, sp.sign, sp.Max, sp.Min):
        if expr.has(kind):
            expr = expr.rewrite(kind, sp.Piecewise)
    return sp.piecewise_fold(expr) if expr.has(sp.Piecewise) else expr


# A set of reals up to isolated points: a sorted list of disjoint open intervals (lo, hi) with
# numeric or infinite SymPy ends.  Points never change an integral, so they are dropped.
Intervals = list[tuple[Any, Any]]


class _NotIntervals(Exception):
    """A condition whose solution set is not a finite union of intervals with numeric ends."""


def _merge(intervals: Intervals) -> Intervals:
    out: Intervals = []
    for lo, hi in sorted(intervals, key=lambda iv: _num(iv[0])):
        if not _num(lo) < _num(hi):
            continue
        if out and _num(lo) <= _num(out[-1][1]):
            if _num(hi) > _num(out[-1][1]):
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _intersect(a: Intervals, b: Intervals) -> Intervals:
    both = []
    for lo1, hi1 in a:
        for lo2, hi2 in b:
            lo = lo1 if _num(lo1) >= _num(lo2) else lo2
            hi = hi1 if _num(hi1) <= _num(hi2) else hi2
            both.append((lo, hi))
    return _merge(both)


def _complement(a: Intervals) -> Intervals:
    sp = import_sympy()
    edges = [-sp.oo]
    for lo, hi in a:
        edges += [lo, hi]
    edges.append(sp.oo)
    return _merge(list(zip(edges[::2], edges[1::2], strict=True)))


def _from_set(where: Any) -> Intervals:
    """A SymPy set (from ``as_set``) as intervals."""
    sp = import_sympy()
    parts = where.args if isinstance(where, sp.Union) else (where,)
    out = []
    for part in parts:
        if isinstance(part, sp.FiniteSet) or part == sp.S.EmptySet:
            continue
        if not isinstance(part, sp.Interval) or not (part.start.is_number and part.end.is_number):
            raise _NotIntervals
        out.append((part.start, part.end))
    return _merge(out)


def _cond_set(cond: Any, x: Any) -> Intervals:
    """Where ``cond`` holds, as intervals.

    Linear relations, And, Or and Not are handled directly (SymPy's general ``as_set`` is far
    slower); anything else goes through ``as_set``.
    """
    sp = import_sympy()
    if cond == sp.true:
        return [(-sp.oo, sp.oo)]
    if cond == sp.false:
        return []
    if isinstance(cond, sp.And):
        result = [(-sp.oo, sp.oo)]
        for c in cond.args:
            result = _intersect(result, _cond_set(c, x))
        return result
    if isinstance(cond, sp.Or):
        return _merge([iv for c in cond.args for iv in _cond_set(c, x)])
    if isinstance(cond, sp.Not):
        return _complement(_cond_set(cond.args[0], x))
    if isinstance(cond, sp.core.relational.Relational):
        diff = sp.expand(cond.lhs - cond.rhs)
        slope = diff.coeff(x, 1)
        rest = sp.expand(diff - slope * x)
        if slope.is_number and slope != 0 and rest.is_number:
            root = -rest / slope
            op = cond.rel_op
            if slope < 0:  # dividing by a negative slope flips the inequality
                op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
            if op in ("<", "<="):
                return [(-sp.oo, root)]
            if op in (">", ">="):
                return [(root, sp.oo)]
            if op == "==":
                return []
            if op == "!=":
                return [(-sp.oo, sp.oo)]
    try:
        return _from_set(cond.as_set())
    except (NotImplementedError, TypeError, ValueError) as exc:
        raise _NotIntervals from exc


def _pieces(expr: Any, x: Any) -> list[tuple[Any, Any, Any]] | None:
    """``[(lo, hi, e), ...]``: ``expr`` equals ``e`` on ``(lo, hi)`` and 0 off the pieces.

    Pieces are disjoint open intervals with numeric (or infinite) ends; isolated points are
    dropped (they do not change an integral).  ``None`` when the expression cannot be split
    this way (conditions with other symbols, a Piecewise nested inside a function, a delta).
    """
    sp = import_sympy()
    if expr.has(sp.DiracDelta):
        return None
    if not expr.has(sp.Piecewise):
        return [] if expr == 0 else [(-sp.oo, sp.oo, expr)]
    if not isinstance(expr, sp.Piecewise):
        return None
    remaining: Intervals = [(-sp.oo, sp.oo)]
    pieces = []
    for value, cond in expr.args:
        if value.has(sp.Piecewise) or not cond.free_symbols <= {x}:
            return None
        try:
            where = _intersect(_cond_set(cond, x), remaining)
        except _NotIntervals:
            return None
        remaining = _intersect(remaining, _complement(where))
        if value != 0:
            pieces.extend((lo, hi, value) for lo, hi in where)
    return pieces


def _num(value: Any) -> float:
    return float(value)


def _gaussian_integral(integrand: Any, tau: Any) -> Any | None:
    """``int exp(a tau^2 + b tau + c) dtau`` over the reals, ``sqrt(pi/-a) exp(c - b^2/(4a))``.

    Completing the square gives the closed form directly when ``a < 0``; SymPy's general
    integrator reaches the same value through erf terms, much more slowly.  ``None`` when the
    integrand is not a constant times the exponential of a quadratic with negative ``a``.
    """
    sp = import_sympy()
    combined = sp.powsimp(sp.expand(integrand), combine="exp")
    factor, rest = combined.as_independent(tau, as_Add=False)
    if not isinstance(rest, sp.exp):
        return None
    exponent = sp.expand(rest.args[0])
    if not exponent.is_polynomial(tau):
        return None
    poly = sp.Poly(exponent, tau)
    if poly.degree() != 2:
        return None
    a, b, c = poly.all_coeffs()
    if a.is_negative is not True:
        return None
    return factor * sp.sqrt(sp.pi / -a) * sp.exp(c - b**2 / (4 * a))


def _integrate(integrand: Any, tau: Any, lo: Any, hi: Any) -> Any:
    sp = import_sympy()
    if lo == -sp.oo and hi == sp.oo:
        value = _gaussian_integral(integrand, tau)
        if value is not None:
            return value
    value = sp.integrate(integrand, (tau, lo, hi))
    if value.has(sp.Integral):
        raise NoClosedForm
    return value


@functools.lru_cache(maxsize=1024)
def _antiderivative(fe: Any, ge: Any, x: Any, tau: Any) -> Any:
    """An antiderivative in ``tau`` of the polynomial ``fe(tau) * ge(x - tau)``, as a Poly."""
    sp = import_sympy()
    product = sp.Poly(fe.subs(x, tau), tau, x) * sp.Poly(ge.subs(x, x - tau), tau, x)
    return product.integrate(tau)


def _pair_integral(fe: Any, ge: Any, x: Any, tau: Any, lo: Any, hi: Any) -> Any:
    """``int_lo^hi fe(tau) ge(x - tau) dtau``.

    Polynomial pieces on finite bounds reuse one antiderivative for every t-interval
    (a polynomial's antiderivative is continuous, so ``F(hi) - F(lo)`` is the integral), with
    SymPy's fast Poly arithmetic; anything else is a definite integral for SymPy.
    """
    sp = import_sympy()
    if lo.is_finite and hi.is_finite and fe.is_polynomial(x) and ge.is_polynomial(x):
        prim = _antiderivative(fe, ge, x, tau)
        at_hi = prim.compose(sp.Poly(hi, tau, x)) if hi.has(x) else prim.eval(tau, hi)
        at_lo = prim.compose(sp.Poly(lo, tau, x)) if lo.has(x) else prim.eval(tau, lo)
        return sp.expand(sp.sympify(at_hi.as_expr()) - sp.sympify(at_lo.as_expr()))
    return _integrate(fe.subs(x, tau) * ge.subs(x, x - tau), tau, lo, hi)


def _tidy(value: Any, x: Any) -> Any:
    """Polynomials expanded (cheap); anything else through ``simplify``."""
    sp = import_sympy()
    if value.is_polynomial(x):
        return sp.expand(value)
    return sp.simplify(value)


def _piecewise_convolution(
    pf: list[tuple[Any, Any, Any]], pg: list[tuple[Any, Any, Any]], x: Any, tau: Any
) -> list[tuple[Any, Any, Any]]:
    """``int f(tau) g(x - tau) dtau`` for piecewise ``f`` and ``g``, one x-interval at a time.

    Returns ``[(left, right, value), ...]`` covering the real line, neighbours merged.

    Piece ``(a0, a1, f_i)`` of ``f`` and piece ``(b0, b1, g_j)`` of ``g`` overlap for
    ``max(a0, x - b1) < tau < min(a1, x - b0)``.  Which bound is active changes only where
    ``x = a + b`` for finite ends ``a`` of ``f`` and ``b`` of ``g``, so between consecutive such
    breakpoints the result is a sum of ordinary integrals with fixed (possibly x-dependent)
    bounds - the graphical "flip and slide" method.
    """
    sp = import_sympy()
    ends_f = {v for a0, a1, _ in pf for v in (a0, a1) if v.is_finite}
    ends_g = {v for b0, b1, _ in pg for v in (b0, b1) if v.is_finite}
    by_value = {}  # one breakpoint per numeric value (0.5 + 0.5 and 1 are the same point)
    for a in ends_f:
        for b in ends_g:
            by_value.setdefault(_num(a + b), a + b)
    breaks = [by_value[v] for v in sorted(by_value)]
    edges = [-sp.oo, *breaks, sp.oo]
    result = []
    for left, right in zip(edges[:-1], edges[1:], strict=True):
        if left.is_infinite and right.is_infinite:
            t_star = 0.0
        elif left.is_infinite:
            t_star = _num(right) - 1.0
        elif right.is_infinite:
            t_star = _num(left) + 1.0
        else:
            t_star = (_num(left) + _num(right)) / 2
        total = sp.S.Zero
        for a0, a1, fe in pf:
            for b0, b1, ge in pg:
                # lower bound max(a0, t - b1), upper min(a1, t - b0): which one, at t_star
                lo_at, hi_at = max(_num(a0), t_star - _num(b1)), min(_num(a1), t_star - _num(b0))
                if not lo_at < hi_at:
                    continue
                lo = a0 if _num(a0) >= t_star - _num(b1) else x - b1
                hi = a1 if _num(a1) <= t_star - _num(b0) else x - b0
                total += _pair_integral(fe, ge, x, tau, lo, hi)
        result.append((left, right, _tidy(total, x)))
    # merge neighbours that are the same expression
    merged: list[list[Any]] = []
    for left, right, value in result:
        if merged and merged[-1][2] == value:
            merged[-1][1] = right
        else:
            merged.append([left, right, value])
    return [tuple(piece) for piece in merged]


def _assemble(merged: list[tuple[Any, Any, Any]], x: Any, t: Any) -> Any:
    """The pieces as one expression in ``t``: nonzero pieces on their intervals, else zero.

    Built with ``evaluate=False``: the conditions are already disjoint intervals, and SymPy's
    re-simplification of them is slow.
    """
    sp = import_sympy()
    if len(merged) == 1:
        return merged[0][2].xreplace({x: t})
    args = []
    for left, right, value in merged:
        if value == 0:
            continue
        if left.is_infinite:
            cond = t < right
        elif right.is_infinite:
            cond = t >= left
        else:
            cond = sp.And(t >= left, t < right)
        args.append((value.xreplace({x: t}), cond))
    if all(value != 0 for _, _, value in merged):
        args[-1] = (args[-1][0], sp.true)
    else:
        args.append((sp.S.Zero, sp.true))
    return sp.Piecewise(*args, evaluate=False)


_NO_CLOSED_FORM = object()


@functools.lru_cache(maxsize=128)
def _cached_integral(f: Any, g: Any, t: Any, op: str) -> Any:
    try:
        return _closed_form(f, g, t, op)
    except NoClosedForm:
        return _NO_CLOSED_FORM  # remembered too: SymPy's attempt is the slow part


def exact_integral(f: Any, g: Any, t: Any, op: str) -> Any:
    """Closed form of the integral, in terms of ``t``; raises ``NoClosedForm`` if SymPy can't."""
    value = _cached_integral(f, g, t, op)
    if value is _NO_CLOSED_FORM:
        raise NoClosedForm
    return value


def _closed_form(f: Any, g: Any, t: Any, op: str) -> Any:
    sp = import_sympy()
    x = sp.Dummy("x", real=True)
    tau = sp.Dummy("tau", real=True)
    fx = _prepare(f.subs(t, x))
    gx = _prepare(g.subs(t, x))
    if op == "correlate":  # int f(tau) g(t + tau) dtau = int f(-s) g(t - s) ds
        fx = fx.subs(x, -x)
    pf, pg = _pieces(fx, x), _pieces(gx, x)
    if pf is not None and pg is not None:
        if not pf or not pg:
            return sp.S.Zero
        return _assemble(_piecewise_convolution(pf, pg, x, tau), x, t)
    integrand = sp.piecewise_fold(fx.subs(x, tau) * gx.subs(x, x - tau))
    return _tidy(_integrate(integrand, tau, -sp.oo, sp.oo), x).subs(x, t)


def signal_support(expr: Any, t: Any) -> tuple[float, float, list[float]]:
    """Smallest interval outside which ``expr`` is zero, and its breakpoints (may be infinite)."""
    sp = import_sympy()
    x = sp.Dummy("x", real=True)
    pieces = _pieces(_prepare(expr.subs(t, x)), x)
    if pieces is None:
        return -math.inf, math.inf, []
    if not pieces:
        return 0.0, 0.0, []
    ends = sorted({_num(v) for a, b, _ in pieces for v in (a, b)})
    return ends[0], ends[-1], [v for v in ends if math.isfinite(v)]
