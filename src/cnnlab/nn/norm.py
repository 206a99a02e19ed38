"""Batch normalisation layers ``BatchNorm1d`` and ``BatchNorm2d`` with PyTorch's semantics.

In training mode each channel is normalised with the batch's mean and biased variance, and the
running statistics (buffers ``running_mean``, ``running_var``, ``num_batches_tracked``) are
updated with the unbiased variance; in evaluation mode the running statistics are used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.autograd import Tensor
from cnnlab.functional._args import check_bool, check_positive_int, check_scalar
from cnnlab.nn import _ops
from cnnlab.nn.config import register_module
from cnnlab.nn.module import Module, Parameter, check_dtype


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = ()
    _layout: str = ""

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
        track_running_stats: bool = True, dtype: Any = None, *, bias: bool = True,
    ) -> None:
        super().__init__()
        op = type(self).__name__
        self.num_features = check_positive_int(op, "num_features", num_features)
        self.eps = float(check_scalar(op, "eps", eps))
        if self.eps < 0:
            raise ValueError(f"{op}: eps must be non-negative, got {eps}")
        self.momentum = None if momentum is None else float(check_scalar(op, "momentum", momentum))
        self.affine = check_bool(op, "affine", affine)
        self.track_running_stats = check_bool(op, "track_running_stats", track_running_stats)
        self._dtype = check_dtype(op, dtype)
        with_bias = check_bool(op, "bias", bias)
        if self.affine:
            self.weight = Parameter(np.ones(self.num_features, dtype=self._dtype))
        else:
            self.register_parameter("weight", None)
        if self.affine and with_bias:
            self.bias = Parameter(np.zeros(self.num_features, dtype=self._dtype))
        else:
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, dtype=self._dtype)))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, dtype=self._dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        """Reset the running statistics, and the affine weight to 1 and bias to 0."""
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def forward(self, x: Any) -> Any:
        return self._normalise(x, relu=False)

    def forward_relu(self, x: Any) -> Any:
        """``relu(self(x))`` by one fused operator (:func:`cnnlab.functional.batch_norm_relu`): the
        same values, statistics updates and gradients, with fewer passes over memory.
        :class:`~cnnlab.nn.Sequential` calls it for a BatchNorm followed by a ReLU."""
        return self._normalise(x, relu=True)

    def _normalise(self, x: Any, relu: bool) -> Any:
        op = type(self).__name__
        shape = x.shape if isinstance(x, (Tensor, np.ndarray)) else np.shape(x)
        if len(shape) not in self._ndims:
            raise ValueError(f"{op}: expected input {self._layout}, got shape {tuple(shape)}")
        if shape[1] != self.num_features:
            raise ValueError(f"{op}: expected {self.num_features} channels (dim 1), got shape {tuple(shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        tracking = self.training and self.track_running_stats
        if tracking and self.momentum is None:  # cumulative moving average
            factor = 1.0 / (int(self.num_batches_tracked.data) + 1)
        if self.training:
            stats = (self.running_mean, self.running_var)  # updated in place (None if not tracked)
        elif self.running_mean is not None:
            # copies, so a later training step cannot change what this output's backward uses
            stats = (self.running_mean.data.copy(), self.running_var.data.copy())
        else:
            stats = (None, None)
        use_batch_stats = self.training or stats[0] is None
        fn = _ops.batch_norm_relu if relu else _ops.batch_norm
        y = fn(x, *stats, self.weight, self.bias, use_batch_stats, factor, self.eps)
        if tracking:
            self.num_batches_tracked.data[...] += 1
        return y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")

    def config_args(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats,
                "dtype": self._dtype_name(), "bias": self.bias is not None or not self.affine}


@register_module
class BatchNorm1d(_BatchNorm):
    """Batch normalisation of ``(N, C)`` or ``(N, C, L)`` inputs over all dims but ``C``;
    see :class:`BatchNorm2d` for the arguments."""

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


@register_module
class BatchNorm2d(_BatchNorm):
    r"""Batch normalisation of ``(N, C, H, W)`` inputs, per channel over ``N, H, W``.

    Parameters
    ----------
    num_features : int
        ``C``.
    eps : float, default 1e-5
        Added to the variance.
    momentum : float or None, default 0.1
        ``running = (1 - momentum) * running + momentum * batch``; None: the cumulative average
        of all batches seen (factor ``1 / num_batches_tracked``).
    affine : bool, default True
        Learn a per-channel ``weight`` (initialised 1) and ``bias`` (0).
    track_running_stats : bool, default True
        Keep running statistics; without them the batch's statistics are used in both modes.
    dtype : float32 or float64, default float32
    bias : bool, default True (keyword only)
        With ``affine``, whether to learn the shift ``bias`` too (PyTorch 2.x's argument).

    Notes
    -----
    .. math:: y = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \gamma + \beta

    with the batch mean and *biased* variance in training mode; the running variance is updated
    with the *unbiased* one, as in PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> bn = BatchNorm2d(3)
    >>> bn
    BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    >>> y = bn(np.random.default_rng(0).normal(5.0, 2.0, (8, 3, 4, 4)).astype(np.float32))
    >>> bool(abs(y.data.mean()) < 1e-5), int(bn.num_batches_tracked.data)
    (True, 1)
    """

    _ndims = (4,)
    _layout = "(N, C, H, W)"
