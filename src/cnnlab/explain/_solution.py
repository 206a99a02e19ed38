"""A worked solution and a comparison of correlation with convolution: the objects users render."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.explain._document import comparison_blocks, solution_blocks
from cnnlab.explain._rendered import Rendered
from cnnlab.explain._stages import (  # noqa: F401 - re-exported for the modules that build solutions
    INPUT,
    OUTSIDE,
    PAD,
    ActivationCell,
    ActivationStage,
    ConvCell,
    ConvStage,
    DimShape,
    PoolCell,
    PoolStage,
)


class Solution(Rendered):
    """A worked solution: the input, each stage with its cells, and the answer.

    Build one with :func:`cnnlab.explain.explain`.  Render it with :meth:`render` (or
    :meth:`to_text`, :meth:`to_markdown`, :meth:`to_latex`, :meth:`to_html`); ``str()`` gives
    the text form and Jupyter shows the HTML form.

    Attributes
    ----------
    input : numpy.ndarray
        The input with its channel axis, ``(C, H, W)``.
    label : str
        The input's name (``'I'``).
    planar : bool
        Whether the input was given as a 2-D matrix (or a 1-D signal).
    signal : bool
        Whether the input was a 1-D signal ``(L,)``, worked out as one row ``(1, 1, L)``.
    stages : list
        :class:`ConvStage`, :class:`ActivationStage` and :class:`PoolStage` objects in order.
    alternative : numpy.ndarray or None
        The final output had every conv stage used the other operation (a true convolution
        instead of a cross-correlation, or the reverse); ``None`` without conv stages.
    """

    def __init__(
        self, input: np.ndarray, label: str, planar: bool, stages: list,
        alternative: np.ndarray | None, *, signal: bool = False,
    ) -> None:
        self.input = input
        self.label = label
        self.planar = planar
        self.signal = signal
        self.stages = stages
        self.alternative = alternative

    def _squeeze(self, a: np.ndarray) -> np.ndarray:
        if self.signal:
            return a[0, 0] if a.shape[0] == 1 else a[:, 0]
        return a[0] if self.planar and a.shape[0] == 1 else a

    @property
    def output(self) -> np.ndarray:
        """The final matrix: ``(H, W)`` for a single-channel result of a 2-D input, else
        ``(C, H, W)``."""
        last = self.stages[-1].output if self.stages else self.input
        return self._squeeze(last)

    @property
    def answer(self) -> Any:
        """The final result: a number when it has one cell, otherwise :attr:`output`."""
        out = self.output
        if out.size != 1:
            return out
        value = out.ravel()[0]
        return value.item() if isinstance(value, np.generic) else value

    @property
    def final_label(self) -> str:
        return self.stages[-1].label if self.stages else self.label

    def document_blocks(self, cells: int | None = None) -> list:
        """The blocks of the worked solution; ``cells`` limits the worked cells per stage."""
        return solution_blocks(self, cells)

    def __repr__(self) -> str:
        shapes = " -> ".join(
            [str(tuple(self.input.shape))] + [str(tuple(s.output.shape)) for s in self.stages]
        )
        return f"<Solution {self.final_label}: {shapes}>"


class Comparison(Rendered):
    """The same pipeline computed with cross-correlation and with true convolution.

    Built by :func:`cnnlab.explain.compare`; renders both solutions after a side-by-side summary.
    """

    def __init__(self, correlation: Solution, convolution: Solution) -> None:
        self.correlation = correlation
        self.convolution = convolution

    def document_blocks(self, cells: int | None = None) -> list:
        """The blocks of the side-by-side summary and both worked solutions."""
        return comparison_blocks(self, cells)

    def __repr__(self) -> str:
        return f"<Comparison of {self.correlation.final_label}>"

