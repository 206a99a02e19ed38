"""Tensor-aware versions of the functional ops the layers use.

Convolution, pooling and activations come from :mod:`cnnlab.functional`.  The ops below are
wrapped here with :func:`~cnnlab.functional._dispatch.differentiable` until
``cnnlab.functional`` exports them too; the wrapping is the same one-liner either way.
"""

from __future__ import annotations

from cnnlab.functional import adaptive as _adaptive
from cnnlab.functional import linear as _linear
from cnnlab.functional import loss as _loss
from cnnlab.functional import norm as _norm
from cnnlab.functional._dispatch import differentiable
from cnnlab.functional.dropout import dropout

linear = differentiable(_linear.linear, _linear.linear_backward, n_diff=3)
batch_norm = differentiable(_norm.batch_norm, _norm.batch_norm_backward_all, n_diff=5)
adaptive_avg_pool1d = differentiable(_adaptive.adaptive_avg_pool1d, _adaptive.adaptive_avg_pool1d_backward)
adaptive_avg_pool2d = differentiable(_adaptive.adaptive_avg_pool2d, _adaptive.adaptive_avg_pool2d_backward)
adaptive_avg_pool3d = differentiable(_adaptive.adaptive_avg_pool3d, _adaptive.adaptive_avg_pool3d_backward)

cross_entropy = differentiable(_loss.cross_entropy, _loss.cross_entropy_backward)
nll_loss = differentiable(_loss.nll_loss, _loss.nll_loss_backward)
mse_loss = differentiable(_loss.mse_loss, _loss.mse_loss_backward, n_diff=2)
binary_cross_entropy_with_logits = differentiable(
    _loss.binary_cross_entropy_with_logits, _loss.binary_cross_entropy_with_logits_backward, n_diff=2
)

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "batch_norm",
    "binary_cross_entropy_with_logits", "cross_entropy", "dropout", "linear", "mse_loss", "nll_loss",
]
