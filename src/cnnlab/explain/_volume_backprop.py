"""Backpropagation through a volume pipeline: the gradient of every stage, slice by slice, with
the filter gradients worked out cell by cell.

The gradients come from the library's backward functions (``conv_backward``,
``max_pool_backward``, ``avg_pool_backward`` and the activations' ``*_backward``); each worked
filter-gradient cell is the sum over output positions of the input cell its tap read times the
upstream gradient there, and the tests check that it is the library's value.

>>> import numpy as np
>>> from cnnlab.explain import Conv, backprop
>>> bp = backprop(np.arange(8).reshape(2, 2, 2), [Conv(np.ones((1, 1, 1), dtype=int))], volume=True)
>>> bp.grad_filters[0].ravel().tolist(), bp.grad_input.ravel().tolist()
([28], [1, 1, 1, 1, 1, 1, 1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import cnnlab.functional as _functional
from cnnlab.explain import _numbers as num
from cnnlab.explain._document import _limit, _terms
from cnnlab.explain._expr import Heading, Math, Num, Op, Para, Sym
from cnnlab.explain._limits import MAX_TERMS, chosen
from cnnlab.explain._rendered import Rendered
from cnnlab.explain._spec import ACTIVATION_NAMES
from cnnlab.explain._volume import VolumeSolution, VolumeStage, _slices, explain_volume

OP = "backprop (volume)"
LOSSES = ("sum", "mse")


@dataclass
class VolumeGradStep:
    """The backward step of one stage: ``grad_out`` (dL/d its output), ``grad_in`` (dL/d its
    input) and, for a conv, ``grad_filters`` (of the filters as given), ``grad_bias`` and the worked
    ``cells`` ``(index, terms, value)`` of the applied filter's gradient."""

    stage: VolumeStage
    grad_out: np.ndarray
    grad_in: np.ndarray
    grad_filters: np.ndarray | None = None
    grad_bias: np.ndarray | None = None
    cells: list = field(default_factory=list)
    left_out: int = 0


