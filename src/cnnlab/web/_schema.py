"""Request schemas of the web app and the one validator that checks every request against them.

A schema is a mapping ``field -> Field``.  :func:`validate` turns a decoded JSON body (or the
query parameters) into a dict of checked values, or raises :class:`ApiError` with status 422 and
a message naming the field, what was expected and what was received.  ``GET /api/schema`` serves
the schemas, so the front end and the tests read the same declaration, and ``GET /openapi.json``
serves the OpenAPI document built from them (:mod:`cnnlab.web._openapi`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Field:
    """One field of a request.

    ``kind`` is ``'int'``, ``'number'``, ``'bool'``, ``'choice'``, ``'text'`` (matching
    ``pattern``), ``'matrix'`` (a rectangular list of lists of numbers), ``'matrices'`` (a list of
    such matrices of one shape) or ``'array'`` (rectangular nested lists of numbers, 1 to 3 deep).
    ``low``/``high`` bound ints and numbers, and the side of a matrix; ``count`` bounds the
    number of matrices.
    """

    kind: str
    required: bool = False
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    count: int | None = None
    doc: str = ""

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind, "required": self.required}
        for key in ("default", "low", "high", "pattern", "count"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.choices:
            out["choices"] = list(self.choices)
        if self.doc:
            out["doc"] = self.doc
        return out


def _fail(name: str, expected: str, got: Any) -> ApiError:
    shown = repr(got)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ApiError(422, f"field '{name}': expected {expected}, got {shown}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _matrix(name: str, value: Any, side: int) -> list[list[float]]:
    expected = "a rectangular list of rows of finite numbers"
    if not isinstance(value, list) or not value or not all(isinstance(r, list) and r for r in value):
        raise _fail(name, expected, value)
    rows, cols = len(value), len(value[0])
    if any(len(r) != cols for r in value):
        raise ApiError(422, f"field '{name}': rows differ in length ({sorted({len(r) for r in value})})")
    if rows > side or cols > side:
        raise ApiError(422, f"field '{name}': a {rows} x {cols} matrix is larger than the limit of {side} x {side}")
    for r in value:
        for v in r:
            if not _is_number(v):
                raise _fail(name, expected, v)
    return value


def _array(name: str, value: Any, high: float | None) -> Any:
    """Rectangular nested lists of finite numbers (depth 1 to 3); ``high`` bounds the total count."""
    expected = "rectangular nested lists (at most 3 deep) of finite numbers"
    count = 0

    def shape(v: Any, d: int) -> tuple[int, ...]:
        nonlocal count
        if not isinstance(v, list) or not v or d >= 3:
            raise _fail(name, expected, v)
        if not isinstance(v[0], list):
            for item in v:
                if not _is_number(item):
                    raise _fail(name, expected, item)
            count += len(v)
            if high is not None and count > high:
                raise ApiError(413, f"field '{name}': more than the limit of {int(high)} numbers")
            return (len(v),)
        inner = shape(v[0], d + 1)
        for item in v[1:]:
            if shape(item, d + 1) != inner:
                raise ApiError(422, f"field '{name}': the nested lists differ in length (not a rectangular array)")
        return (len(v), *inner)

    shape(value, 0)
    return value


def check(name: str, field: Field, value: Any) -> Any:
    """One field's value, checked."""
    kind = field.kind
    if kind == "int":
        if isinstance(value, str) and re.fullmatch(r"-?\d{1,9}", value):
            value = int(value)  # query parameters arrive as text
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(name, f"an integer in [{field.low:g}, {field.high:g}]", value)
        if (field.low is not None and value < field.low) or (field.high is not None and value > field.high):
            raise _fail(name, f"an integer in [{field.low:g}, {field.high:g}]", value)
        return value
    if kind == "number":
        if not _is_number(value) or (field.low is not None and value < field.low) or (
                field.high is not None and value > field.high):
            raise _fail(name, f"a number in [{field.low:g}, {field.high:g}]", value)
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise _fail(name, "true or false", value)
        return value
    if kind == "choice":
        if not isinstance(value, str) or value not in field.choices:
            raise _fail(name, "one of " + ", ".join(field.choices), value)
        return value
    if kind == "text":
        if not isinstance(value, str) or (field.pattern and not re.fullmatch(field.pattern, value)):
            raise _fail(name, f"text matching {field.pattern}", value)
        return value
    if kind == "matrix":
        return _matrix(name, value, int(field.high or 16))
    if kind == "matrices":
        if not isinstance(value, list) or not value:
            raise _fail(name, "a non-empty list of matrices", value)
        if field.count is not None and len(value) > field.count:
            raise ApiError(422, f"field '{name}': {len(value)} matrices, more than the limit of {field.count}")
        mats = [_matrix(f"{name}[{i}]", m, int(field.high or 16)) for i, m in enumerate(value)]
        shapes = {(len(m), len(m[0])) for m in mats}
        if len(shapes) > 1:
            raise ApiError(422, f"field '{name}': the matrices differ in shape ({sorted(shapes)})")
        return mats
    if kind == "array":
        return _array(name, value, field.high)
    raise ValueError(f"schema: unknown field kind {kind!r}")


def validate(body: Any, schema: dict[str, Field]) -> dict[str, Any]:
    """The request's checked values, with defaults filled in; unknown fields are refused."""
    if not isinstance(body, dict):
        raise ApiError(422, f"the request must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(schema))
    if unknown:
        raise ApiError(422, f"unknown field(s) {', '.join(map(repr, unknown))}; expected {', '.join(schema)}")
    out = {}
    for name, field in schema.items():
        if name not in body or body[name] is None:
            if field.required:
                raise ApiError(422, f"field '{name}' is required")
            out[name] = field.default
        else:
            out[name] = check(name, field, body[name])
    return out
