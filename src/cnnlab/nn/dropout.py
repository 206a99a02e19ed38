"""``Dropout``: inverted dropout in training mode, the identity in evaluation mode."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.functional._args import check_scalar
from cnnlab.nn import _ops
from cnnlab.nn.config import register_module
from cnnlab.nn.module import Module
from cnnlab.random import resolve_generator


@register_module
class Dropout(Module):
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` while
    training; pass the input through unchanged in evaluation mode.

    Parameters
    ----------
    p : float, default 0.5
        Drop probability, in ``[0, 1]``.
    generator : numpy.random.Generator, optional
        Source of the masks; the default generator (:func:`cnnlab.manual_seed`) when None.  Not
        part of :meth:`to_config`.

    Examples
    --------
    >>> import numpy as np
    >>> drop = Dropout(0.5, generator=np.random.default_rng(0))
    >>> y = drop(np.ones(1000))
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    >>> drop.eval()(np.ones(3))
    array([1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        p = float(check_scalar("Dropout", "p", p))
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p}")
        self.p = p
        resolve_generator("Dropout", generator)
        self.generator = generator

    def forward(self, x: Any) -> Any:
        return _ops.dropout(x, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def config_args(self) -> dict[str, Any]:
        return {"p": self.p}
