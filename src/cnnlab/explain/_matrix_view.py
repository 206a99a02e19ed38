"""The matrix form of a worked solution's conv stage: ``M @ vec(I) = vec(Conv(I))``, and its transpose.

For a fixed input shape a conv layer is linear in its input, so it is a matrix ``M``
(:func:`cnnlab.functional.conv_matrix`): row ``p`` holds the filter's cells in the columns of the
input cells that output cell ``p`` reads.  :func:`matrix_view` shows ``M`` for a conv stage of a
:class:`~cnnlab.explain.Solution` (or a :class:`~cnnlab.explain._backprop.Backprop`), checks that
``M @ vec(I)`` is the stage's output, and that ``M.T @ vec(g)`` is the input gradient the
library's conv backward computes for an upstream gradient ``g``: the transposed matrix is the
transposed convolution.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.explain import _numbers as num
from cnnlab.explain._backprop import Backprop, _conv_grads
from cnnlab.explain._document import _terms
from cnnlab.explain._expr import Grid, Heading, Math, Num, Op, Para, Row, Sym
from cnnlab.explain._limits import MAX_MATRIX_ENTRIES, check_values, chosen
from cnnlab.explain._rendered import Rendered
from cnnlab.explain._solution import ConvStage, Solution
from cnnlab.explain._volume import VolumeSolution
from cnnlab.explain._volume_matrix import VolumeMatrixView, volume_matrix_view
from cnnlab.functional._matrix import conv_matrix

OP = "matrix_view"


def _matrix(st: ConvStage) -> np.ndarray:
    """``conv_matrix`` of the stage's filters as applied; exact filters are placed tap by tap.

    Each entry of ``M`` is one filter cell (or 0), so the matrix of the tap numbers ``1..K``
    says which cell goes where, and exact (object) filters are looked up from it.
    """
    shape = st.input.shape
    kwargs = {"op": "conv", "stride": st.stride, "padding": st.pads, "dilation": st.dilation}
    if not num.is_exact(st.applied):
        return conv_matrix(shape, st.applied, **kwargs)
    taps = np.arange(1, st.applied.size + 1).reshape(st.applied.shape)
    where = conv_matrix(shape, taps, **kwargs)
    values = np.array([0, *st.applied.ravel().tolist()], dtype=object)
    return values[where]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Exact equality, or equality up to rounding for floating-point numbers."""
    if a.shape != b.shape:
        return False
    if "f" in (a.dtype.kind, b.dtype.kind):
        return bool(np.allclose(num.to_float(a) if num.is_exact(a) else a,
                                num.to_float(b) if num.is_exact(b) else b, rtol=1e-12, atol=1e-12))
    return bool(np.all(a == b))


def _column(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, 1)


