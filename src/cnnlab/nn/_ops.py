"""The functional ops the layers use that are not conv, pooling or activations.

All of them are the Tensor-aware exports of :mod:`cnnlab.functional`; this module only gathers
them for the layer files.
"""

from __future__ import annotations

from cnnlab.functional import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    batch_norm,
    batch_norm_relu,
    binary_cross_entropy_with_logits,
    cross_entropy,
    dropout,
    linear,
    mse_loss,
    nll_loss,
)

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "batch_norm", "batch_norm_relu",
    "binary_cross_entropy_with_logits", "cross_entropy", "dropout", "linear", "mse_loss", "nll_loss",
]
