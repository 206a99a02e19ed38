"""Batch normalisation with its backward beside it, with PyTorch's semantics.

Training normalises each channel with the statistics of the batch (the *biased* variance) and,
when running statistics are given, updates them in place with the *unbiased* variance; evaluation
normalises with the running statistics.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._args import check_array, check_bool, check_scalar, float_dtype


class _NormArgs(NamedTuple):
    x: np.ndarray  # floating, (N, C, *)
    running_mean: np.ndarray | None
    running_var: np.ndarray | None
    weight: np.ndarray | None
    bias: np.ndarray | None
    batch_stats: bool  # normalise with the batch's statistics (training)
    axes: tuple[int, ...]  # every axis but the channel axis
    count: int  # values per channel


def _channel_vector(op: str, name: str, value: Any, channels: int) -> np.ndarray | None:
    if value is None:
        return None
    arr = check_array(op, name, value)
    if arr.shape != (channels,):
        raise ValueError(f"{op}: {name} must have shape ({channels},) (one per channel), got shape {arr.shape}")
    return arr


def _norm_args(
    op: str, x: Any, running_mean: Any, running_var: Any, weight: Any, bias: Any, training: Any,
    momentum: Any, eps: Any,
) -> _NormArgs:
    x = check_array(op, "x", x, allow_empty=True)
    if x.ndim < 2:
        raise ValueError(f"{op}: x must be (N, C, *) with at least 2 dims, got shape {x.shape}")
    x = x.astype(float_dtype(x), copy=False)
    channels = x.shape[1]
    running_mean = _channel_vector(op, "running_mean", running_mean, channels)
    running_var = _channel_vector(op, "running_var", running_var, channels)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must both be given or both be None")
    for name, stat in (("running_mean", running_mean), ("running_var", running_var)):
        if stat is not None and stat.dtype.kind != "f":
            raise TypeError(f"{op}: {name} must be a floating array (updated in place), got dtype {stat.dtype}")
    weight = _channel_vector(op, "weight", weight, channels)
    bias = _channel_vector(op, "bias", bias, channels)
    training = check_bool(op, "training", training)
    check_scalar(op, "momentum", momentum)
    if check_scalar(op, "eps", eps) < 0:
        raise ValueError(f"{op}: eps must be non-negative, got {eps}")
    if not training and running_mean is None:
        raise ValueError(
            f"{op}: training=False normalises with running_mean and running_var, but they are None"
        )
    axes = (0, *range(2, x.ndim))
    count = x.size // channels
    if training and count <= 1 and x.size:  # an empty batch is allowed (PyTorch returns it empty)
        raise ValueError(
            f"{op}: expected more than 1 value per channel when training, got x of shape {x.shape}"
        )
    return _NormArgs(x, running_mean, running_var, weight, bias, training, axes, count)


def _statistics(a: _NormArgs, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel ``(mean, biased variance, 1/sqrt(var + eps))`` used to normalise."""
    if a.batch_stats:
        mean = a.x.mean(axis=a.axes)
        var = a.x.var(axis=a.axes)
    else:
        mean = a.running_mean.astype(a.x.dtype, copy=False)
        var = a.running_var.astype(a.x.dtype, copy=False)
    inv_std = 1 / np.sqrt(var + a.x.dtype.type(eps))
    return mean, var, inv_std


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """Reshape a ``(C,)`` vector to broadcast against ``(N, C, *)``."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm(
    x: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> np.ndarray:
    r"""Batch normalisation over every axis but the channel axis 1 (PyTorch's ``F.batch_norm``).

    Parameters
    ----------
    x : array_like
        Input ``(N, C)`` or ``(N, C, *spatial)``.
    running_mean, running_var : numpy.ndarray of shape (C,), optional
        Running statistics.  Used to normalise when ``training`` is False; when ``training`` is
        True they are **updated in place** (if given).
    weight, bias : array_like of shape (C,), optional
        Per-channel scale ``gamma`` and shift ``beta`` (default 1 and 0).
    training : bool, default False
        Normalise with the batch's statistics (and update the running ones) instead of the
        running statistics.
    momentum : float, default 0.1
        Weight of the new batch in the running update,
        ``running = (1 - momentum) * running + momentum * batch_stat``.
    eps : float, default 1e-5
        Added to the variance before the square root.

    Shape
    -----
    The output has the input's shape.

    Returns
    -------
    numpy.ndarray
        Floating inputs keep their dtype; integer inputs give float64.

    Raises
    ------
    TypeError
        Non-numeric arrays, a non-bool ``training``, non-real ``momentum`` or ``eps``.
    ValueError
        ``x`` with fewer than 2 dims, per-channel vectors of the wrong shape, only one of the
        running statistics, ``training=False`` without running statistics, one value per channel
        when training, negative ``eps``.

    Notes
    -----
    With :math:`\mu_c` and :math:`\sigma^2_c = \frac1M \sum (x - \mu_c)^2` over the ``M`` values
    of channel ``c`` (the *biased* variance),

    .. math:: y = \gamma_c \frac{x - \mu_c}{\sqrt{\sigma^2_c + \epsilon}} + \beta_c .

    The running variance is updated with the *unbiased* variance :math:`\frac{M}{M-1}\sigma^2_c`,
    exactly as PyTorch does.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [3.0]])
    >>> mean, var = np.zeros(1), np.ones(1)
    >>> batch_norm(x, mean, var, training=True, eps=0.0)
    array([[-1.],
           [ 1.]])
    >>> mean, var
    (array([0.2]), array([1.1]))
    """
    return _batch_norm("batch_norm", x, running_mean, running_var, weight, bias, training, momentum, eps)


def _batch_norm(op: str, x: Any, running_mean: Any, running_var: Any, weight: Any, bias: Any, training: Any,
                momentum: Any, eps: Any, relu: bool = False) -> np.ndarray:
    """:func:`batch_norm` (``relu``: then clamped at 0, :func:`batch_norm_relu`) on arrays: by the
    compiled kernels where they take ``x`` (:func:`_fast`), else by NumPy."""
    a = _norm_args(op, x, running_mean, running_var, weight, bias, training, momentum, eps)
    if a.x.size == 0:  # an empty batch: an empty result, and the running statistics stay as they are
        return a.x.copy()
    if _fast(a.x):  # the kernels of the Tensor route, so that arrays and Tensors give the same bits
        return _compiled_forward(a, momentum, eps, relu)[0]
    return _numpy_forward(a, momentum, eps, relu, keep=False)[0]


def _numpy_forward(a: _NormArgs, momentum: Any, eps: Any, relu: bool, keep: bool
                   ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``(y, xhat, inv_std)`` by NumPy, the fallback of :func:`_compiled_forward` (the running statistics
    updated): ``y = xhat * weight + bias``, clamped at 0 if ``relu``; ``xhat``, the normalised
    input, is returned (as an array of its own) only if ``keep``, else None."""
    mean, var, inv_std, centred = _fused_statistics(a, eps)
    _update_running(a, momentum, mean, var)
    nd = a.x.ndim
    xhat = a.x - _per_channel(mean, nd) if centred is None else centred  # (a new array either way)
    xhat *= _per_channel(inv_std, nd)
    y = xhat.copy() if keep else xhat
    if a.weight is not None or a.bias is not None:
        scale = np.ones(a.x.shape[1], a.x.dtype) if a.weight is None else a.weight.astype(a.x.dtype, copy=False)
        shift = np.zeros(a.x.shape[1], a.x.dtype) if a.bias is None else a.bias.astype(a.x.dtype, copy=False)
        y *= _per_channel(scale, nd)
        y += _per_channel(shift, nd)
    if relu:
        np.maximum(y, y.dtype.type(0), out=y)
    return y, xhat if keep else None, inv_std


