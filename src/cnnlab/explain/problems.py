"""Problem sets like the lecture's: fresh small integer matrices, integer answers, worked solutions.

>>> ps = generate(7, kind="pipeline", difficulty=1, count=2)
>>> [p.number for p in ps.problems]
[1, 2]
>>> print(ps.render().splitlines()[0])
Problems: pipeline, difficulty 1 (seed 7)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.explain import _numbers as num
from cnnlab.explain._backprop import backprop
from cnnlab.explain._document import _grids, _shape_blocks, solution_blocks
from cnnlab.explain._engine import explain
from cnnlab.explain._expr import Heading, Items, Math, Num, Op, Para, Row, Sym
from cnnlab.explain._rendered import FORMATS, Rendered, make_writer
from cnnlab.explain._solution import DimShape, Solution
from cnnlab.explain._spec import Activation, Conv, Pool
from cnnlab.explain._writers import standalone as latex_document
from cnnlab.functional._args import out_sizes

KINDS = ("conv", "pool", "pipeline", "backprop", "shape")
OP = "problems"
MAX_COUNT = 100


@dataclass(eq=False)
class Problem:
    """One problem.

    ``data`` maps each matrix's name to its values; ``answer`` is an int, an ``int64`` matrix,
    a dict of named matrices (backprop) or a dict of named shapes (shape problems);
    ``solution`` is the worked solution (a :class:`~cnnlab.explain.Solution`,
    :class:`~cnnlab.explain._backprop.Backprop` or :class:`ShapeSolution`); ``stages`` the
    pipeline given to :func:`cnnlab.explain.explain` (``None`` for shape problems, whose numbers
    are in ``params``).
    """

    number: int
    kind: str
    question: str
    data: dict
    stages: list | None
    answer: Any
    solution: Any
    params: dict | None = None


class ShapeSolution(Rendered):
    """The output-size arithmetic of a conv layer and a pooling layer, axis by axis."""

    def __init__(self, layers: list[tuple[str, list[DimShape], bool, int]]) -> None:
        self.layers = layers  # (name, dims, is_pool, channels out)

    def document_blocks(self, cells: int | None = None) -> list:
        blocks: list = [Heading("Worked solution: output sizes", 1)]
        for name, dims, is_pool, channels in self.layers:
            blocks.append(Heading(name, 2))
            blocks += _shape_blocks(dims, pool=is_pool)
            blocks.append(Para(f"{name} gives {channels} channel(s) of {dims[0].out}x{dims[1].out}."))
        return blocks


class ProblemSet(Rendered):
    """Problems from :func:`generate`; ``render(format, answers=True)`` appends the answer key
    and the worked solutions."""

    def __init__(self, seed: int, kind: str, difficulty: int, problems: list[Problem]) -> None:
        self.seed, self.kind, self.difficulty, self.problems = seed, kind, difficulty, problems

    def __repr__(self) -> str:
        return f"<ProblemSet {self.kind} difficulty {self.difficulty} seed {self.seed}: {len(self.problems)}>"

    def document_blocks(self, cells: int | None = None, answers: bool = False) -> list:
        blocks: list = [Heading(f"Problems: {self.kind}, difficulty {self.difficulty} (seed {self.seed})", 1)]
        for p in self.problems:
            blocks += [Heading(f"Problem {p.number}", 2), Para(p.question)]
            grids = [g for name, a in p.data.items() for g in _grids(name, a if a.ndim == 3 else a[None])]
            if grids:
                blocks.append(Row(grids))
        if not answers:
            return blocks
        blocks.append(Heading("Answer key", 1))
        for p in self.problems:
            blocks += _answer_blocks(p)
        blocks.append(Heading("Worked solutions", 1))
        for p in self.problems:
            title = f"Problem {p.number}: worked solution"
            if isinstance(p.solution, Solution):
                blocks += solution_blocks(p.solution, cells, title)
            else:
                inner = p.solution.document_blocks(cells)
                blocks += [Heading(title, 1), *inner[1:]]
        return blocks

    def render(self, format: str = "text", cells: int | None = None, color: bool = False,
               answers: bool = False, *, standalone: bool = False) -> str:
        """The questions (and with ``answers=True`` the answer key and worked solutions);
        ``standalone`` (LaTeX): a complete document for pdflatex."""
        if not isinstance(answers, bool):
            raise TypeError(f"render: answers must be a bool, got {answers!r}")
        if format not in FORMATS:
            raise ValueError(f"render: format must be one of {list(FORMATS)}, got {format!r}")
        writer = make_writer(format, color=color)
        text = writer.document(self.document_blocks(cells, answers))
        if standalone:
            if format != "latex":
                raise ValueError("render: standalone needs format 'latex'")
            text = latex_document(text)
        return text


def _answer_blocks(p: Problem) -> list:
    label = f"{p.number}."
    if isinstance(p.answer, dict):
        items = []
        for name, value in p.answer.items():
            if isinstance(value, tuple):
                items.append(f"{name}: {' x '.join(str(v) for v in value)}")
        if items:
            return [Items([f"{label} " + "; ".join(items)])]
        grids = [g for name, a in p.answer.items() for g in _grids(name, a if a.ndim == 3 else a[None])]
        return [Para(label), Row(grids)]
    if isinstance(p.answer, np.ndarray):
        final = p.solution.final_label
        return [Para(label), Row(_grids(final, p.answer if p.answer.ndim == 3 else p.answer[None]))]
    # a number is laid out as a matrix answer is: the problem's number, then the answer
    return [Para(label), Math([Sym(p.solution.final_label), Op("="), Num(p.answer)])]


# ---------------------------------------------------------------------------------------------
# drawing numbers


def _ints(rng: np.random.Generator, lo: int, hi: int, shape) -> np.ndarray:
    return rng.integers(lo, hi + 1, shape).astype(np.int64)


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _integral(a: np.ndarray) -> np.ndarray | int:
    """A result as ints: a number for one cell, otherwise an ``int64`` matrix (checked exact)."""
    flat = [num._exact_scalar(v) for v in a.ravel()]
    if any(getattr(v, "denominator", 1) != 1 for v in flat):
        raise ArithmeticError("problems: a generated answer is not an integer")
    out = np.array([int(v) for v in flat], dtype=np.int64).reshape(a.shape)
    return int(out.ravel()[0]) if out.size == 1 else out


def _params_text(stride, padding, dilation=1) -> str:
    text = f"stride {stride}, padding {padding}"
    return text + (f", dilation {dilation}" if dilation != 1 else "")


def _conv_layer(rng, difficulty: int):
    """``(data, Conv spec, text)`` of a conv layer for the difficulty."""
    if difficulty == 1:
        size, k, stride, padding = int(rng.integers(3, 5)), 2, 1, 0
        x, f = _ints(rng, 0, 4, (size, size)), _ints(rng, -1, 2, (k, k))
        data, filters = {"I": x, "F": f}, f
    else:
        size, k = int(rng.integers(4, 6)), _pick(rng, (2, 3))
        stride, padding = int(rng.integers(1, 3)), int(rng.integers(0, 2))
        if difficulty == 2:
            x, f = _ints(rng, -2, 4, (size, size)), _ints(rng, -1, 2, (k, k))
            data, filters = {"I": x, "F": f}, f
        else:
            x = _ints(rng, -2, 3, (2, size, size))
            f1, f2 = _ints(rng, -1, 2, (2, k, k)), _ints(rng, -1, 2, (2, k, k))
            data, filters = {"I": x, "F1": f1, "F2": f2}, np.stack([f1, f2])
    bias = None if difficulty < 3 else _ints(rng, -2, 2, (2,))
    spec = Conv(filters, stride=stride, padding=padding, bias=bias)
    names = "F" if "F" in data else "F1 and F2"
    text = f"a conv layer with filter{'s' if 'F1' in data else ''} {names} ({_params_text(stride, padding)}"
    text += f", bias {bias[0]} and {bias[1]})" if bias is not None else ")"
    return data, spec, text


def _conv_problem(rng, n: int, difficulty: int) -> Problem:
    data, spec, text = _conv_layer(rng, difficulty)
    sol = explain(data["I"], [spec])
    question = (f"Compute Conv(I) for {text}. As in CNN libraries, Conv is a cross-correlation: the filter "
                "is not flipped.")
    return Problem(n, "conv", question, data, [spec], _integral(sol.output), sol)


def _pool_problem(rng, n: int, difficulty: int) -> Problem:
    kind = "max" if difficulty == 1 else _pick(rng, ("max", "avg"))
    if difficulty == 1:
        size, k, stride, padding = 4, 2, 2, 0
    else:
        size, k = int(rng.integers(4, 7)), _pick(rng, (2, 3))
        stride = k if kind == "avg" else int(rng.integers(1, 3))
        padding = 0 if difficulty == 2 else int(rng.integers(0, k // 2 + 1))
    x = _ints(rng, 0 if difficulty < 3 else -3, 9, (size, size))
    spec = Pool(kind, k, stride=stride, padding=padding)
    if kind == "avg":
        # windows do not overlap (stride = kernel): make each window's sum a multiple of its count
        sol = explain(x, [spec])
        (rlo, _), (clo, _) = sol.stages[0].pads
        for cell in sol.stages[0].cells:
            r = next(a for a in cell.rows if 0 <= a - rlo < size)
            c = next(b for b in cell.cols if 0 <= b - clo < size)
            x[r - rlo, c - clo] -= sum(cell.terms) % cell.divisor
    sol = explain(x, [spec])
    word = "max" if kind == "max" else "average"
    extra = ""
    if padding:
        extra = (" (padding counts as zeros in the average)" if kind == "avg" else
                 " (padding cells are -inf, so a padding cell is never the maximum)")
    question = f"Compute the {word} pooling of I with a {k}x{k} window, {_params_text(stride, padding)}{extra}."
    return Problem(n, "pool", question, {"I": x}, [spec], _integral(sol.output), sol)


def _pipeline_stages(rng, difficulty: int):
    data, conv, text = _conv_layer(rng, difficulty)
    pool = Pool("max", 2, stride=1 if difficulty == 1 else int(rng.integers(1, 3)))
    return data, [conv, Activation("relu"), pool], text, pool


def _pipeline_problem(rng, n: int, difficulty: int) -> Problem:
    while True:
        data, stages, text, pool = _pipeline_stages(rng, difficulty)
        try:
            sol = explain(data["I"], stages)
        except ValueError:  # the pooling window does not fit the conv's output: draw again
            continue
        break
    question = (f"Compute Pool(ReLU(Conv(I))) for {text}, ReLU, and 2x2 max pooling with stride "
                f"{pool.stride}.")
    return Problem(n, "pipeline", question, data, stages, _integral(sol.output), sol)


def _backprop_problem(rng, n: int, difficulty: int) -> Problem:
    while True:
        data, stages, text, pool = _pipeline_stages(rng, difficulty)
        try:
            sol = explain(data["I"], stages)
        except ValueError:
            continue
        break
    target = None
    if difficulty == 3:
        target = _ints(rng, 0, 4, sol.output.shape)
        data = {**data, "T": target}
        bp = backprop(data["I"], stages, loss="mse", target=target, reduction="sum")
        loss = "L = sum((Y - T)^2), the squared error of the output Y to the target T"
    else:
        bp = backprop(data["I"], stages)
        loss = "L = the sum of the cells of the output Y"
    names = [name for name in data if name.startswith("F")]
    wanted = [f"dL/d{name}" for name in names] + ([] if difficulty == 1 else ["dL/dI"])
    grads = _split(bp.grad_filters[0], len(names))
    answer = {f"dL/d{name}": _as_matrix(g) for name, g in zip(names, grads, strict=True)}
    if difficulty > 1:
        answer["dL/dI"] = _as_matrix(bp.grad_input)
    question = (f"Y = Pool(ReLU(Conv(I))) for {text}, ReLU, and 2x2 max pooling with stride {pool.stride}. "
                f"With {loss}, compute {' and '.join(wanted)}.")
    return Problem(n, "backprop", question, data, stages, answer, bp)


def _split(grad: np.ndarray, count: int) -> list[np.ndarray]:
    return [grad] if count == 1 else [grad[o] for o in range(count)]


def _as_matrix(a: np.ndarray) -> np.ndarray:
    out = _integral(a)
    return np.asarray(out, dtype=np.int64).reshape(a.shape)


def _shape_problem(rng, n: int, difficulty: int) -> Problem:
    while True:
        h = w = _pick(rng, (28, 32, 64)) if difficulty < 3 else None
        if difficulty == 3:
            h, w = _pick(rng, (28, 32, 48, 64, 96, 100)), _pick(rng, (28, 32, 48, 64, 100, 128))
        channels, out_ch = _pick(rng, (1, 3)), _pick(rng, (8, 16, 32))
        k = _pick(rng, (3, 5, 7))
        stride = 1 if difficulty == 1 else int(rng.integers(1, 3))
        padding = int(rng.integers(0, k // 2 + 1))
        dilation = 1 if difficulty < 3 else int(rng.integers(1, 3))
        pk = _pick(rng, (2, 3))
        ps = pk if difficulty == 1 else int(rng.integers(1, pk + 1))
        ceil = difficulty == 3 and bool(rng.integers(2))
        pads = ((padding, padding), (padding, padding))
        try:
            conv_out = out_sizes(OP, (h, w), (k, k), (stride, stride), pads, (dilation, dilation))
            pool_out = out_sizes(OP, conv_out, (pk, pk), (ps, ps), ((0, 0), (0, 0)), (1, 1), ceil)
        except ValueError:
            continue
        break
    conv_dims = [DimShape(a, s, k, stride, dilation, padding, padding, False, o)
                 for a, s, o in zip(("rows", "cols"), (h, w), conv_out, strict=True)]
    pool_dims = [DimShape(a, s, pk, ps, 1, 0, 0, ceil, o) for a, s, o in zip(("rows", "cols"), conv_out, pool_out,
                                                                           strict=True)]
    solution = ShapeSolution([(f"Conv layer: {out_ch} filters {k}x{k}", conv_dims, False, out_ch),
                              (f"Max pooling {pk}x{pk}", pool_dims, True, out_ch)])
    question = (f"An input of {channels} channel(s) of {h}x{w} goes through a conv layer with {out_ch} filters of "
                f"{k}x{k} ({_params_text(stride, padding, dilation)}), then {pk}x{pk} max pooling with stride {ps}"
                + (" and ceil_mode=True" if ceil else "") + ". Give the shape (channels x height x width) after "
                "the conv and after the pooling.")
    answer = {"after the conv": (out_ch, *conv_out), "after the pooling": (out_ch, *pool_out)}
    params = {"input": (channels, h, w), "out_channels": out_ch, "kernel": k, "stride": stride,
              "padding": padding, "dilation": dilation, "pool": pk, "pool_stride": ps, "ceil_mode": ceil}
    return Problem(n, "shape", question, {}, None, answer, solution, params)


_MAKERS = {
    "conv": _conv_problem,
    "pool": _pool_problem,
    "pipeline": _pipeline_problem,
    "backprop": _backprop_problem,
    "shape": _shape_problem,
}


def generate(seed: int, kind: str = "conv", difficulty: int = 1, count: int = 5) -> ProblemSet:
    """A set of fresh problems with integer answers and worked solutions.

    Parameters
    ----------
    seed : int
        Any integer >= 0; the same seed (with the same kind, difficulty and count) gives the same set.
    kind : {'conv', 'pool', 'pipeline', 'backprop', 'shape'}, default 'conv'
        Compute a conv layer's output; a max or average pooling; the lecture's
        Pool(ReLU(Conv(I))); the gradient of a loss with respect to the filter (and input); the
        output shapes of a conv and a pooling layer.
    difficulty : {1, 2, 3}, default 1
        Raises the sizes, then strides and padding, then channels, several filters, bias,
        dilation and ceil mode.
    count : int, default 5
        Number of problems (1 to 100).

    Returns
    -------
    ProblemSet
        ``problems`` (question, data, answer, worked solution each); render it with
        ``render(format, answers=...)``.

    Raises
    ------
    TypeError
        For a seed, difficulty or count that is not an int, or a kind that is not a str.
    ValueError
        For a negative seed, an unknown kind, a difficulty outside 1..3 or a count outside 1..100.

    Examples
    --------
    >>> ps = generate(1, kind="conv", difficulty=1, count=3)
    >>> len(ps.problems), ps.problems[0].kind
    (3, 'conv')
    >>> ps.render() == generate(1, kind="conv", difficulty=1, count=3).render()
    True
    """
    for name, value in (("seed", seed), ("difficulty", difficulty), ("count", count)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{OP}: {name} must be an int, got {value!r}")
    if seed < 0:
        raise ValueError(f"{OP}: seed must be >= 0, got {seed}")
    if not isinstance(kind, str):
        raise TypeError(f"{OP}: kind must be one of {list(KINDS)}, got {kind!r}")
    if kind not in KINDS:
        raise ValueError(f"{OP}: kind must be one of {list(KINDS)}, got {kind!r}")
    if not 1 <= difficulty <= 3:
        raise ValueError(f"{OP}: difficulty must be 1, 2 or 3, got {difficulty}")
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"{OP}: count must be in [1, {MAX_COUNT}], got {count}")
    rng = np.random.default_rng([int(seed), KINDS.index(kind), int(difficulty)])
    problems = [_MAKERS[kind](rng, n, int(difficulty)) for n in range(1, int(count) + 1)]
    return ProblemSet(int(seed), kind, int(difficulty), problems)
