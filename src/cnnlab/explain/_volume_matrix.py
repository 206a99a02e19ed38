"""The matrix form of a volume's conv stage: ``M @ vec(I) = vec(Conv(I))`` and ``M.T`` as its gradient.

A 3-D conv is linear in its input, so for a fixed input shape it is a matrix ``M``
(:func:`cnnlab.functional.conv_matrix` with three spatial axes).  With one filter and stride 1
``M`` is triply block Toeplitz: a block Toeplitz matrix (one block per pair of output and input
depth slices) whose blocks are the doubly block Toeplitz matrices of 2-D convolutions.

>>> import numpy as np
>>> from cnnlab.explain import Conv, explain
>>> view = volume_matrix_view(explain(np.ones((2, 2, 2)), [Conv(np.ones((1, 2, 2)))], volume=True))
>>> view.matrix.shape, view.forward_ok, view.backward_ok
((2, 8), True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

import cnnlab.functional as _functional
from cnnlab.explain import _numbers as num
from cnnlab.explain._document import _terms
from cnnlab.explain._expr import Grid, Heading, Math, Num, Op, Para, Row, Sym
from cnnlab.explain._limits import MAX_MATRIX_ENTRIES, check_values, chosen
from cnnlab.explain._rendered import Rendered
from cnnlab.explain._volume import VolumeSolution, VolumeStage
from cnnlab.functional._matrix import conv_matrix

OP = "matrix_view"


def _column(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, 1)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if "f" in (a.dtype.kind, b.dtype.kind):
        return bool(np.allclose(a, b, rtol=1e-12, atol=1e-12))
    return bool(np.all(a == b))


class VolumeMatrixView(Rendered):
    """A volume's conv stage as the matrix ``M`` (see :func:`volume_matrix_view`).

    Attributes
    ----------
    stage : VolumeStage
    matrix : numpy.ndarray
        ``M``, shape ``(O*oD*oH*oW, C*D*H*W)``.
    vec_input, product, output : numpy.ndarray
        ``vec(I)``, ``M @ vec(I)`` (plus each row's bias) and ``vec(Conv(I))``.
    grad_out, transpose_product, grad_input : numpy.ndarray
        ``vec(g)``, ``M.T @ vec(g)`` and ``vec(dL/dI)`` from the library's ``conv_backward``.
    """

    def __init__(self, stage: VolumeStage, grad_out: np.ndarray, grad_note: str) -> None:
        self.stage = stage
        self.matrix = conv_matrix(stage.input.shape, stage.applied, op="conv", stride=stage.stride,
                                  padding=stage.pads, dilation=stage.dilation)
        self.vec_input = stage.input.ravel()
        product = self.matrix.dot(self.vec_input)
        if stage.bias is not None:
            product = product + np.repeat(stage.bias, product.size // stage.bias.size)
        self.product = product
        self.output = stage.output.ravel()
        self.grad_out = grad_out.ravel()
        self.transpose_product = self.matrix.T.dot(self.grad_out)
        grad_x, _, _ = _functional.conv_backward(grad_out, stage.input, stage.applied, None, stage.stride,
                                                 stage.pads, stage.dilation)
        self.grad_input = np.asarray(grad_x).ravel()
        self.grad_note = grad_note

    @property
    def forward_ok(self) -> bool:
        """Whether ``M @ vec(I)`` (plus bias) equals ``vec(Conv(I))`` (up to rounding for floats)."""
        return _close(self.product, self.output)

    @property
    def backward_ok(self) -> bool:
        """Whether ``M.T @ vec(g)`` equals the input gradient of the library's conv backward."""
        return _close(self.transpose_product, self.grad_input)

    def __repr__(self) -> str:
        return f"<VolumeMatrixView {self.stage.label}: M {self.matrix.shape[0]}x{self.matrix.shape[1]}>"

    def document_blocks(self, cells: int | None = None) -> list:
        st = self.stage
        src, out = st.input_label, st.label
        c, d, h, w = st.input.shape
        order = "slice by slice, each row by row" if c == 1 else "channel by channel, each slice row by row"
        blocks: list = [
            Heading(f"The matrix form of {out}", 1),
            Para(f"For a {d}x{h}x{w} volume the conv is linear in {src}, so it is a matrix M: reading {src} "
                 f"{order} into the column vec({src}), row p of M holds the filter's cells in the columns of "
                 f"the {src} cells that output cell p reads (padding cells read zeros, so they have no column)."),
            Row([Grid("M", self.matrix), Grid(f"vec({src})", _column(self.vec_input))]),
        ]
        if c == 1 and st.applied.shape[0] == 1 and st.stride == (1, 1, 1):
            blocks.append(Para(
                f"With stride 1, M is triply block Toeplitz: cut into blocks of {h * w} columns (one input "
                f"depth slice each), the blocks are constant along the block diagonals, and every block is "
                f"the doubly block Toeplitz matrix of a 2-D convolution (blocks of {w} columns, one input "
                f"row each, constant along their diagonals)."
            ))
        rows = chosen((self.matrix.shape[0],), cells)
        shown, hidden = [p for (p,) in rows], self.matrix.shape[0] - len(rows)
        bias = None if st.bias is None else np.repeat(st.bias, self.matrix.shape[0] // st.bias.size)
        for p in shown:
            cols = [i for i in range(self.matrix.shape[1]) if self.matrix[p, i] != 0]
            terms = [[Num(self.matrix[p, i], True), Op("*"), Num(self.vec_input[i], True)] for i in cols]
            if bias is not None:
                terms.append([Num(bias[p], True)])
            blocks.append(Math([Sym(f"(M vec({src}))[{p}]"), Op("="), *(_terms(terms) if terms else [Num(0)]),
                                Op("="), Num(self.product[p])]))
        if hidden:
            blocks.append(Para(f"... {hidden} more row(s) not shown."))
        blocks += [
            Row([Grid(f"M vec({src})" + (" + b" if bias is not None else ""), _column(self.product)),
                 Grid(f"vec({out})", _column(self.output))]),
            Para(f"M vec({src}) and vec({out}) are " + ("equal: checked." if self.forward_ok else "NOT equal.")),
            Heading("The transpose: the gradient", 2),
            Para(f"Since vec({out}) = M vec({src}), dL/dvec({src}) = M^T dL/dvec({out}): M^T is the transposed "
                 f"3-D convolution. {self.grad_note}"),
            Row([Grid("M^T vec(g)", _column(self.transpose_product)),
                 Grid(f"vec(dL/d{src})", _column(self.grad_input))]),
            Para(f"M^T vec(g) and the conv backward's dL/d{src} are "
                 + ("equal: checked." if self.backward_ok else "NOT equal.")),
        ]
        return blocks


def volume_matrix_view(source: VolumeSolution, *, stage: int = 0, grad_out: Any = None) -> VolumeMatrixView:
    """The matrix ``M`` of a conv stage of a volume solution; ``grad_out`` (default all ones) is the
    upstream gradient ``g`` for the transpose.  Called by :func:`cnnlab.explain.matrix_view`."""
    stages = [s for s in source.stages if s.kind == "conv"]
    if isinstance(stage, bool) or not isinstance(stage, int):
        raise TypeError(f"{OP}: stage must be an int, got {stage!r}")
    if not stages:
        raise ValueError(f"{OP}: the pipeline has no conv stage")
    if not 0 <= stage < len(stages):
        raise ValueError(f"{OP}: stage must be in [0, {len(stages)}) (the conv stages), got {stage}")
    st = stages[stage]
    if grad_out is None:
        g, note = np.ones(st.output.shape, dtype=np.int64), "Here g is all ones."
    else:
        g = num.as_values(OP, "grad_out", grad_out)
        if g.shape != st.output.shape and g.shape == st.output.shape[1:] and st.output.shape[0] == 1:
            g = g[None]
        if g.shape != st.output.shape or num.is_exact(g):
            raise ValueError(f"{OP}: grad_out must be ints or floats of the stage output's shape "
                             f"{st.output.shape}, got {g.shape}")
        note = "Here g is the given upstream gradient."
    check_values(OP, f"the conv matrix M ({st.output.size} x {st.input.size})", st.output.size * st.input.size,
                 MAX_MATRIX_ENTRIES, "MAX_MATRIX_ENTRIES")
    with np.errstate(all="ignore"):
        return VolumeMatrixView(st, g, note)
