"""How much a worked solution may compute and print, checked before any work is done.

Every entry point of :mod:`cnnlab.explain` (``explain``, ``compare``, ``backprop``,
``matrix_view``, the problem generator) first computes the size of what it would do: the number
of values of every matrix it would hold, the multiply-adds of every conv stage, the entries of a
conv matrix.  Above a limit it raises :class:`ValueError` naming the limit, before allocating
anything.  Below it, large stages are still answered in full (every output value) but only a few
representative cells are worked out by hand, and every matrix wider or taller than
:data:`SHOW_SIDE` is printed with its middle elided.

>>> representative((1, 3, 3), 3)
[(0, 0, 0), (0, 1, 1), (0, 2, 2)]
>>> check_values("explain", "the padded input", 5_000 * 5_000)
Traceback (most recent call last):
...
ValueError: explain: the padded input would hold 25,000,000 values; the limit is 1,000,000 (MAX_VALUES)
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_VALUES = 1_000_000
"""The most values any matrix of a worked solution may hold (input, padded input, output)."""

MAX_WORK = 200_000_000
"""The most multiply-adds of one stage in integer or floating-point arithmetic."""

MAX_EXACT_WORK = 500_000
"""The most multiply-adds of one stage in exact rational arithmetic (Python fractions)."""

MAX_MATRIX_ENTRIES = 4_000_000
"""The most entries of a conv matrix ``M`` (``matrix_view``)."""

MAX_TEXT_VALUES = 250_000
"""The most entries of a matrix typed as text (the parser is written in Python)."""

FULL = 64
"""A stage with at most this many output cells has every cell worked out."""

DEFAULT_CELLS = 4
"""How many representative cells a larger stage works out when no number is asked for."""

MAX_CELLS = 200
"""The most cells of one stage worked out by hand, however many are asked for (the rest are
counted as not shown)."""

SHOW_SIDE = 16
"""Matrices with more rows or columns than this are printed with the middle elided."""

EDGE = 4
"""How many rows (columns) are kept at each end of an elided matrix."""


def _count(n: int) -> str:
    return f"{n:,}"


def check_values(op: str, what: str, count: int, limit: int = MAX_VALUES,
                 name: str = "MAX_VALUES") -> None:
    """Raise ``ValueError`` when ``what`` would hold more than ``limit`` values."""
    if count > limit:
        raise ValueError(
            f"{op}: {what} would hold {_count(count)} values; the limit is {_count(limit)} ({name})"
        )


def check_work(op: str, what: str, count: int, exact: bool) -> None:
    """Raise ``ValueError`` when ``what`` needs more multiply-adds than the limit of its arithmetic."""
    limit, name = (MAX_EXACT_WORK, "MAX_EXACT_WORK") if exact else (MAX_WORK, "MAX_WORK")
    if count > limit:
        hint = "; give floating-point numbers (e.g. 1.0) for larger exact-looking inputs" if exact else ""
        raise ValueError(
            f"{op}: {what} would take {_count(count)} multiply-adds; the limit is {_count(limit)} "
            f"({name}){hint}"
        )


def cell_count(op: str, cells: Any) -> int | None:
    """``cells`` checked: None or an int >= 0."""
    if cells is None:
        return None
    if isinstance(cells, bool) or not isinstance(cells, (int, np.integer)):
        raise TypeError(f"{op}: cells must be an int or None, got {cells!r}")
    if cells < 0:
        raise ValueError(f"{op}: cells must be >= 0, got {cells}")
    return int(cells)


def representative(shape: tuple[int, ...], n: int | None) -> list[tuple[int, ...]]:
    """Up to ``n`` indices of an array of ``shape``, evenly spread in row-major order from the first
    to the last (all of them when ``n`` is None)."""
    total = int(np.prod(shape))
    if n is None or n >= total:
        return list(np.ndindex(*shape))
    if n <= 0:
        return []
    flat = np.unique(np.linspace(0, total - 1, n).round().astype(np.int64))
    return [tuple(int(v) for v in np.unravel_index(f, shape)) for f in flat]


def chosen(shape: tuple[int, ...], cells: int | None) -> list[tuple[int, ...]]:
    """The cells of a stage to work out: all of a small stage, :data:`DEFAULT_CELLS` of a large one
    when ``cells`` is None, else ``cells`` of them."""
    total = int(np.prod(shape))
    if cells is None:
        cells = None if total <= FULL else DEFAULT_CELLS
    else:
        cells = min(cells, MAX_CELLS)
    return representative(shape, cells)


class Gap:
    """An elided run of rows or columns in a printed matrix: ``kind`` is 'row', 'col' or 'both'."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"Gap({self.kind!r})"


def _kept(n: int, side: int, edge: int) -> list[int] | None:
    """The positions kept along an axis of length ``n`` (None: keep all)."""
    if n <= side:
        return None
    return [*range(edge), -1, *range(n - edge, n)]


def elide(values: np.ndarray, *masks: np.ndarray | None, side: int = SHOW_SIDE, edge: int = EDGE,
          col_side: int | None = None, col_edge: int | None = None) -> tuple[np.ndarray, list]:
    """A matrix (and its masks) with the middle rows and columns replaced by one :class:`Gap` row /
    column when it is larger than ``side`` (:data:`SHOW_SIDE`) along that axis, keeping ``edge``
    at each end (``col_side`` and ``col_edge``: other numbers for the columns)."""
    values = np.asarray(values, dtype=object)
    rows = _kept(values.shape[0], side, edge)
    cols = _kept(values.shape[1], side if col_side is None else col_side,
                 edge if col_edge is None else col_edge)
    if rows is None and cols is None:
        return values, list(masks)
    rows = rows if rows is not None else list(range(values.shape[0]))
    cols = cols if cols is not None else list(range(values.shape[1]))
    out = np.empty((len(rows), len(cols)), dtype=object)
    new_masks = [None if m is None else np.zeros(out.shape, dtype=bool) for m in masks]
    for a, r in enumerate(rows):
        for b, c in enumerate(cols):
            if r < 0 and c < 0:
                out[a, b] = Gap("both")
            elif r < 0:
                out[a, b] = Gap("row")
            elif c < 0:
                out[a, b] = Gap("col")
            else:
                out[a, b] = values[r, c]
                for m, nm in zip(masks, new_masks, strict=True):
                    if m is not None:
                        nm[a, b] = bool(m[r, c])
    return out, new_masks


MAX_TERMS = 12
"""Equations with more terms than this show the first and last few with an ellipsis between."""


def few(terms: list, keep: int = 4) -> tuple[list, int]:
    """``terms`` or, when longer than :data:`MAX_TERMS`, the first and last ``keep`` with ``None``
    marking the gap; also the number left out."""
    if len(terms) <= MAX_TERMS:
        return terms, 0
    return [*terms[:keep], None, *terms[-keep:]], len(terms) - 2 * keep