class MatrixView(Rendered):
    """A conv stage as the matrix ``M`` (see :func:`matrix_view`).

    Attributes
    ----------
    stage : ConvStage
    matrix : numpy.ndarray
        ``M``, shape ``(O*oH*oW, C*H*W)``.
    vec_input, product, output : numpy.ndarray
        ``vec(I)``, ``M @ vec(I)`` (plus the bias of each row's filter) and ``vec(Conv(I))``.
    grad_out, transpose_product, grad_input : numpy.ndarray
        ``vec(g)``, ``M.T @ vec(g)`` and ``vec(dL/dI)`` from the library's conv backward.
    """

    def __init__(self, stage: ConvStage, matrix: np.ndarray, grad_out: np.ndarray, grad_note: str) -> None:
        self.stage = stage
        self.matrix = matrix
        self.vec_input = stage.input.ravel()
        product = matrix.dot(self.vec_input)
        if stage.bias is not None:
            rows = product.size // stage.bias.size
            product = product + np.repeat(stage.bias, rows)
        self.product = product
        self.output = stage.output.ravel()
        self.grad_out = grad_out.ravel()
        self.transpose_product = matrix.T.dot(self.grad_out)
        arithmetic = num.common_arithmetic(grad_out, stage.input, stage.applied)
        self.grad_input = _conv_grads(stage, grad_out, arithmetic)[0].ravel()
        self.grad_note = grad_note

    @property
    def forward_ok(self) -> bool:
        """Whether ``M @ vec(I)`` (plus bias) equals ``vec(Conv(I))`` (up to rounding for floats)."""
        return _same(self.product, self.output)

    @property
    def backward_ok(self) -> bool:
        """Whether ``M.T @ vec(g)`` equals the input gradient of the library's conv backward."""
        return _same(self.transpose_product, self.grad_input)

    def __repr__(self) -> str:
        return f"<MatrixView {self.stage.label}: M {self.matrix.shape[0]}x{self.matrix.shape[1]}>"

    def document_blocks(self, cells: int | None = None) -> list:
        st = self.stage
        src, out = st.input_label, st.label
        c, h, w = st.input.shape
        order = "row by row" if c == 1 else "channel by channel, each row by row"
        blocks: list = [
            Heading(f"The matrix form of {out}", 1),
            Para(f"For a {h}x{w} input the conv is linear in {src}, so it is a matrix M: reading {src} {order} "
                 f"into the column vec({src}), row p of M holds the filter's cells in the columns of the "
                 f"{src} cells that output cell p reads (padding cells read zeros, so they have no column)."),
            Row([Grid("M", self.matrix), Grid(f"vec({src})", _column(self.vec_input))]),
        ]
        if h == 1 and c == 1 and st.applied.shape[0] == 1 and st.stride == (1, 1):
            blocks.append(Para("For a 1-D signal with stride 1, M is a Toeplitz matrix: every diagonal is "
                               "constant, because each row is the filter shifted one place to the right of "
                               "the row above (a 1-D convolution is multiplication by a Toeplitz matrix)."))
        elif c == 1 and st.applied.shape[0] == 1 and st.stride == (1, 1):
            blocks.append(Para(f"With stride 1, M is doubly block Toeplitz: cut into blocks of {w} columns (one "
                               f"input row each), every block is constant along its diagonals, and so are the "
                               f"blocks along the block diagonals."))
        rows = chosen((self.matrix.shape[0],), cells)
        shown, hidden = [p for (p,) in rows], self.matrix.shape[0] - len(rows)
        bias = None if st.bias is None else np.repeat(st.bias, self.matrix.shape[0] // st.bias.size)
        for p in shown:
            cols = [i for i in range(self.matrix.shape[1]) if self.matrix[p, i] != 0]
            terms = [[Num(self.matrix[p, i], True), Op("*"), Num(self.vec_input[i], True)] for i in cols]
            if bias is not None:
                terms.append([Num(bias[p], True)])
            items = [Sym(f"(M vec({src}))[{p}]"), Op("="), *(_terms(terms) if terms else [Num(0)]),
                     Op("="), Num(self.product[p])]
            blocks.append(Math(items))
        if hidden:
            blocks.append(Para(f"... {hidden} more row(s) not shown."))
        verdict = "equal: checked" if self.forward_ok else "NOT equal"
        blocks += [
            Row([Grid(f"M vec({src})" + (" + b" if bias is not None else ""), _column(self.product)),
                 Grid(f"vec({out})", _column(self.output))]),
            Para(f"M vec({src}) and vec({out}) are {verdict}."),
            Heading("The transpose: the gradient", 2),
            Para(f"Since vec({out}) = M vec({src}), the chain rule gives dL/dvec({src}) = M^T dL/dvec({out}). "
                 f"M^T maps an output-shaped array back to the input's shape: it is the transposed convolution, "
                 f"which is why the input gradient of a conv is a transposed conv. {self.grad_note}"),
            Row([Grid("M^T", self.matrix.T), Grid("vec(g)", _column(self.grad_out))]),
            Row([Grid("M^T vec(g)", _column(self.transpose_product)),
                 Grid(f"vec(dL/d{src})", _column(self.grad_input))]),
            Para(f"M^T vec(g) and the conv backward's dL/d{src} are "
                 + ("equal: checked." if self.backward_ok else "NOT equal.")),
        ]
        return blocks


def matrix_view(source: Any, *, stage: int = 0, grad_out: Any = None) -> MatrixView | VolumeMatrixView:
    """Show the conv stage of a worked solution as its matrix ``M`` and verify ``M`` and ``M.T``.

    Parameters
    ----------
    source : Solution, Backprop, ConvStage or VolumeSolution
        What :func:`cnnlab.explain.explain` or :func:`cnnlab.explain._backprop.backprop` returned,
        or one conv stage of it.  For a volume (``explain(..., volume=True)``) the result is a
        ``VolumeMatrixView``: M of the 3-D conv, triply block Toeplitz for one filter at stride 1.
    stage : int, default 0
        Which conv stage of the pipeline (0 is the first conv stage).
    grad_out : array_like, optional
        The upstream gradient ``g`` (the stage output's shape) for the transpose check.  Defaults
        to the gradient the backward pass computed for a Backprop, and to all ones otherwise.

    Returns
    -------
    MatrixView
        ``forward_ok`` and ``backward_ok`` say whether the checks hold; render it like a Solution.

    Raises
    ------
    TypeError
        For a source that is not a Solution, Backprop or ConvStage, or a bad ``stage``.
    ValueError
        Without a conv stage, for a ``stage`` out of range, a padding mode other than zeros (only
        zero padding is this matrix) or a ``grad_out`` of the wrong shape.

    Examples
    --------
    >>> from cnnlab.explain import Conv, explain
    >>> view = matrix_view(explain([[1, 0, 2], [3, 1, 0], [0, 0, 4]], [Conv([[1, 0], [0, 1]])]))
    >>> view.matrix.shape, view.product.tolist(), view.forward_ok, view.backward_ok
    ((4, 9), [2, 0, 3, 5], True, True)
    """
    grad_note = "Here g is all ones."
    backward_grads: list = []
    if isinstance(source, Backprop):
        backward_grads = [s.grad_out for s in source.conv_steps]
        stages = [s.stage for s in source.conv_steps]
    elif isinstance(source, Solution):
        stages = [s for s in source.stages if isinstance(s, ConvStage)]
    elif isinstance(source, ConvStage):
        stages = [source]
    elif isinstance(source, VolumeSolution):
        return volume_matrix_view(source, stage=stage, grad_out=grad_out)
    else:
        raise TypeError(f"{OP}: source must be a Solution, Backprop or ConvStage, got {type(source).__name__}")
    if isinstance(stage, bool) or not isinstance(stage, int):
        raise TypeError(f"{OP}: stage must be an int, got {stage!r}")
    if not stages:
        raise ValueError(f"{OP}: the pipeline has no conv stage")
    if not 0 <= stage < len(stages):
        raise ValueError(f"{OP}: stage must be in [0, {len(stages)}) (the conv stages), got {stage}")
    st = stages[stage]
    if st.padding_mode != "zeros":
        raise ValueError(f"{OP}: only zero padding is a matrix here, got padding_mode {st.padding_mode!r}")
    if grad_out is not None:
        g = num.as_values(OP, "grad_out", grad_out)
        if g.size == st.output.size and g.shape != st.output.shape:
            g = g.reshape(st.output.shape) if g.ndim == st.output.ndim - 1 else g
        if g.shape != st.output.shape:
            shape = st.output.shape
            shown = f"{shape[1:]} (or {shape})" if shape[0] == 1 else str(shape)
            raise ValueError(f"{OP}: grad_out must have the stage output's shape {shown}, got {g.shape}")
        grad_note = "Here g is the given upstream gradient."
    elif backward_grads:
        g = backward_grads[stage]
        grad_note = "Here g is the upstream gradient of the backward pass."
    else:
        g = np.ones(st.output.shape, dtype=np.int64)
    entries = st.output.size * st.input.size
    check_values(OP, f"the conv matrix M ({st.output.size} x {st.input.size})", entries,
                 MAX_MATRIX_ENTRIES, "MAX_MATRIX_ENTRIES")
    with np.errstate(all="ignore"):  # NaN and inf propagate as IEEE says, without warnings
        return MatrixView(st, _matrix(st), g, grad_note)
