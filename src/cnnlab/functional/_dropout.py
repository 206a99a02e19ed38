"""Inverted dropout and its backward.

During training each element is kept with probability ``1 - p`` and scaled by ``1 / (1 - p)``
(so the expected output equals the input) or zeroed with probability ``p``; in evaluation the op
is the identity.  The random keep/drop pattern is drawn once, as a *mask* already holding the
scale: ``y = x * mask``, so the backward is ``grad_x = grad_out * mask`` with the same mask.

Because the backward needs the mask the forward drew, :func:`dropout` draws it and then applies
:func:`apply_mask`, the differentiable part (given a :class:`cnnlab.Tensor` it records
``apply_mask_backward``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.functional._args import check_array, check_bool, check_scalar, float_dtype
from cnnlab.functional._dispatch import differentiable
from cnnlab.random import resolve_generator


def _check_p(op: str, p: Any) -> float:
    p = float(check_scalar(op, "p", p))
    if not 0 <= p <= 1:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p}")
    return p


def dropout_mask(
    shape: tuple[int, ...], p: float = 0.5, dtype: Any = np.float32, generator: np.random.Generator | None = None
) -> np.ndarray:
    """A dropout mask: ``1 / (1 - p)`` with probability ``1 - p``, else 0 (all zeros if ``p == 1``).

    Parameters
    ----------
    shape : tuple of int
    p : float, default 0.5
        Probability of dropping an element.
    dtype : floating dtype, default float32
    generator : numpy.random.Generator, optional
        Source of randomness; the default generator of :mod:`cnnlab.random` when None.

    Examples
    --------
    >>> import numpy as np
    >>> dropout_mask((6,), 0.5, np.float64, np.random.default_rng(0))
    array([2., 0., 0., 0., 2., 2.])
    """
    p = _check_p("dropout_mask", p)
    rng = resolve_generator("dropout_mask", generator)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dropout_mask: dtype must be floating, got {dtype}")
    if p == 1:
        return np.zeros(shape, dtype=dtype)
    keep = rng.random(shape) >= p  # P(keep) = 1 - p
    return keep.astype(dtype) * dtype.type(1 / (1 - p))


def apply_mask(x: Any, mask: Any) -> np.ndarray:
    """``x * mask`` elementwise (the differentiable half of :func:`dropout`).

    Raises
    ------
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> apply_mask(np.array([1.0, 2.0]), np.array([0.0, 2.0]))
    array([0., 4.])
    """
    x = check_array("apply_mask", "x", x, allow_empty=True)
    mask = check_array("apply_mask", "mask", mask, allow_empty=True)
    if mask.shape != x.shape:
        raise ValueError(f"apply_mask: mask must have x's shape {x.shape}, got {mask.shape}")
    x = x.astype(float_dtype(x), copy=False)
    return x * mask.astype(x.dtype, copy=False)


def apply_mask_backward(grad_out: Any, x: Any, mask: Any) -> np.ndarray:
    """Gradient of :func:`apply_mask` in ``x``: ``grad_out * mask`` (dropped elements get 0)."""
    g = check_array("apply_mask_backward", "grad_out", grad_out, allow_empty=True)
    mask = check_array("apply_mask_backward", "mask", mask, allow_empty=True)
    if g.shape != mask.shape or np.shape(x) != mask.shape:
        raise ValueError(
            f"apply_mask_backward: grad_out, x and mask must have one shape, got {g.shape}, "
            f"{np.shape(x)} and {mask.shape}"
        )
    g = g.astype(float_dtype(g), copy=False)
    return g * mask.astype(g.dtype, copy=False)


_apply_mask = differentiable(apply_mask, apply_mask_backward)


def dropout(
    x: Any,
    p: float = 0.5,
    training: bool = True,
    generator: np.random.Generator | None = None,
    return_mask: bool = False,
) -> Any:
    r"""Inverted dropout: zero each element with probability ``p`` and scale the rest by ``1/(1-p)``.

    Accepts arrays and :class:`cnnlab.Tensor` (the result records its backward).

    Parameters
    ----------
    x : array_like or Tensor
        Input of any shape.
    p : float, default 0.5
        Probability of zeroing an element, in ``[0, 1]``.
    training : bool, default True
        When False (or ``p == 0``) dropout is the identity and ``x`` is returned unchanged.
    generator : numpy.random.Generator, optional
        Source of randomness; the default generator of :mod:`cnnlab.random` when None.
    return_mask : bool, default False
        Also return the mask used (``None`` when dropout was the identity).

    Returns
    -------
    y : ndarray or Tensor
        ``x * mask``, floating (integer inputs give float64).
    mask : ndarray, only if ``return_mask``
        Holds ``0`` or ``1 / (1 - p)``; :func:`dropout_backward` multiplies by it.

    Raises
    ------
    TypeError
        Non-numeric ``x``, non-real ``p``, non-bool flags, a generator that is not a
        ``numpy.random.Generator``.
    ValueError
        ``p`` outside ``[0, 1]``.

    Notes
    -----
    .. math:: y = x \cdot m, \quad m = \frac{b}{1-p}, \quad b \sim \mathrm{Bernoulli}(1-p),

    so that :math:`E[y] = x`.

    Examples
    --------
    >>> import numpy as np
    >>> y, mask = dropout(np.ones(6), 0.5, generator=np.random.default_rng(0), return_mask=True)
    >>> y
    array([2., 0., 0., 0., 2., 2.])
    >>> dropout(np.ones(3), 0.5, training=False)
    array([1., 1., 1.])
    """
    p = _check_p("dropout", p)
    training = check_bool("dropout", "training", training)
    return_mask = check_bool("dropout", "return_mask", return_mask)
    data = getattr(x, "data", x) if not isinstance(x, np.ndarray) else x
    arr = check_array("dropout", "x", data, allow_empty=True)
    rng = resolve_generator("dropout", generator)
    if not training or p == 0:
        return (x, None) if return_mask else x
    mask = dropout_mask(arr.shape, p, float_dtype(arr), rng)
    y = _apply_mask(x, mask)
    return (y, mask) if return_mask else y


def dropout_backward(grad_out: Any, mask: Any) -> np.ndarray:
    """Gradient of :func:`dropout`: ``grad_out * mask`` with the mask the forward used.

    Examples
    --------
    >>> import numpy as np
    >>> dropout_backward(np.array([1.0, 1.0]), np.array([0.0, 2.0]))
    array([0., 2.])
    """
    return apply_mask_backward(grad_out, grad_out, mask)
