"""The smooth activations ``gelu``, ``sigmoid`` and ``tanh``, each with its backward beside it.

They follow the conventions of :mod:`cnnlab.functional._activation` (same argument handling,
dtypes and backward signature): floating inputs keep their dtype, integer inputs are computed in
``float64``; a backward recomputes what it needs from ``x``.  Where the compiled kernels apply
(:mod:`cnnlab.functional._numba_activation`), each value is computed in float64 and rounded once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.functional._activation import _backward_inputs, _fast, _float_input
from cnnlab.functional._args import check_choice
from cnnlab.functional._special import erf as _erf

__all__ = ["gelu", "gelu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward"]

_GELU_MODES = ("none", "tanh")
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_K = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715



# --------------------------------------------------------------------------------------------
# smooth activations
# --------------------------------------------------------------------------------------------
def gelu(x: Any, approximate: str = "none") -> np.ndarray:
    r"""Gaussian error linear unit, ``x * Phi(x)`` with ``Phi`` the standard normal CDF.

    Parameters
    ----------
    x : array_like
        Input of any shape.
    approximate : {'none', 'tanh'}, default 'none'
        ``'none'``: the exact form with the error function; ``'tanh'``: the tanh approximation.

    Returns
    -------
    numpy.ndarray
        Same shape; floating inputs keep their dtype (the computation runs in ``float64``),
        integer inputs give ``float64``.

    Raises
    ------
    TypeError
        If ``x`` is not numeric or ``approximate`` is not a string.
    ValueError
        If ``x`` is empty or ``approximate`` is not ``'none'`` or ``'tanh'``.

    Notes
    -----
    .. math:: \mathrm{gelu}(x) = \tfrac12\,x\,\bigl(1 + \mathrm{erf}(x/\sqrt2)\bigr)

    .. math:: \mathrm{gelu}_{\tanh}(x) = \tfrac12\,x\,\Bigl(1 + \tanh\bigl(\sqrt{2/\pi}\,
              (x + 0.044715\,x^3)\bigr)\Bigr)

    ``erf`` is evaluated without SciPy by Taylor series about points spaced 1/8 apart, to about
    1 ulp in float64.  For ``x = -inf`` the limit 0 is returned (PyTorch returns NaN there).

    Examples
    --------
    >>> gelu(np.array([-10.0, 0.0, 10.0]))
    array([-0.,  0., 10.])
    >>> bool(abs(gelu(np.array([1.0]))[0] - 0.8413447460685429) < 1e-15)
    True
    """
    mode = check_choice("gelu", "approximate", approximate, _GELU_MODES)
    arr = _float_input("gelu", x)
    if mode == "none" and (fast := _fast("gelu", arr)) is not None:
        return fast
    x64 = arr.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if mode == "none":
            y = (0.5 * x64) * (1.0 + _erf(x64 * _SQRT_HALF))
        else:
            y = (0.5 * x64) * (1.0 + np.tanh(_GELU_K * (x64 + _GELU_C * x64**3)))
    y = np.where(x64 == -np.inf, 0.0, y)
    return y.astype(arr.dtype, copy=False)


def gelu_backward(grad_out: Any, x: Any, approximate: str = "none") -> np.ndarray:
    """Gradient of :func:`gelu` with respect to ``x``.

    Parameters
    ----------
    grad_out : array_like
        Gradient with respect to the output; same shape as ``x``.
    x : array_like
        The forward's input.
    approximate : {'none', 'tanh'}, default 'none'
        The forward's mode.

    Returns
    -------
    numpy.ndarray
        ``grad_x``, same shape, floating (computed in ``float64``).

    Raises
    ------
    TypeError
        If an input is not numeric or ``approximate`` is not a string.
    ValueError
        If an input is empty, the shapes differ or ``approximate`` is unknown.

    Notes
    -----
    Exact form: ``gelu'(x) = Phi(x) + x * phi(x)`` with ``phi(x) = exp(-x^2/2) / sqrt(2 pi)``.
    Tanh form, with ``u = sqrt(2/pi) (x + 0.044715 x^3)``:
    ``gelu'(x) = (1 + tanh(u))/2 + x sech(u)^2 sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2``; ``sech^2`` is
    computed as ``1/cosh^2``, accurate where ``1 - tanh^2`` would cancel.
    At ``x = +-inf`` the limits 1 and 0 are returned (PyTorch returns NaN).

    Examples
    --------
    >>> gelu_backward(np.ones(3), np.array([-np.inf, 0.0, np.inf]))
    array([0. , 0.5, 1. ])
    """
    mode = check_choice("gelu_backward", "approximate", approximate, _GELU_MODES)
    g, xa = _backward_inputs("gelu_backward", grad_out, x)
    if mode == "none" and (fast := _fast("gelu", g, xa)) is not None:
        return fast
    x64 = xa.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if mode == "none":
            cdf = 0.5 * (1.0 + _erf(x64 * _SQRT_HALF))
            slope = x64 * (_INV_SQRT_2PI * np.exp(-0.5 * x64 * x64))
            deriv = cdf + np.where(np.isinf(x64), 0.0, slope)
        else:
            u = _GELU_K * (x64 + _GELU_C * x64**3)
            sech2 = 1.0 / np.cosh(u) ** 2  # not 1 - tanh(u)^2, which cancels for large |u|
            slope = 0.5 * x64 * sech2 * _GELU_K * (1.0 + 3.0 * _GELU_C * x64 * x64)
            deriv = 0.5 * (1.0 + np.tanh(u)) + np.where(sech2 == 0, 0.0, slope)
    return g * deriv.astype(g.dtype, copy=False)


def sigmoid(x: Any) -> np.ndarray:
    r"""Logistic sigmoid ``1 / (1 + exp(-x))``, stable for any ``|x|``.

    Parameters
    ----------
    x : array_like
        Input of any shape.

    Returns
    -------
    numpy.ndarray
        Same shape, values in [0, 1]; floating inputs keep their dtype, integer inputs give
        ``float64``.

    Raises
    ------
    TypeError
        If ``x`` is not numeric.
    ValueError
        If ``x`` is empty.

    Notes
    -----
    .. math:: \sigma(x) = \frac{1}{1 + e^{-x}} = \frac{e^{x}}{1 + e^{x}}

    With ``e = exp(-|x|)``, which never overflows, ``sigma(x) = 1 / (1 + e)`` for ``x >= 0`` and
    ``e / (1 + e)`` for ``x < 0``.

    Examples
    --------
    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    arr = _float_input("sigmoid", x)
    if (fast := _fast("sigmoid", arr)) is not None:
        return fast
    e = np.exp(-np.abs(arr))
    return np.where(arr >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(grad_out: Any, x: Any) -> np.ndarray:
    """Gradient of :func:`sigmoid` with respect to ``x``.

    Parameters
    ----------
    grad_out : array_like
        Gradient with respect to the output; same shape as ``x``.
    x : array_like
        The forward's input.

    Returns
    -------
    numpy.ndarray
        ``grad_x``, same shape, floating.

    Raises
    ------
    TypeError
        If an input is not numeric.
    ValueError
        If an input is empty or the shapes differ.

    Notes
    -----
    ``sigma'(x) = sigma(x) (1 - sigma(x)) = e / (1 + e)^2`` with ``e = exp(-|x|)``; the last
    form keeps full relative accuracy in both tails.

    Examples
    --------
    >>> sigmoid_backward(np.ones(3), np.array([-1000.0, 0.0, 1000.0]))
    array([0.  , 0.25, 0.  ])
    """
    g, xa = _backward_inputs("sigmoid_backward", grad_out, x)
    if (fast := _fast("sigmoid", g, xa)) is not None:
        return fast
    e = np.exp(-np.abs(xa))
    return g * (e / ((1 + e) * (1 + e)))


def tanh(x: Any) -> np.ndarray:
    r"""Hyperbolic tangent, elementwise (``numpy.tanh``).

    Parameters
    ----------
    x : array_like
        Input of any shape.

    Returns
    -------
    numpy.ndarray
        Same shape, values in [-1, 1]; floating inputs keep their dtype, integer inputs give
        ``float64``.

    Raises
    ------
    TypeError
        If ``x`` is not numeric.
    ValueError
        If ``x`` is empty.

    Notes
    -----
    .. math:: \tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}}

    Examples
    --------
    >>> tanh(np.array([-1000, 0, 1000]))
    array([-1.,  0.,  1.])
    """
    arr = _float_input("tanh", x)
    if (fast := _fast("tanh", arr)) is not None:
        return fast
    return np.tanh(arr)


def tanh_backward(grad_out: Any, x: Any) -> np.ndarray:
    """Gradient of :func:`tanh` with respect to ``x``.

    Parameters
    ----------
    grad_out : array_like
        Gradient with respect to the output; same shape as ``x``.
    x : array_like
        The forward's input.

    Returns
    -------
    numpy.ndarray
        ``grad_x``, same shape, floating.

    Raises
    ------
    TypeError
        If an input is not numeric.
    ValueError
        If an input is empty or the shapes differ.

    Notes
    -----
    ``tanh'(x) = 1 - tanh(x)^2 = 1 / cosh(x)^2``; the last form keeps full relative accuracy for
    large ``|x|``, where ``1 - tanh^2`` cancels.

    Examples
    --------
    >>> tanh_backward(np.array([2.0, 2.0]), np.array([0.0, 1000.0]))
    array([2., 0.])
    """
    g, xa = _backward_inputs("tanh_backward", grad_out, x)
    if (fast := _fast("tanh", g, xa)) is not None:
        return fast
    with np.errstate(over="ignore"):  # cosh overflows to inf for large |x|: the gradient is 0
        return g / np.cosh(xa) ** 2