def _loss_grad(y: np.ndarray, loss: str, target: Any, reduction: str) -> tuple[np.ndarray, str]:
    if loss == "sum":
        if target is not None:
            raise ValueError(f"{OP}: loss 'sum' takes no target")
        return np.ones(y.shape, dtype=np.int64), "L is the sum of the output's cells, so dL/dY = 1 everywhere."
    if loss == "mse":
        if target is None:
            raise ValueError(f"{OP}: loss 'mse' needs a target of the output's shape {y.shape}")
        t = num.as_values(OP, "target", target)
        if t.shape == y.shape[1:] and y.shape[0] == 1:
            t = t[None]
        if t.shape != y.shape or num.is_exact(t):
            raise ValueError(f"{OP}: target must be ints or floats of the output's shape {y.shape}, got {t.shape}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"{OP}: reduction must be 'mean' or 'sum', got {reduction!r}")
        scale = 2.0 / y.size if reduction == "mean" else 2.0
        return scale * (y.astype(np.float64) - t), (
            f"L = {'mean' if reduction == 'mean' else 'sum'} of (Y - T)^2, so dL/dY = "
            + ("2 (Y - T) / " + str(y.size) if reduction == "mean" else "2 (Y - T)") + ".")
    raise ValueError(f"{OP}: loss must be one of {list(LOSSES)} for volumes, got {loss!r}")


def _conv_step(st: VolumeStage, g: np.ndarray, select: int | None) -> VolumeGradStep:
    grad_x, grad_w, grad_b = _functional.conv_backward(g, st.input, st.applied, st.bias, st.stride,
                                                       st.pads, st.dilation)
    # a true convolution applied the flipped filter: the filter's own gradient is flipped back
    grad_filters = grad_w[..., ::-1, ::-1, ::-1] if st.mode == "convolve" else grad_w
    positions = int(np.prod(g.shape[1:]))
    # a long sum is printed as its first and last four terms (None marks the gap): only those
    # are read out, so a large volume costs no more than a small one
    kept = list(range(positions)) if positions <= MAX_TERMS else [
        *range(4), None, *range(positions - 4, positions)]
    cells = []
    picked = chosen(grad_w.shape, select)
    for o, c, a, b, e in picked:
        terms = []
        for flat in kept:
            if flat is None:
                terms.append(None)
                continue
            z, i, j = np.unravel_index(flat, g.shape[1:])
            p = (z * st.stride[0] + a * st.dilation[0], i * st.stride[1] + b * st.dilation[1],
                 j * st.stride[2] + e * st.dilation[2])
            terms.append((st.grid[(c, *p)], g[o, z, i, j]))
        cells.append(((o, c, a, b, e), terms, grad_w[o, c, a, b, e]))
    return VolumeGradStep(st, g, grad_x, grad_filters, grad_b, cells, grad_w.size - len(picked))


def _step(st: VolumeStage, g: np.ndarray, select: int | None) -> VolumeGradStep:
    if st.kind == "conv":
        return _conv_step(st, g, select)
    if st.kind == "activation":
        x = st.input if (st.name == "relu" and st.input.dtype.kind in "iu") else st.input.astype(np.float64)
        return VolumeGradStep(st, g, getattr(_functional, f"{st.name}_backward")(g, x, **st.options))
    if st.name == "max":
        grad = _functional.max_pool_backward(g, st.input, st.kernel, st.stride, st.pads, st.dilation)
    else:
        grad = _functional.avg_pool_backward(g.astype(np.float64), st.input.astype(np.float64), st.kernel,
                                             st.stride, st.pads, False, st.options["count_include_pad"],
                                             st.options["divisor_override"], st.dilation)
    return VolumeGradStep(st, g, grad)


class VolumeBackprop(Rendered):
    """Backprop through a volume pipeline (see :func:`volume_backprop`).

    Attributes
    ----------
    solution : VolumeSolution
        The forward pass.
    steps : list of VolumeGradStep
        From the last stage to the first.
    """

    def __init__(self, solution: VolumeSolution, steps: list[VolumeGradStep], loss_text: str) -> None:
        self.solution = solution
        self.steps = steps
        self.loss_text = loss_text

    @property
    def grad_input(self) -> np.ndarray:
        """dL/dI, the input's shape ``(C, D, H, W)``."""
        return self.steps[-1].grad_in

    @property
    def grad_filters(self) -> list[np.ndarray]:
        """dL/dF of every conv stage, first stage first, each ``(O, C, kD, kH, kW)``."""
        return [s.grad_filters for s in reversed(self.steps) if s.stage.kind == "conv"]

    @property
    def grad_biases(self) -> list[np.ndarray | None]:
        """dL/db of every conv stage (None without a bias), first stage first."""
        return [s.grad_bias for s in reversed(self.steps) if s.stage.kind == "conv"]

    def document_blocks(self, cells: int | None = None) -> list:
        blocks: list = [Heading(f"Backpropagation through the volume {self.solution.label}", 1),
                        Para(self.loss_text)]
        for n, step in enumerate(self.steps, start=1):
            st = step.stage
            what = {"conv": "the conv", "activation": ACTIVATION_NAMES.get(st.name, st.name),
                    "pool": f"{st.name} pooling"}[st.kind]
            blocks.append(Heading(f"Step {n}: back through {what}, {st.label}", 2))
            blocks.append(Para(f"The upstream gradient dL/d{st.label}, slice by slice:"))
            blocks += _slices(f"dL/d{st.label}", step.grad_out)
            if st.kind == "conv":
                blocks.append(Para(
                    "Each cell of the filter gradient adds, over every output position, the input "
                    "cell its tap read there times the upstream gradient at that position"
                    + (" (for a true convolution, of the flipped filter that was applied; the "
                       "filter's own gradient is that flipped back)." if st.mode == "convolve" else ".")
                ))
                shown, hidden = _limit(step.cells, cells, step.left_out)
                for index, terms, value in shown:
                    name = "dL/dF" if st.applied.shape[0] == 1 else f"dL/dF{index[0] + 1}"
                    if st.mode == "convolve":
                        name = name.replace("dL/dF", "dL/dflip(F)")
                    where = ",".join(str(v) for v in index[2:])
                    label = f"{name}[{where}]" if st.input.shape[0] == 1 else f"{name}[{index[1]}][{where}]"
                    parts = [[Op("...")] if t is None else [Num(t[0], True), Op("*"), Num(t[1], True)]
                             for t in terms]
                    blocks.append(Math([Sym(label), Op("="), *_terms(parts), Op("="), Num(value)]))
                if hidden:
                    blocks.append(Para(f"... {hidden} more filter-gradient cell(s) not shown."))
                for o in range(step.grad_filters.shape[0]):
                    blocks += _slices("dL/dF" if step.grad_filters.shape[0] == 1 else f"dL/dF{o + 1}",
                                      step.grad_filters[o])
                if step.grad_bias is not None:
                    blocks.append(Para("dL/db is the sum of the upstream gradient of each filter: "
                                       + ", ".join(num.plain(v) for v in step.grad_bias) + "."))
            blocks.append(Para(f"dL/d{st.input_label}, slice by slice:"))
            blocks += _slices(f"dL/d{st.input_label}", step.grad_in)
        return blocks


def volume_backprop(x: Any, stages: Any, *, loss: str = "sum", target: Any = None, reduction: str = "mean",
                    label: str = "I", cells: int | None = None) -> VolumeBackprop:
    """Backprop through a volume pipeline; arguments as for :func:`cnnlab.explain.backprop` (losses
    'sum' and 'mse' only).  Called by ``backprop(..., volume=True)``."""
    sol = explain_volume(x, stages, label=label, cells=cells)
    if not sol.stages:
        raise ValueError(f"{OP}: the pipeline has no stage")
    with np.errstate(all="ignore"):
        g, text = _loss_grad(sol.output, loss, target, reduction)
        steps = []
        for st in reversed(sol.stages):
            step = _step(st, g, cells)
            steps.append(step)
            g = step.grad_in
    return VolumeBackprop(sol, steps, text)
