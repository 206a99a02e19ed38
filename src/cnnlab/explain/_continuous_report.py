"""Continuous convolution from text: the closed form and the sampled sums converging to it.

What ``cnnlab continuous "rect(t)" "exp(-t)*Heaviside(t)"`` prints: the two signals (read safely by
:func:`cnnlab.explain._signal_text.parse_signal`), the integral in closed form, and a table of the
Riemann sums ``h * sum_k f(k h) g(t - k h)`` for shrinking steps ``h`` next to the exact values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.explain._expr import Heading, Items, Para
from cnnlab.explain._piecewise import signal_support
from cnnlab.explain._rendered import Rendered
from cnnlab.explain._signal_text import parse_signal

OP = "continuous"
TRUNCATE = 40.0
"""An unbounded support is cut to this many units past its finite end (``e^-40`` is negligible)."""


class ContinuousReport(Rendered):
    """The closed form of a continuous convolution (or correlation) and its sampled sums.

    Attributes
    ----------
    result : ContinuousResult
        From :func:`cnnlab.explain.continuous.convolve` or ``correlate``.
    t_values : numpy.ndarray
        Where the sums are compared with the integral.
    rows : list of (float, numpy.ndarray, float)
        ``(step, sums at t_values, largest error)`` for each step.
    support : (float, float)
        The interval of ``tau`` the sums run over.
    """

    def __init__(self, f_text: str, g_text: str, op: str, result: Any, t_values: np.ndarray,
                 exact: np.ndarray, rows: list, support: tuple[float, float], truncated: bool) -> None:
        self.f_text, self.g_text, self.op = f_text, g_text, op
        self.result, self.t_values, self.exact, self.rows = result, t_values, exact, rows
        self.support, self.truncated = support, truncated

    def document_blocks(self, cells: int | None = None) -> list:
        sign = "-" if self.op == "convolve" else "+"
        word = "convolution" if self.op == "convolve" else "cross-correlation"
        closed = str(self.result.expr) if self.result.exact else "no closed form found: numerical quadrature"
        blocks: list = [
            Heading(f"Continuous {word} of f(t) = {self.f_text} and g(t) = {self.g_text}", 1),
            Para(f"(f {'*' if self.op == 'convolve' else 'star'} g)(t) = integral over tau of "
                 f"f(tau) g(t {sign} tau) dtau"),
            Heading("Closed form", 2),
            Para(closed),
            Heading("Sampled sums converge to it", 2),
            Para(f"Sampling both signals with step h gives the discrete sum h * sum_k f(k h) g(t {sign} k h): "
                 f"at t = n h it is h times the discrete full {word} of the samples. As h shrinks it tends "
                 f"to the integral. The sums run over tau in [{self.support[0]:g}, {self.support[1]:g}]"
                 + (" (f's support, cut where it decays below e^-40)." if self.truncated else " (f's support).")),
        ]
        blocks.append(Para("At t = " + ", ".join(f"{v:g}" for v in self.t_values)
                           + " (then the largest error |sum - integral|):"))
        lines = ["integral: " + ", ".join(f"{v:.6g}" for v in self.exact)]
        lines += [f"h = {step:g}: " + ", ".join(f"{v:.6g}" for v in sums) + f"  (error {error:.3g})"
                  for step, sums, error in self.rows]
        blocks.append(Items(lines))
        if len(self.rows) > 1 and self.rows[-1][2] > 0:
            ratios = [a[2] / b[2] for a, b in zip(self.rows[:-1], self.rows[1:], strict=True) if b[2] > 0]
            blocks.append(Items([f"halving h divides the error by about {r:.2f}" for r in ratios]))
        return blocks


def _floats(op: str, name: str, values: Any) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"{op}: {name} must be finite numbers, got {values!r}")
    return a


def continuous_report(f: str, g: str, *, op: str = "convolve",
                      steps: Sequence[float] = (0.5, 0.25, 0.125, 0.0625),
                      t_values: Sequence[float] = (-1.0, 0.0, 0.5, 1.0, 2.0)) -> ContinuousReport:
    """The closed form of ``f * g`` (``op='convolve'``) or ``f star g`` and sampled sums next to it.

    Parameters
    ----------
    f, g : str
        Signals in ``t`` as text, read safely (no Python is evaluated), e.g. ``"rect(t)"``.
    op : {'convolve', 'correlate'}, default 'convolve'
    steps : sequence of float
        Sampling steps ``h`` (each > 0, at most 8 of them, none below 1e-3).
    t_values : sequence of float
        Where to compare (at most 12 values).

    Returns
    -------
    ContinuousReport

    Raises
    ------
    ValueError
        For a signal that cannot be read, a bad ``op``, steps or t values, or signals with
        parameters (the sums need numbers).

    Examples
    --------
    >>> rep = continuous_report("rect(t)", "rect(t)", steps=(0.5, 0.25), t_values=(0.0, 0.5))
    >>> rep.result.expr
    Piecewise((t + 1, (t >= -1) & (t < 0)), (1 - t, (t >= 0) & (t < 1)), (0, True))
    >>> [round(float(e), 3) for _, _, e in rep.rows]
    [0.5, 0.25]
    """
    from cnnlab.explain import continuous

    if op not in ("convolve", "correlate"):
        raise ValueError(f"{OP}: op must be 'convolve' or 'correlate', got {op!r}")
    steps_a, ts = _floats(OP, "steps", steps), _floats(OP, "t values", t_values)
    if len(steps_a) > 8 or np.any(steps_a < 1e-3) or np.any(steps_a > 10):
        raise ValueError(f"{OP}: give at most 8 steps, each in [0.001, 10], got {list(steps_a)}")
    if len(ts) > 12 or np.any(np.abs(ts) > 1e3):
        raise ValueError(f"{OP}: give at most 12 t values, each in [-1000, 1000], got {list(ts)}")
    fx, t = parse_signal(f, name=f"{OP}: f")
    gx, _ = parse_signal(g, name=f"{OP}: g")
    extra = (fx.free_symbols | gx.free_symbols) - {t}
    if extra:
        raise ValueError(f"{OP}: the signals must be numeric apart from t, got parameters "
                         f"{sorted(s.name for s in extra)}")
    result = getattr(continuous, op)(fx, gx, t)
    lo, hi, _ = signal_support(fx, t)
    truncated = math.isinf(lo) or math.isinf(hi)
    if math.isinf(lo) and math.isinf(hi):
        lo, hi = -TRUNCATE, TRUNCATE
    elif math.isinf(lo):
        lo = hi - TRUNCATE
    elif math.isinf(hi):
        hi = lo + TRUNCATE
    exact = np.asarray(result.evaluate(ts), dtype=float)
    if not np.all(np.isfinite(exact)):
        bad = ", ".join(f"{v:g}" for v in ts[~np.isfinite(exact)])
        raise ValueError(f"{OP}: the integral diverges (is not finite) at t = {bad}; the signals do not decay "
                         "fast enough for their product to be integrable")
    rows = []
    for h in steps_a:
        sums = continuous.sampled_sum(fx, gx, float(h), ts, t=t, op=op, support=(lo, hi))
        rows.append((float(h), sums, float(np.max(np.abs(sums - exact)))))
    return ContinuousReport(f, g, op, result, ts, exact, rows, (lo, hi), truncated)
