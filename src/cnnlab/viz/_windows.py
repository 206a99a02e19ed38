"""The sliding-window diagram: an operator's window stepping over its (padded) input.

Drawn in the style of the conv_arithmetic figures (Dumoulin & Visin): the input grid with its
padding, the window's taps over it, the output grid filling up cell by cell, and under it the
current cell's arithmetic.  Every number comes from :func:`cnnlab.explain.explain`: the
positions of the taps, the products and the sums are those of the worked solution.

A transposed convolution is drawn the way it is computed by hand: zeros are inserted between the
input cells (``stride - 1`` of them), the result is padded with ``dilation*(k-1) - padding``
cells on each side (plus ``output_padding`` at the end), and the flipped kernel slides over it
with stride 1.  The tests check that this gives :func:`cnnlab.functional.conv_transpose2d`.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import functional as F
from cnnlab.explain import Conv, Pool, explain
from cnnlab.viz._common import figure, finish, format_of, number_text, pyplot

OP = "sliding_window"
OPS = ("conv", "conv_transpose", "max_pool", "avg_pool")

# roles of the cells of the drawn grid
INPUT, PAD, OUTSIDE, INSERTED = 0, 1, 2, 3
_FILL = {INPUT: "#9ecae1", PAD: "#ffffff", OUTSIDE: "#eeeeee", INSERTED: "#ffffff"}
_EDGE = {INPUT: "#3182bd", PAD: "#999999", OUTSIDE: "#cccccc", INSERTED: "#999999"}
_STYLE = {INPUT: "solid", PAD: "dashed", OUTSIDE: "dotted", INSERTED: "dotted"}


@dataclass(frozen=True, eq=False)
class WindowFrame:
    """One step of the window: the output cell ``index`` and the arithmetic that gives it.

    ``rows`` and ``cols`` are the positions of the window's taps in the drawn grid (padding and
    inserted zeros included); ``text`` is the cell's arithmetic, e.g. ``O[0,0] = 1*1 + 1*1 = 2``.
    """

    index: tuple[int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    value: Any
    text: str


def cell_text(cell: Any, label: str = "O") -> str:
    """One output cell's arithmetic from a worked solution, on one line.

    Parameters
    ----------
    cell : ConvCell or PoolCell
        A cell of a :func:`cnnlab.explain.explain` stage.
    label : str, default 'O'
        The output's name.

    Examples
    --------
    >>> from cnnlab.explain import Conv, explain
    >>> stage = explain([[1, 2], [3, 4]], [Conv([[1, 1], [0, 1]], bias=1)]).stages[0]
    >>> cell_text(stage.cells[0])
    'O[0,0] = 1*1 + 1*2 + 0*3 + 1*4 + 1 = 8'
    """
    i, j = cell.index[-2:]
    head = f"{label}[{i},{j}] = "
    if hasattr(cell, "kernel"):
        window, kernel = np.asarray(cell.window).reshape(-1), np.asarray(cell.kernel).reshape(-1)
        terms = [f"{number_text(w)}*{number_text(v)}" for w, v in zip(kernel, window, strict=True)]
        if cell.bias is not None:
            terms.append(number_text(cell.bias))
        return head + " + ".join(terms) + f" = {number_text(cell.value)}"
    if cell.chosen is not None:
        return head + f"max({', '.join(number_text(t) for t in cell.terms)}) = {number_text(cell.value)}"
    total = " + ".join(number_text(t) for t in cell.terms)
    return head + f"({total}) / {cell.divisor} = {number_text(cell.value)}"


class SlidingWindow:
    """The frames of an operator's sliding window; build one with :func:`sliding_window`.

    Attributes
    ----------
    op : str
        ``'conv'``, ``'conv_transpose'``, ``'max_pool'`` or ``'avg_pool'``.
    grid : numpy.ndarray
        The drawn input ``(Hg, Wg)``: the input with its padding (and, for a transposed conv,
        the inserted zeros).  ``None`` marks cells past the padding (pooling in ceil mode).
    roles : numpy.ndarray
        Per grid cell: ``INPUT`` (0), ``PAD`` (1), ``OUTSIDE`` (2) or ``INSERTED`` (3).
    kernel : numpy.ndarray or None
        The kernel as applied (flipped for ``mode='convolve'`` and for a transposed conv).
    output : numpy.ndarray
        ``(oH, oW)``.
    frames : list of WindowFrame
        One per output cell, in row-major order.
    shape_text : list of str
        The output-size arithmetic, one line per axis.
    """

    def __init__(self, op: str, grid: np.ndarray, roles: np.ndarray, kernel: np.ndarray | None,
                 output: np.ndarray, frames: list[WindowFrame], shape_text: list[str]) -> None:
        self.op = op
        self.grid = grid
        self.roles = roles
        self.kernel = kernel
        self.output = output
        self.frames = frames
        self.shape_text = shape_text

    def __len__(self) -> int:
        return len(self.frames)

    def __repr__(self) -> str:
        return f"<SlidingWindow {self.op}: grid {self.grid.shape} -> output {self.output.shape}, {len(self)} frames>"

    def _size(self) -> tuple[float, float, float]:
        hg, wg = self.grid.shape
        oh, ow = self.output.shape
        columns = wg + 1.5 + ow + 1
        cell = min(0.5, 9.0 / columns)
        width = round(max(4.0, columns * cell), 2)
        grid_height = (max(hg, oh) + 1.6) * cell
        return width, round(grid_height + 0.75, 2), cell

    def plot(self, frame: int = 0, path: str | os.PathLike[str] | None = None, *, values: bool | None = None) -> Any:
        """Draw frame ``frame`` (the window over output cell ``frame`` in row-major order).

        Parameters
        ----------
        frame : int, default 0
        path : str or os.PathLike, optional
            Save there as PNG or SVG (by suffix) and close the figure.
        values : bool, optional
            Write the numbers in the cells; by default when the grid is at most 12 x 12.

        Returns
        -------
        matplotlib.figure.Figure
        """
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
            raise TypeError(f"{OP}: frame must be an int, got {type(frame).__name__}")
        if not 0 <= frame < len(self.frames):
            raise ValueError(f"{OP}: frame must be in [0, {len(self.frames) - 1}], got {frame}")
        plt = pyplot()
        hg, wg = self.grid.shape
        oh, ow = self.output.shape
        if values is None:
            values = max(hg, wg, oh, ow) <= 12
        width, height, cell = self._size()
        fig = figure(width, height)
        text_frac = 1.0 / height
        ax = fig.add_axes((0.0, text_frac, 1.0, 1.0 - text_frac))
        ax.set_axis_off()
        left = 0.5
        out_left = left + wg + 1.5
        ax.set_xlim(0, out_left + ow + 0.5)
        ax.set_ylim(max(hg, oh) + 0.9, -1.3)
        ax.set_aspect("equal", adjustable="box")
        ax.set_anchor("W")
        font = max(5.0, min(11.0, 22.0 * cell))
        current = self.frames[frame]
        taps = {(r, c) for r in current.rows for c in current.cols}
        for r in range(hg):
            for c in range(wg):
                role = int(self.roles[r, c])
                ax.add_patch(plt.Rectangle((left + c, r), 1, 1, facecolor=_FILL[role], edgecolor=_EDGE[role],
                                           linestyle=_STYLE[role], linewidth=0.8))
                if (r, c) in taps:
                    ax.add_patch(plt.Rectangle((left + c, r), 1, 1, facecolor="#08519c", alpha=0.55,
                                               edgecolor="#08306b", linewidth=1.2))
                v = self.grid[r, c]
                if values and v is not None and role != OUTSIDE:
                    ax.text(left + c + 0.5, r + 0.55, number_text(v, 3), ha="center", va="center", fontsize=font,
                            color="white" if (r, c) in taps else "#222222")
        # the kernel's weights in the corner of each tap
        if values and self.kernel is not None:
            for i, r in enumerate(current.rows):
                for j, c in enumerate(current.cols):
                    ax.text(left + c + 0.95, r + 0.95, number_text(self.kernel[i, j], 2), ha="right", va="bottom",
                            fontsize=font * 0.6, color="#ffdd55")
        for r in range(oh):
            for c in range(ow):
                n = r * ow + c
                face = "#006d2c" if n == frame else ("#a1d99b" if n < frame else "#f7fcf5")
                ax.add_patch(plt.Rectangle((out_left + c, r), 1, 1, facecolor=face, edgecolor="#31a354", linewidth=0.8))
                if values and n <= frame:
                    ax.text(out_left + c + 0.5, r + 0.55, number_text(self.output[r, c], 3), ha="center",
                            va="center", fontsize=font, color="white" if n == frame else "#222222")
        titles = {"conv": "input (padded)", "conv_transpose": "input, zeros inserted, padded",
                  "max_pool": "input (padded)", "avg_pool": "input (padded)"}
        ax.text(left, -0.35, titles[self.op], fontsize=font, va="bottom")
        ax.text(out_left, -0.35, "output", fontsize=font, va="bottom")
        legend = {PAD: "dashed: padding", INSERTED: "dotted: inserted zeros", OUTSIDE: "grey: past the padding"}
        shown = [legend[r] for r in (PAD, INSERTED, OUTSIDE) if np.any(self.roles == r)]
        if shown:
            ax.text(left, max(hg, oh) + 0.25, ", ".join(shown), fontsize=font * 0.75, va="top", color="#555555")
        chars = max(30, int(width * 100 / 7.5))
        lines = textwrap.wrap(current.text, chars)
        if len(lines) > 3:
            lines = lines[:2] + ["... " + lines[-1][-(chars - 4):]]
        fig.text(0.01, text_frac * 0.92, "\n".join(lines), fontsize=9, family="monospace", va="top")
        return finish(OP, fig, path)

    def save_frames(self, folder: str | os.PathLike[str], format: str = "png") -> list[Path]:  # noqa: A002
        """Write every frame to ``folder/frame_000.png`` (or ``.svg``); return the paths."""
        fmt = format_of(OP, f"frame.{format}")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for n in range(len(self.frames)):
            path = folder / f"frame_{n:03d}.{fmt}"
            self.plot(n, path)
            paths.append(path)
        return paths

    def save_gif(self, path: str | os.PathLike[str], seconds_per_frame: float = 0.8) -> Path:
        """Write the frames as an animated GIF that loops; return the path."""
        from PIL import Image

        if Path(path).suffix.lower() != ".gif":
            raise ValueError(f"{OP}: save_gif needs a path ending in .gif, got {str(path)!r}")
        if not seconds_per_frame > 0:
            raise ValueError(f"{OP}: seconds_per_frame must be > 0, got {seconds_per_frame!r}")
        plt = pyplot()
        images = []
        for n in range(len(self.frames)):
            fig = self.plot(n)
            fig.canvas.draw()
            rgba = np.asarray(fig.canvas.buffer_rgba())
            images.append(Image.fromarray(rgba[..., :3]).convert("P", palette=Image.Palette.ADAPTIVE))
            plt.close(fig)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(seconds_per_frame * 1000),
                       loop=0)
        return Path(path)


def shape_text(dims: Any) -> list[str]:
    """The output-size arithmetic of a stage, one line per axis, from its ``DimShape`` list.

    Examples
    --------
    >>> from cnnlab.explain import Conv, explain
    >>> shape_text(explain([[1, 2, 3]] * 3, [Conv([[1, 1]] * 2, stride=2, padding=1)]).stages[0].shape)[0]
    'rows: out = floor((3 + 1 + 1 - 1*(2-1) - 1) / 2) + 1 = 2'
    """
    lines = []
    for d in dims:
        rounding = "ceil" if d.ceil_mode else "floor"
        lines.append(f"{d.axis}: out = {rounding}(({d.size} + {d.lo} + {d.hi} - {d.dilation}*({d.kernel}-1) - 1) "
                     f"/ {d.stride}) + 1 = {d.out}")
    return lines


def _matrix(name: str, value: Any) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype == object or a.dtype.kind not in "biuf":
        try:
            a = np.asarray(value, dtype=np.float64) if a.dtype != object else a
        except (TypeError, ValueError):
            raise TypeError(f"{OP}: {name} must be a matrix of numbers") from None
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{OP}: {name} must be a non-empty 2-D matrix (H, W), got shape {a.shape}")
    return a


def _pair(name: str, value: Any) -> tuple[int, int]:
    v = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if not (isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(t, (int, np.integer)) for t in v)):
        raise TypeError(f"{OP}: {name} must be an int or a pair of ints, got {value!r}")
    return int(v[0]), int(v[1])


def _transposed(x: np.ndarray, kernel: np.ndarray, stride: Any, padding: Any, dilation: Any,
                output_padding: Any, bias: Any) -> SlidingWindow:
    s, p, d, op = (_pair(n, v) for n, v in (("stride", stride), ("padding", padding), ("dilation", dilation),
                                             ("output_padding", output_padding)))
    b = None if bias is None else np.asarray([bias])
    # validates every argument the way the layer does, and is the reference the frames must give
    reference = np.asarray(F.conv_transpose2d(x[None, None], kernel[None, None], b, s, p, op, 1, d))[0, 0]
    (h, w), (kh, kw) = x.shape, kernel.shape
    pads = []
    for axis, k, pi, di, oi in zip(("rows", "cols"), (kh, kw), p, d, op, strict=True):
        lo = di * (k - 1) - pi
        if lo < 0:
            raise ValueError(f"{OP}: transposed conv padding {pi} along {axis} is larger than dilation*(kernel-1) = "
                             f"{di * (k - 1)}; the diagram cannot show cropped outputs")
        pads.append((lo, lo + oi))
    spread = np.zeros(((h - 1) * s[0] + 1, (w - 1) * s[1] + 1), dtype=x.dtype)
    spread[:: s[0], :: s[1]] = x
    flipped = kernel[::-1, ::-1]
    sol = explain(spread, [Conv(flipped, stride=1, padding=tuple(pads), dilation=d, bias=bias)])
    stage = sol.stages[0]
    roles = np.where(stage.roles == 0, INSERTED, PAD).astype(np.int8)
    (rlo, _), (clo, _) = pads
    roles[rlo: rlo + spread.shape[0]: s[0], clo: clo + spread.shape[1]: s[1]] = INPUT
    frames = [WindowFrame(cell.index[1:], cell.rows, cell.cols, cell.value, cell_text(cell))
              for cell in stage.cells]
    shape_text = [f"{axis}: out = ({n} - 1)*{si} - 2*{pi} + {di}*({k}-1) + {oi} + 1 = {o}"
                  for axis, n, si, pi, di, k, oi, o in zip(("rows", "cols"), (h, w), s, p, d, (kh, kw), op,
                                                           reference.shape, strict=True)]
    return SlidingWindow("conv_transpose", stage.grid[0], roles, flipped, stage.output[0], frames, shape_text)


def sliding_window(
    x: Any, kernel: Any = None, *, op: str = "conv", mode: str = "correlate", stride: Any = None, padding: Any = 0,
    dilation: Any = 1, output_padding: Any = 0, bias: Any = None, kernel_size: Any = 2, ceil_mode: bool = False,
) -> SlidingWindow:
    """The frames of a sliding window over ``x``, with each output cell's arithmetic.

    Parameters
    ----------
    x : array_like
        The input matrix ``(H, W)`` (ints, floats or Fractions).
    kernel : array_like, optional
        The filter ``(kH, kW)``; needed for ``'conv'`` and ``'conv_transpose'``.
    op : {'conv', 'conv_transpose', 'max_pool', 'avg_pool'}, default 'conv'
    mode : {'correlate', 'convolve'}, default 'correlate'
        For 'conv': the CNN layer (no flip) or the true convolution (kernel flipped).
    stride : int or pair, optional
        Defaults to 1 for the convs and to ``kernel_size`` for the pools, as in PyTorch.
    padding, dilation : int or pair, default 0, 1
        As in PyTorch.  For 'conv' and the pools ``padding`` may also be ``((lo, hi), (lo, hi))``
        (asymmetric), and for 'conv' ``'same'``, ``'valid'`` or ``'full'``.
    output_padding : int or pair, default 0
        For 'conv_transpose'.
    bias : number, optional
        For 'conv' and 'conv_transpose'.
    kernel_size : int or pair, default 2
        For the pools.
    ceil_mode : bool, default False
        For the pools.

    Shape
    -----
    'conv' and the pools: ``out = floor((in + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1``;
    'conv_transpose': ``out = (in - 1)*stride - 2*padding + dilation*(k-1) + output_padding + 1``.

    Returns
    -------
    SlidingWindow
        ``.plot(n, path)`` draws frame ``n``; ``.save_frames(folder)`` and ``.save_gif(path)``
        write them all.

    Raises
    ------
    TypeError, ValueError
        For a bad input, kernel or argument (the messages of :func:`cnnlab.explain.explain`).

    Examples
    --------
    >>> sw = sliding_window([[1, 0, 2], [3, 1, 0], [0, 0, 4]], [[1, 0], [0, 1]])
    >>> len(sw), sw.frames[3].text
    (4, 'O[1,1] = 1*1 + 0*0 + 0*0 + 1*4 = 5')
    """
    if op not in OPS:
        raise ValueError(f"{OP}: op must be one of {', '.join(OPS)}, got {op!r}")
    xm = _matrix("x", x)
    if op in ("conv", "conv_transpose"):
        if kernel is None:
            raise ValueError(f"{OP}: op {op!r} needs a kernel")
        km = _matrix("kernel", kernel)
        if op == "conv_transpose":
            return _transposed(xm, km, 1 if stride is None else stride, padding, dilation, output_padding, bias)
        if stride is None:
            stride = 1
        sol = explain(xm, [Conv(km, mode=mode, stride=stride, padding=padding, dilation=dilation, bias=bias)])
        stage = sol.stages[0]
        frames = [WindowFrame(cell.index[1:], cell.rows, cell.cols, cell.value, cell_text(cell))
                  for cell in stage.cells]
        roles = np.where(stage.roles == 0, INPUT, PAD).astype(np.int8)
        return SlidingWindow(op, stage.grid[0], roles, stage.applied[0, 0], stage.output[0], frames,
                             shape_text(stage.shape))
    kind = "max" if op == "max_pool" else "avg"
    sol = explain(xm, [Pool(kind, kernel_size, stride=stride, padding=padding, dilation=dilation,
                            ceil_mode=ceil_mode)])
    stage = sol.stages[0]
    frames = [WindowFrame(cell.index[1:], cell.rows, cell.cols, cell.value, cell_text(cell))
              for cell in stage.cells]
    grid = stage.grid[0].copy()
    grid[stage.roles == OUTSIDE] = None
    return SlidingWindow(op, grid, stage.roles.astype(np.int8), None, stage.output[0], frames,
                         shape_text(stage.shape))
