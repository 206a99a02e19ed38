"""Operators on NumPy arrays, each with its backward (vector-Jacobian product) beside it.

Every forward here accepts NumPy arrays (and array-likes) and returns NumPy arrays, exactly; given
a :class:`cnnlab.Tensor` it returns a Tensor that records its backward (see ``_dispatch``).  The
``*_backward`` functions take ``grad_out`` followed by the forward's arguments and return one
gradient per differentiable input.

Conventions are PyTorch's: layouts ``(N, C, *spatial)`` (or unbatched ``(C, *spatial)``), weights
``(C_out, C_in / groups, *kernel)``, ``dilation=1`` means none, and the deep-learning ``conv`` is
a cross-correlation; :func:`convolve` is the flipped-kernel convolution.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from cnnlab.functional import _activation as _act
from cnnlab.functional import _adaptive as _adaptive
from cnnlab.functional import _adaptive_max as _adaptive_max
from cnnlab.functional import _avg_pool as _avg_pool
from cnnlab.functional import _conv as _conv
from cnnlab.functional import _conv_transpose as _convt
from cnnlab.functional import _correlate as _corr
from cnnlab.functional import _linear as _linear
from cnnlab.functional import _loss as _loss
from cnnlab.functional import _loss_elementwise as _loss_elementwise
from cnnlab.functional import _norm as _norm
from cnnlab.functional import _pool as _pool
from cnnlab.functional import _smooth as _smooth
from cnnlab.functional import _softmax as _softmax
from cnnlab.functional._activation import (
    elu_backward,
    leaky_relu_backward,
    relu_backward,
)
from cnnlab.functional._adaptive import (
    adaptive_avg_pool1d_backward,
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool3d_backward,
    adaptive_avg_pool_backward,
)
from cnnlab.functional._adaptive_max import (
    adaptive_max_pool1d_backward,
    adaptive_max_pool2d_backward,
    adaptive_max_pool3d_backward,
    adaptive_max_pool_backward,
)
from cnnlab.functional._avg_pool import avg_pool_backward
from cnnlab.functional._backend import get_backend, get_num_threads, set_backend, set_num_threads, start_threads
from cnnlab.functional._conv import conv_backward
from cnnlab.functional._conv_transpose import conv_transpose_backward
from cnnlab.functional._correlate import choose_correlate_method, convolve_backward, correlate_backward
from cnnlab.functional._dispatch import differentiable
from cnnlab.functional._dropout import dropout, dropout_backward, dropout_mask
from cnnlab.functional._linear import linear_backward
from cnnlab.functional._loss import (
    cross_entropy_backward,
    cross_entropy_backward_all,
    nll_loss_backward,
)
from cnnlab.functional._loss_elementwise import binary_cross_entropy_with_logits_backward, mse_loss_backward
from cnnlab.functional._matrix import conv_matrix, conv_transpose_matrix
from cnnlab.functional._norm import batch_norm_backward, batch_norm_backward_all
from cnnlab.functional._pool import max_pool_backward
from cnnlab.functional._smooth import gelu_backward, sigmoid_backward, tanh_backward
from cnnlab.functional._softmax import log_softmax_backward, softmax_backward


def _pool_backward(forward: Callable[..., Any], backward: Callable[..., Any], n: int | None) -> Callable[..., Any]:
    """Adapt a pooling backward to be called with the forward's exact arguments.

    Drops ``return_indices`` (not an input of the gradient) and, for the 1d/2d/3d names, spells an
    int ``kernel_size`` as a tuple so the generic backward knows the number of spatial dims.
    """
    signature = inspect.signature(forward)

    def adapted(grad_out: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        arguments = dict(bound.arguments)
        arguments.pop("return_indices", None)
        kernel = arguments.get("kernel_size")
        if n is not None and isinstance(kernel, int):
            arguments["kernel_size"] = (kernel,) * n
        return backward(grad_out, **arguments)

    return adapted


correlate = differentiable(_corr.correlate, correlate_backward, n_diff=2)
convolve = differentiable(_corr.convolve, convolve_backward, n_diff=2)

conv = differentiable(_conv.conv, conv_backward, n_diff=3, saving=_conv.saving_pair("conv", None))
conv1d = differentiable(_conv.conv1d, conv_backward, n_diff=3, saving=_conv.saving_pair("conv1d", 1))
conv2d = differentiable(_conv.conv2d, conv_backward, n_diff=3, saving=_conv.saving_pair("conv2d", 2))
conv3d = differentiable(_conv.conv3d, conv_backward, n_diff=3, saving=_conv.saving_pair("conv3d", 3))

conv_transpose = differentiable(_convt.conv_transpose, conv_transpose_backward, n_diff=3)
conv_transpose1d = differentiable(_convt.conv_transpose1d, conv_transpose_backward, n_diff=3)
conv_transpose2d = differentiable(_convt.conv_transpose2d, conv_transpose_backward, n_diff=3)
conv_transpose3d = differentiable(_convt.conv_transpose3d, conv_transpose_backward, n_diff=3)

max_pool = differentiable(
    _pool.max_pool, _pool_backward(_pool.max_pool, max_pool_backward, None),
    saving=_pool.max_pool_saving("max_pool", None),
)
max_pool1d = differentiable(
    _pool.max_pool1d, _pool_backward(_pool.max_pool1d, max_pool_backward, 1),
    saving=_pool.max_pool_saving("max_pool1d", 1),
)
max_pool2d = differentiable(
    _pool.max_pool2d, _pool_backward(_pool.max_pool2d, max_pool_backward, 2),
    saving=_pool.max_pool_saving("max_pool2d", 2),
)
max_pool3d = differentiable(
    _pool.max_pool3d, _pool_backward(_pool.max_pool3d, max_pool_backward, 3),
    saving=_pool.max_pool_saving("max_pool3d", 3),
)
avg_pool = differentiable(_avg_pool.avg_pool, _pool_backward(_avg_pool.avg_pool, avg_pool_backward, None),
                          saving=_avg_pool.avg_pool_saving("avg_pool", None))
avg_pool1d = differentiable(_avg_pool.avg_pool1d, _pool_backward(_avg_pool.avg_pool1d, avg_pool_backward, 1),
                            saving=_avg_pool.avg_pool_saving("avg_pool1d", 1))
avg_pool2d = differentiable(_avg_pool.avg_pool2d, _pool_backward(_avg_pool.avg_pool2d, avg_pool_backward, 2),
                            saving=_avg_pool.avg_pool_saving("avg_pool2d", 2))
avg_pool3d = differentiable(_avg_pool.avg_pool3d, _pool_backward(_avg_pool.avg_pool3d, avg_pool_backward, 3),
                            saving=_avg_pool.avg_pool_saving("avg_pool3d", 3))

relu = differentiable(_act.relu, relu_backward, saving=(_act.relu_forward_saving, _act.relu_backward_saved))
leaky_relu = differentiable(_act.leaky_relu, leaky_relu_backward)
elu = differentiable(_act.elu, elu_backward)
gelu = differentiable(_smooth.gelu, gelu_backward)
sigmoid = differentiable(_smooth.sigmoid, sigmoid_backward)
tanh = differentiable(_smooth.tanh, tanh_backward)
softmax = differentiable(_softmax.softmax, softmax_backward,
                         saving=(_softmax.softmax_forward_saving, _softmax.softmax_backward_saved))
log_softmax = differentiable(_softmax.log_softmax, log_softmax_backward,
                             saving=(_softmax.log_softmax_forward_saving, _softmax.log_softmax_backward_saved))

linear = differentiable(_linear.linear, linear_backward, n_diff=3)
# batch_norm(x, running_mean, running_var, weight, bias, ...): the running statistics are inputs
# with no gradient, so the differentiable-input count reaches weight and bias at positions 4 and 5
batch_norm = differentiable(
    _norm.batch_norm, batch_norm_backward_all, n_diff=5,
    saving=(_norm.batch_norm_forward_saving, _norm.batch_norm_backward_saved),
)
batch_norm_relu = differentiable(
    _norm.batch_norm_relu, _norm.batch_norm_relu_backward_all, n_diff=5,
    saving=(_norm.batch_norm_relu_forward_saving, _norm.batch_norm_backward_saved),
)
adaptive_avg_pool = differentiable(_adaptive.adaptive_avg_pool, adaptive_avg_pool_backward)
adaptive_avg_pool1d = differentiable(_adaptive.adaptive_avg_pool1d, adaptive_avg_pool1d_backward)
adaptive_avg_pool2d = differentiable(_adaptive.adaptive_avg_pool2d, adaptive_avg_pool2d_backward)
adaptive_avg_pool3d = differentiable(_adaptive.adaptive_avg_pool3d, adaptive_avg_pool3d_backward)
adaptive_max_pool = differentiable(
    _adaptive_max.adaptive_max_pool, _pool_backward(_adaptive_max.adaptive_max_pool, adaptive_max_pool_backward, None),
    saving=_adaptive_max.adaptive_max_pool_saving("adaptive_max_pool", None),
)
adaptive_max_pool1d = differentiable(
    _adaptive_max.adaptive_max_pool1d,
    _pool_backward(_adaptive_max.adaptive_max_pool1d, adaptive_max_pool1d_backward, None),
    saving=_adaptive_max.adaptive_max_pool_saving("adaptive_max_pool1d", 1),
)
adaptive_max_pool2d = differentiable(
    _adaptive_max.adaptive_max_pool2d,
    _pool_backward(_adaptive_max.adaptive_max_pool2d, adaptive_max_pool2d_backward, None),
    saving=_adaptive_max.adaptive_max_pool_saving("adaptive_max_pool2d", 2),
)
adaptive_max_pool3d = differentiable(
    _adaptive_max.adaptive_max_pool3d,
    _pool_backward(_adaptive_max.adaptive_max_pool3d, adaptive_max_pool3d_backward, None),
    saving=_adaptive_max.adaptive_max_pool_saving("adaptive_max_pool3d", 3),
)

cross_entropy = differentiable(
    _loss.cross_entropy, _loss.cross_entropy_backward_all, n_diff=2,
    saving=(_loss.cross_entropy_forward_saving, _loss.cross_entropy_backward_saved),
)
nll_loss = differentiable(_loss.nll_loss, nll_loss_backward)
mse_loss = differentiable(_loss_elementwise.mse_loss, mse_loss_backward, n_diff=2)
binary_cross_entropy_with_logits = differentiable(
    _loss_elementwise.binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_backward, n_diff=2
)

__all__ = [
    "adaptive_avg_pool", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_avg_pool_backward", "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool3d_backward", "adaptive_max_pool", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "adaptive_max_pool3d", "adaptive_max_pool_backward", "adaptive_max_pool1d_backward",
    "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward",
    "batch_norm", "batch_norm_backward", "batch_norm_backward_all", "batch_norm_relu",
    "dropout", "dropout_backward", "dropout_mask", "linear", "linear_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "cross_entropy", "cross_entropy_backward", "cross_entropy_backward_all",
    "mse_loss", "mse_loss_backward", "nll_loss", "nll_loss_backward",
    "avg_pool", "avg_pool1d", "avg_pool2d", "avg_pool3d", "avg_pool_backward",
    "conv", "conv1d", "conv2d", "conv3d", "conv_backward", "conv_matrix",
    "conv_transpose", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "conv_transpose_backward", "conv_transpose_matrix",
    "choose_correlate_method", "convolve", "convolve_backward", "correlate", "correlate_backward",
    "differentiable",
    "get_backend", "get_num_threads", "set_backend", "set_num_threads", "start_threads",
    "elu", "elu_backward", "gelu", "gelu_backward", "leaky_relu", "leaky_relu_backward",
    "log_softmax", "log_softmax_backward",
    "max_pool", "max_pool1d", "max_pool2d", "max_pool3d", "max_pool_backward",
    "relu", "relu_backward", "sigmoid", "sigmoid_backward", "softmax", "softmax_backward",
    "tanh", "tanh_backward",
]