def _update_running(a: _NormArgs, momentum: Any, mean: np.ndarray, var: np.ndarray) -> None:
    """In training with running statistics, update them in place from the batch's ``mean`` and
    biased ``var`` (the running variance takes the unbiased one, ``var * M / (M - 1)``)."""
    if a.batch_stats and a.running_mean is not None:
        m = float(momentum)
        unbiased = var * (a.count / (a.count - 1))
        a.running_mean[...] = (1 - m) * a.running_mean + m * mean
        a.running_var[...] = (1 - m) * a.running_var + m * unbiased


# Backward of y = gamma * xhat + beta, xhat = (x - mu) * s, s = (var + eps)^(-1/2).
# grad_beta = sum g and grad_gamma = sum g * xhat (sums over the M values of each channel).
# With batch statistics mu and var depend on x: d mu/dx = 1/M, d var/dx = 2 (x - mu)/M, so with
# h = g * gamma:
#   grad_x = s * (h - mean(h) - xhat * mean(h * xhat))
# With running statistics mu and s are constants: grad_x = h * s.
def batch_norm_backward(
    grad_out: Any,
    x: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Gradients ``(grad_x, grad_weight, grad_bias)`` of :func:`batch_norm`.

    Takes ``grad_out`` and the forward's arguments; never touches the running statistics (with
    ``training=True`` it uses the batch's statistics, as the forward did).  ``grad_weight`` and
    ``grad_bias`` are None where ``weight`` and ``bias`` are.

    Examples
    --------
    >>> import numpy as np
    >>> gx, gw, gb = batch_norm_backward(np.array([[1.0], [0.0]]), np.array([[1.0], [3.0]]),
    ...                                  weight=np.ones(1), bias=np.zeros(1), training=True, eps=0.0)
    >>> gx, gw, gb  # two values normalise to -1 and 1 whatever x is, so grad_x is 0
    (array([[0.],
           [0.]]), array([-1.]), array([1.]))
    """
    op = "batch_norm_backward"
    a = _norm_args(op, x, running_mean, running_var, weight, bias, training, momentum, eps)
    g = check_array(op, "grad_out", grad_out, allow_empty=True)
    if g.shape != a.x.shape:
        raise ValueError(f"{op}: grad_out must have the input's shape {a.x.shape}, got {g.shape}")
    g = g.astype(a.x.dtype, copy=False)
    if a.x.size == 0:  # an empty batch: nothing flows back, the affine parameters get zero
        zeros = np.zeros(a.x.shape[1] if a.x.ndim > 1 else a.x.shape[0], dtype=g.dtype)
        return (g.copy(), None if a.weight is None else zeros, None if a.bias is None else zeros.copy())
    nd = a.x.ndim
    mean, _, inv_std = _statistics(a, eps)
    xhat = (a.x - _per_channel(mean, nd)) * _per_channel(inv_std, nd)
    h = g if a.weight is None else g * _per_channel(a.weight.astype(g.dtype, copy=False), nd)
    if a.batch_stats:
        h_mean = h.mean(axis=a.axes, keepdims=True)
        hx_mean = (h * xhat).mean(axis=a.axes, keepdims=True)
        grad_x = _per_channel(inv_std, nd) * (h - h_mean - xhat * hx_mean)
    else:
        grad_x = h * _per_channel(inv_std, nd)
    grad_weight = None if a.weight is None else (g * xhat).sum(axis=a.axes)
    grad_bias = None if a.bias is None else g.sum(axis=a.axes)
    return grad_x, grad_weight, grad_bias


def batch_norm_backward_all(
    grad_out: Any,
    x: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, None, None, np.ndarray | None, np.ndarray | None]:
    """:func:`batch_norm_backward` with one entry per leading argument of :func:`batch_norm`:
    ``(grad_x, None, None, grad_weight, grad_bias)`` (the running statistics get no gradient).

    This is the form ``differentiable(batch_norm, batch_norm_backward_all, n_diff=5)`` needs,
    since ``weight`` and ``bias`` come after the running statistics in PyTorch's argument order.
    """
    grad_x, grad_weight, grad_bias = batch_norm_backward(
        grad_out, x, running_mean, running_var, weight, bias, training, momentum, eps
    )
    return grad_x, None, None, grad_weight, grad_bias


# ---------------------------------------------------------------------------------------------
# saving forward / backward pair (used on Tensors): the forward keeps xhat and 1/std, so the
# backward needs no second pass over x for the statistics.


class NormSaved(NamedTuple):
    xhat: np.ndarray | None  # None when no gradient is needed that uses it
    inv_std: np.ndarray
    weight: np.ndarray | None
    has_bias: bool
    batch_stats: bool
    axes: tuple[int, ...]
    # the compiled path keeps the input and the mean instead of xhat (the input is alive anyway,
    # held by the graph), and its kernels recompute xhat on the fly: one array less per layer
    x: np.ndarray | None = None
    mean: np.ndarray | None = None
    # batch_norm_relu: the output after the ReLU, whose mask (0 where it is <= 0) the backward applies
    relu_out: np.ndarray | None = None
    # batch_norm_relu's compiled path in training: the forward's ``(scale, shift)``, from which its
    # backward kernels recompute the sign of the output from ``x`` (rounded as the forward did)
    relu_affine: tuple[np.ndarray, np.ndarray] | None = None


def _fused_statistics(a: _NormArgs, eps: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """``(mean, var, inv_std, centred)``: the batch variance from the centred values ``x - mean``
    of one pass (same formula as ``np.var``), handed on for the output; with running statistics
    ``centred`` is None."""
    if not a.batch_stats:
        return (*_statistics(a, eps), None)
    mean = a.x.mean(axis=a.axes)
    centred = a.x - _per_channel(mean, a.x.ndim)
    flat = centred.reshape(centred.shape[0], centred.shape[1], -1)
    var = np.einsum("ncp,ncp->c", flat, flat) / a.count
    inv_std = 1 / np.sqrt(var + a.x.dtype.type(eps))
    return mean, var.astype(a.x.dtype, copy=False), inv_std.astype(a.x.dtype, copy=False), centred


def _compiled_forward(a: _NormArgs, momentum: Any, eps: Any, relu: bool
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(y, mean, inv_std, scale, shift)`` by the compiled kernels (``scale``, ``shift``: the
    weight and bias, or 1 and 0), the running statistics updated; ``relu``: ``y`` clamped at 0 as
    it is written."""
    from cnnlab.functional import _numba_norm as nk

    scale = np.ones(a.x.shape[1], a.x.dtype) if a.weight is None else a.weight
    shift = np.zeros(a.x.shape[1], a.x.dtype) if a.bias is None else a.bias
    if a.batch_stats:
        # the statistics (two passes, float64 sums) and the output, a channel at a time: one pass
        # over the input from memory (the channel's other passes find it in the core's cache)
        y, mean, var, inv_std = nk.bn_forward(a.x, eps, scale, shift, relu)
    else:
        mean, var, inv_std = _statistics(a, eps)
        y = nk.bn_apply(a.x, mean, inv_std, scale, shift, relu=relu)
    _update_running(a, momentum, mean, var)
    return y, mean, inv_std, scale, shift


def _fast(x: np.ndarray) -> bool:
    """Whether the compiled kernels handle ``x`` (float32/float64, Numba allowed)."""
    return x.ndim >= 2 and _backend.float_kernels_take(x)


def batch_norm_forward_saving(
    needs: Any, x: Any, running_mean: Any = None, running_var: Any = None, weight: Any = None, bias: Any = None,
    training: bool = False, momentum: float = 0.1, eps: float = 1e-5,
) -> tuple[np.ndarray, NormSaved]:
    """:func:`batch_norm` that also returns the normalised values and ``1/std`` for the backward."""
    return _forward_saving("batch_norm", False, needs, x, running_mean, running_var, weight, bias, training,
                           momentum, eps)


def _forward_saving(op: str, relu: bool, needs: Any, x: Any, running_mean: Any, running_var: Any, weight: Any,
                    bias: Any, training: Any, momentum: Any, eps: Any) -> tuple[np.ndarray, NormSaved]:
    a = _norm_args(op, x, running_mean, running_var, weight, bias, training, momentum, eps)
    if a.x.size == 0:
        y = batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
        return y, NormSaved(np.zeros(a.x.shape, a.x.dtype), np.zeros(a.x.shape[1], a.x.dtype), a.weight,
                            a.bias is not None, a.batch_stats, a.axes, relu_out=y if relu else None)
    keep = needs[0] or (len(needs) > 3 and needs[3])
    if not _fast(a.x):
        y, xhat, inv_std = _numpy_forward(a, momentum, eps, relu, keep)
        return y, NormSaved(xhat, inv_std, a.weight, a.bias is not None, a.batch_stats, a.axes,
                            relu_out=y if relu else None)
    # one pass writes the output; the backward recomputes xhat from x and mean
    y, mean, inv_std, scale, shift = _compiled_forward(a, momentum, eps, relu)
    return y, NormSaved(None, inv_std, a.weight, a.bias is not None, a.batch_stats, a.axes,
                        a.x if keep else None, mean,
                        # training: the mask is recomputed from x as the sums are taken; eval
                        # mode masks g first, by the output (kept anyway: it is the result)
                        relu_out=y if relu and not a.batch_stats else None,
                        relu_affine=((np.array(scale, a.x.dtype), np.array(shift, a.x.dtype))
                                     if relu and a.batch_stats else None))


def batch_norm_backward_saved(grad_out: np.ndarray, saved: NormSaved, needs: Any) -> tuple:
    """``(grad_x, None, None, grad_weight, grad_bias)`` from the saving forward (see the derivation
    above :func:`batch_norm_backward`)."""
    xhat, inv_std = saved.xhat, saved.inv_std
    g = np.asarray(grad_out).astype(inv_std.dtype, copy=False)
    nd = g.ndim
    want_w = len(needs) > 3 and needs[3] and saved.weight is not None
    want_b = len(needs) > 4 and needs[4] and saved.has_bias
    if saved.x is not None:
        return _kernel_backward(g, saved, needs, want_w, want_b)
    if saved.relu_out is not None:  # through the fused ReLU first
        g = _through_relu(g, saved.relu_out)
    grad_bias = g.sum(axis=saved.axes) if (want_b or (needs[0] and saved.batch_stats)) else None
    grad_weight = None
    if want_w or (needs[0] and saved.batch_stats):
        shape3 = (g.shape[0], g.shape[1], int(math.prod(g.shape[2:])))
        grad_weight = np.einsum("ncp,ncp->c", g.reshape(shape3), xhat.reshape(shape3))
    grad_x = None
    if needs[0]:
        scale = _grad_scale(saved, g.dtype)
        if saved.batch_stats:
            count = g.size // g.shape[1] if g.size else 1
            # h = g * gamma; grad_x = s * (h - mean(h) - xhat * mean(h * xhat)) with the per-channel
            # means written through grad_bias = sum g and grad_weight = sum g * xhat
            grad_x = g - _per_channel(grad_bias / count, nd)
            grad_x -= xhat * _per_channel(grad_weight / count, nd)
            grad_x *= _per_channel(scale, nd)
        else:
            grad_x = g * _per_channel(scale, nd)
    return (grad_x, None, None, grad_weight if want_w else None, grad_bias if want_b else None)


def _through_relu(g: np.ndarray, relu_out: np.ndarray) -> np.ndarray:
    """``g`` through the fused ReLU: 0 where its output (or input) is <= 0, ``g`` elsewhere (a NaN
    passes, as in :func:`relu_backward`); the compiled kernels apply the same mask as they read."""
    return np.where(relu_out <= 0, g.dtype.type(0), g)


def _grad_scale(saved: NormSaved, dtype: np.dtype) -> np.ndarray:
    """``gamma / std`` per channel, the factor every input gradient ends with."""
    gamma = np.ones_like(saved.inv_std) if saved.weight is None else saved.weight.astype(dtype, copy=False)
    return gamma * saved.inv_std


def _kernel_backward(g: np.ndarray, saved: NormSaved, needs: Any, want_w: bool, want_b: bool) -> tuple:
    """:func:`batch_norm_backward_saved` by the compiled kernels from the saved input: one pass for
    both sums, one for ``grad_x`` (each recomputes ``xhat = (x - mean) * inv_std`` as it reads)."""
    from cnnlab.functional import _numba_norm as nk

    x, mean, inv_std = saved.x, saved.mean, saved.inv_std
    g = g.astype(x.dtype, copy=False)
    relu = saved.relu_affine
    if saved.relu_out is not None:  # eval mode: through the fused ReLU first
        g = _through_relu(g, saved.relu_out)
    grad_x = None
    if needs[0] and saved.batch_stats:  # both passes a channel at a time (see bn_backward)
        grad_x, sum_g, sum_gx = nk.bn_backward(g, x, mean, inv_std, _grad_scale(saved, g.dtype), relu)
    else:
        sum_g, sum_gx = nk.bn_sums(g, x, mean, inv_std, relu)
        if needs[0]:
            grad_x = g * _per_channel(_grad_scale(saved, g.dtype), g.ndim)
    grad_weight = sum_gx.astype(g.dtype) if want_w else None
    grad_bias = sum_g.astype(g.dtype) if want_b else None
    return (grad_x, None, None, grad_weight, grad_bias)


# ---------------------------------------------------------------------------------------------
# relu(batch_norm(x)) in one operator: the pair that follows every conv of most CNNs


def batch_norm_relu(
    x: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> np.ndarray:
    r"""``relu(batch_norm(x, ...))`` as one operator: same arguments and result as the two in a row.

    Fused, the normalised values are clamped as they are written and the backward applies ReLU's
    mask while it sums, so neither the intermediate array nor its gradient is ever stored: fewer
    passes over memory and one activation less per layer in training.  ``nn.Sequential`` uses it
    for a ``BatchNorm`` followed by a ``ReLU``.  The running statistics are updated as
    :func:`batch_norm` does; see there for the arguments, the errors and the formula.

    Returns
    -------
    numpy.ndarray
        :math:`\max(0, \gamma_c (x - \mu_c) / \sqrt{\sigma^2_c + \epsilon} + \beta_c)`, the
        input's shape; floating inputs keep their dtype, integer inputs give float64.  NaN stays NaN.

    Examples
    --------
    >>> import numpy as np
    >>> batch_norm_relu(np.array([[1.0], [3.0]]), training=True, eps=0.0)
    array([[0.],
           [1.]])
    """
    return _batch_norm("batch_norm_relu", x, running_mean, running_var, weight, bias, training, momentum, eps,
                       relu=True)


def batch_norm_relu_backward_all(
    grad_out: Any,
    x: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, None, None, np.ndarray | None, np.ndarray | None]:
    """Gradients ``(grad_x, None, None, grad_weight, grad_bias)`` of :func:`batch_norm_relu`:
    ``grad_out`` is zeroed where the normalised value is <= 0 (ReLU's subgradient 0 at the kink, a
    NaN passing through, as :func:`relu_backward`), then :func:`batch_norm_backward` applies.
    Never touches the running statistics."""
    op = "batch_norm_relu_backward"
    a = _norm_args(op, x, running_mean, running_var, weight, bias, training, momentum, eps)
    g = check_array(op, "grad_out", grad_out, allow_empty=True)
    if g.shape != a.x.shape:
        raise ValueError(f"{op}: grad_out must have the input's shape {a.x.shape}, got {g.shape}")
    stats = (None, None) if a.batch_stats else (running_mean, running_var)  # eval mode updates nothing
    y = batch_norm(a.x, *stats, weight, bias, a.batch_stats, momentum, eps)
    g = _through_relu(g, y)
    return batch_norm_backward_all(g, x, running_mean, running_var, weight, bias, training, momentum, eps)


def batch_norm_relu_forward_saving(
    needs: Any, x: Any, running_mean: Any = None, running_var: Any = None, weight: Any = None, bias: Any = None,
    training: bool = False, momentum: float = 0.1, eps: float = 1e-5,
) -> tuple[np.ndarray, NormSaved]:
    """:func:`batch_norm_relu` keeping what its backward needs (see :func:`batch_norm_forward_saving`)."""
    return _forward_saving("batch_norm_relu", True, needs, x, running_mean, running_var, weight, bias, training,
                           momentum, eps)

