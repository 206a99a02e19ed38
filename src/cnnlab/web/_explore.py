"""The explorer's answer: a pipeline worked out by :func:`cnnlab.explain.explain`, as JSON.

No arithmetic here: the matrices, windows and sums are the worked solution's, the cell lines
come from :func:`cnnlab.viz.cell_text` and the output-size lines from :func:`cnnlab.viz.shape_text`.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from cnnlab.explain import ACTIVATIONS, LECTURE_FILTER, LECTURE_INPUT, Conv, Pool, explain, matrix_view
from cnnlab.viz import cell_text, shape_text
from cnnlab.web._schema import ApiError, Field

MATRIX_FORM_LIMIT = 1024  # entries of M shown


def explore_schema(side: int, filters: int, kernel: int) -> dict[str, Field]:
    """The fields of ``POST /api/explain`` with the server's limits."""
    return {
        "input": Field("matrix", high=side, default=[list(r) for r in LECTURE_INPUT],
                       doc=f"the input matrix, at most {side} x {side}"),
        "filters": Field("matrices", high=kernel, count=filters, default=[[list(r) for r in LECTURE_FILTER]],
                         doc=f"one to {filters} filters of one shape, at most {kernel} x {kernel}"),
        "mode": Field("choice", choices=("correlate", "convolve"), default="correlate"),
        "stride": Field("int", low=1, high=8, default=1),
        "padding": Field("int", low=0, high=8, default=0),
        "dilation": Field("int", low=1, high=4, default=1),
        "activation": Field("choice", choices=("none", *ACTIVATIONS), default="relu"),
        "pool": Field("choice", choices=("none", "max", "avg"), default="max"),
        "pool_size": Field("int", low=1, high=8, default=2),
        "pool_stride": Field("int", low=1, high=8, default=1),
    }


def jsonable(v: Any) -> Any:
    """A number or array of a solution as JSON: ints stay ints, fractions become ``"a/b"`` text."""
    if isinstance(v, np.ndarray):
        return [jsonable(x) for x in v.tolist()] if v.dtype != object else [jsonable(x) for x in list(v)]
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, Fraction):
        return v.numerator if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)
    if f != f or f in (float("inf"), float("-inf")):
        return str(f)
    return f


def _conv_json(stage: Any) -> dict[str, Any]:
    count = stage.filters.shape[0]
    return {
        "kind": "conv", "label": stage.label, "mode": stage.mode,
        "grid": jsonable(stage.grid[0]), "roles": jsonable(stage.roles),
        "filters": jsonable(stage.filters[:, 0]), "applied": jsonable(stage.applied[:, 0]),
        "output": jsonable(stage.output), "other_output": jsonable(stage.other_output),
        "shape": shape_text(stage.shape),
        "cells": [{"index": list(c.index), "rows": list(c.rows), "cols": list(c.cols), "value": jsonable(c.value),
                   "text": cell_text(c, stage.filter_labels[c.index[0]] if count > 1 else "O")}
                  for c in stage.cells],
    }


def _pool_json(stage: Any) -> dict[str, Any]:
    grid = np.where(stage.roles[None] == 2, None, stage.grid)
    return {
        "kind": "pool", "label": stage.label, "pool": stage.pool,
        "grid": jsonable(grid), "roles": jsonable(stage.roles), "output": jsonable(stage.output),
        "shape": shape_text(stage.shape),
        "cells": [{"index": list(c.index), "rows": list(c.rows), "cols": list(c.cols), "value": jsonable(c.value),
                   "text": cell_text(c, "P" if stage.output.shape[0] == 1 else f"P{c.index[0] + 1}")}
                  for c in stage.cells],
    }


def explore(req: dict[str, Any]) -> dict[str, Any]:
    """Work out ``Pool(Activation(Conv(input)))`` as the request asks and describe every stage."""
    stages: list[Any] = [Conv(req["filters"], mode=req["mode"], stride=req["stride"], padding=req["padding"],
                              dilation=req["dilation"])]
    if req["activation"] != "none":
        stages.append(req["activation"])
    if req["pool"] != "none":
        stages.append(Pool(req["pool"], req["pool_size"], stride=req["pool_stride"]))
    x = np.array(req["input"])
    if all(float(v).is_integer() for v in x.ravel()) and np.all(np.abs(x) < 2**31):
        x = x.astype(np.int64)  # whole numbers stay exact
    try:
        sol = explain(x, stages)
    except (TypeError, ValueError) as exc:
        raise ApiError(422, str(exc)) from None
    out_stages = []
    for st in sol.stages:
        if st.kind == "conv":
            out_stages.append(_conv_json(st))
        elif st.kind == "pool":
            out_stages.append(_pool_json(st))
        else:
            out_stages.append({"kind": "activation", "label": st.label, "name": st.name,
                               "output": jsonable(st.output), "notes": st.notes})
    matrix = None
    conv = sol.stages[0]
    if conv.padding_mode == "zeros" and conv.output.size * conv.input.size <= MATRIX_FORM_LIMIT:
        view = matrix_view(sol)
        matrix = {"matrix": jsonable(view.matrix), "vec_input": jsonable(view.vec_input),
                  "product": jsonable(view.product)}
    answer = sol.answer
    return {"stages": out_stages, "answer": jsonable(answer), "final_label": sol.final_label,
            "matrix_form": matrix, "text": sol.to_text(cells=4)}
