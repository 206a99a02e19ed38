"""The steps of a worked backward pass (data only): what :mod:`cnnlab.explain._backprop` computes
and :mod:`cnnlab.explain._backprop_doc` renders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.explain._solution import ActivationStage, ConvStage, PoolStage

# ---------------------------------------------------------------------------------------------
# the steps of the backward pass


@dataclass(eq=False)
class LossStep:
    """The loss ``L`` of the pipeline's output ``Y`` and its gradient ``dL/dY``.

    ``target`` is the target matrix for ``'mse'`` and the class index for ``'cross_entropy'``
    (whose scores are ``Y`` flattened in row-major order; ``probabilities`` is their softmax,
    in ``Y``'s shape).
    """

    name: str
    label: str
    output: np.ndarray
    target: Any
    reduction: str
    value: Any
    grad: np.ndarray
    probabilities: np.ndarray | None
    arithmetic: str


@dataclass(eq=False)
class PoolRoute:
    """Where the gradient of one pooled cell goes: ``share`` to each input cell in ``targets``.

    ``index`` is ``(channel, row, col)`` of the pooled output; ``targets`` are input positions
    ``(row, col)``; ``tied`` counts the input cells of the window that hold the maximum.
    """

    index: tuple[int, int, int]
    grad: Any
    targets: list[tuple[int, int]]
    divisor: int | None
    share: Any
    tied: int


@dataclass(eq=False)
class PoolGrad:
    """Back through a pooling stage: ``grad_in`` collects every route's share."""

    kind = "pool"
    stage: PoolStage
    grad_out: np.ndarray
    grad_in: np.ndarray
    routes: list[PoolRoute]
    arithmetic: str
    left_out: int = 0  # pooled cells whose route is not worked out (a large stage shows a few)


@dataclass(eq=False)
class ActivationGrad:
    """Back through an activation: ``grad_in = grad_out * derivative`` cell by cell, with
    ``derivative = f'(input)``."""

    kind = "activation"
    stage: ActivationStage
    grad_out: np.ndarray
    derivative: np.ndarray
    grad_in: np.ndarray
    arithmetic: str


@dataclass(eq=False)
class FilterGradCell:
    """``dL/dF[o, c, m, n] = sum(products)``: ``window`` holds the padded-input cells that filter
    cell multiplied (at grid ``rows`` x ``cols``), ``grads`` the upstream gradient ``dL/dY[o]``."""

    index: tuple[int, int, int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    window: np.ndarray
    grads: np.ndarray
    products: np.ndarray
    value: Any


@dataclass(eq=False)
class InputGradCell:
    """``dL/dX[c, r, q] = sum(products)`` for the padded-input cell at grid ``(r, q)``: the window
    ``(O, kH, kW)`` of the padded, dilated upstream gradient times the flipped filters."""

    index: tuple[int, int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    window: np.ndarray
    kernel: np.ndarray
    products: np.ndarray
    value: Any


@dataclass(eq=False)
class ConvGrad:
    """Back through a conv stage.

    ``grad_applied`` is the gradient of the filters as applied (flipped for a true convolution),
    ``grad_filters`` that of the filters as given.  ``dilated`` is ``grad_out`` with
    ``stride - 1`` zeros between cells, ``padded`` that padded by ``dilation*(k - 1)`` (plus the
    rows/cols the forward never reached); correlating ``padded`` with the flipped filters gives
    ``grad_grid``, the gradient of the padded input, and folding the padding away gives
    ``grad_in``.
    """

    kind = "conv"
    stage: ConvStage
    grad_out: np.ndarray
    grad_bias: np.ndarray | None
    grad_applied: np.ndarray
    grad_filters: np.ndarray
    dilated: np.ndarray
    padded: np.ndarray
    padded_roles: np.ndarray
    tail: tuple[int, int]
    grad_grid: np.ndarray
    grad_in: np.ndarray
    filter_cells: list[FilterGradCell]
    input_cells: list[InputGradCell]
    arithmetic: str
    filter_left_out: int = 0  # filter cells whose gradient is not worked out (a large filter)
    input_left_out: int = 0  # input cells whose gradient is not worked out (a large input)
