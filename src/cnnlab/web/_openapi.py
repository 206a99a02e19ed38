"""The OpenAPI 3 document of the web app, built from the request schemas of :mod:`cnnlab.web._schema`.

The request side of every operation (query parameters, JSON or multipart body, types, ranges,
sizes, required fields) is translated from the same :class:`Field` declarations that
:func:`validate` checks, so the document cannot drift from what the server accepts.  The
operations without a request schema (pages, listings, the event stream) and the statuses each
operation may answer are declared in :data:`OPERATIONS`.  ``GET /openapi.json`` serves it.
"""

from __future__ import annotations

from typing import Any

from cnnlab.web._schema import Field

ERROR = {"type": "object", "required": ["error"], "additionalProperties": False,
         "properties": {"error": {"type": "string", "description": "what was wrong, naming the field and the limit"}}}
ERROR_REF = {"schema": {"$ref": "#/components/schemas/Error"}}
BAD_BODY = (400, 413, 422)
CHECKPOINT = (403, 404)

# "METHOD path": (summary, where the request's fields go, 2xx status, media type of the answer, 4xx statuses)
OPERATIONS: dict[str, tuple[str, str, int, str, tuple[int, ...]]] = {
    "GET /": ("the page (explorer, model viewer, training monitor)", "none", 200, "text/html", ()),
    "GET /openapi.json": ("this OpenAPI document", "none", 200, "application/json", ()),
    "GET /api/schema": ("the request schemas and limits (read by the front end)", "none", 200, "application/json", ()),
    "POST /api/explain": ("work out a conv / activation / pool pipeline cell by cell", "json", 200,
                          "application/json", BAD_BODY),
    "GET /api/runs": ("the runs folder's runs and checkpoints", "none", 200, "application/json", ()),
    "GET /api/model": ("a checkpoint's layers, filters and classes", "query", 200, "application/json",
                       (422, *CHECKPOINT)),
    "GET /api/example": ("one test example of the checkpoint's data set", "query", 200, "application/json",
                         (422, *CHECKPOINT)),
    "POST /api/predict": ("class probabilities and every layer's feature maps", "json", 200, "application/json",
                          BAD_BODY + CHECKPOINT),
    "POST /api/cell": ("the window and arithmetic of one output cell of a conv layer", "json", 200,
                       "application/json", BAD_BODY + CHECKPOINT),
    "POST /api/image": ("an uploaded image as the grey pixels of a model input", "multipart", 200,
                        "application/json", (400, 413, 415, 422, *CHECKPOINT)),
    "GET /api/train": ("the training runs started by this server", "none", 200, "application/json", ()),
    "POST /api/train": ("start a training run (cnnlab train in a child process)", "json", 201, "application/json",
                        BAD_BODY + (409,)),
    "POST /api/train/stop": ("stop a run started here (it saves last.safetensors)", "json", 200, "application/json",
                             BAD_BODY),
    "GET /api/runs/{name}/events": ("a run's metrics and first-layer filters as server-sent events", "path", 200,
                                    "text/event-stream", (403, 404, 422)),
    "GET /static/{path}": ("the front end's files", "path", 200, "application/octet-stream", (404,)),
}
PATH_PARAMS = {
    "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", "description": "a run folder"},
    "path": {"type": "string", "description": "a file of the front end"},
}
REASONS = {200: "OK", 201: "created", 400: "the body is not valid JSON or not a readable upload",
           403: "outside the runs folder", 404: "not found", 409: "a training run is already going",
           413: "larger than a limit (the message states it)", 415: "not multipart/form-data",
           422: "a field is missing, of the wrong type or out of range (the message names it)"}


def field_schema(field: Field) -> dict[str, Any]:
    """The JSON Schema of one field's values, with its bounds."""
    kind = field.kind
    if kind in ("int", "number"):
        out: dict[str, Any] = {"type": "integer" if kind == "int" else "number"}
        if field.low is not None:
            out["minimum"] = int(field.low) if kind == "int" else field.low
        if field.high is not None:
            out["maximum"] = int(field.high) if kind == "int" else field.high
    elif kind == "bool":
        out = {"type": "boolean"}
    elif kind == "choice":
        out = {"type": "string", "enum": list(field.choices)}
    elif kind == "text":
        out = {"type": "string"}
        if field.pattern:
            out["pattern"] = f"^(?:{field.pattern})$"  # the validator matches the whole text
    elif kind == "matrix":
        out = _matrix_schema(int(field.high or 16))
    elif kind == "matrices":
        out = {"type": "array", "minItems": 1, "items": _matrix_schema(int(field.high or 16)),
               "description": "matrices of one shape"}
        if field.count is not None:
            out["maxItems"] = field.count
    elif kind == "array":
        number = {"type": "number"}
        levels = [{"type": "array", "minItems": 1, "items": number}]
        for _ in range(2):
            levels.append({"type": "array", "minItems": 1, "items": levels[-1]})
        out = {"anyOf": levels}
        if field.high is not None:
            out["description"] = f"nested lists (1 to 3 deep) of at most {int(field.high)} finite numbers"
    elif kind == "file":
        out = {"type": "string", "format": "binary"}
        if field.high is not None:
            out["description"] = f"at most {int(field.high)} bytes"
    else:
        raise ValueError(f"openapi: unknown field kind {kind!r}")
    if field.default is not None and kind not in ("file",):
        out["default"] = field.default
    if field.doc:
        out["description"] = field.doc if "description" not in out else f"{field.doc}; {out['description']}"
    return out


def _matrix_schema(side: int) -> dict[str, Any]:
    row = {"type": "array", "minItems": 1, "maxItems": side, "items": {"type": "number"}}
    return {"type": "array", "minItems": 1, "maxItems": side, "items": row,
            "description": f"a rectangular matrix of finite numbers, at most {side} x {side}"}


def object_schema(fields: dict[str, Field]) -> dict[str, Any]:
    """A request body: the fields, the required ones, nothing else."""
    out: dict[str, Any] = {"type": "object", "additionalProperties": False,
                           "properties": {name: field_schema(f) for name, f in fields.items()}}
    required = [name for name, f in fields.items() if f.required]
    if required:
        out["required"] = required
    return out


def document(schemas: dict[str, dict[str, Field]], title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the operations in :data:`OPERATIONS`, requests from ``schemas``."""
    unknown = sorted(set(schemas) - set(OPERATIONS))
    if unknown:
        raise ValueError(f"openapi: request schemas of undeclared operations {unknown}")
    paths: dict[str, dict[str, Any]] = {}
    for key, (summary, where, ok, media, errors) in OPERATIONS.items():
        method, path = key.split(" ", 1)
        fields = schemas.get(key, {})
        op: dict[str, Any] = {"summary": summary, "operationId": _operation_id(method, path)}
        params = []
        if where == "query":
            params = [{"name": name, "in": "query", "required": f.required, "schema": field_schema(f)}
                      for name, f in fields.items()]
        elif where == "path":
            params = [{"name": name, "in": "path", "required": True, "schema": PATH_PARAMS[name]}
                      for name in _path_names(path)]
        elif where == "json":
            op["requestBody"] = {"required": False,
                                 "content": {"application/json": {"schema": object_schema(fields)}}}
        elif where == "multipart":
            op["requestBody"] = {"required": True,
                                 "content": {"multipart/form-data": {"schema": object_schema(fields)}}}
        elif where != "none":
            raise ValueError(f"openapi: {key}: unknown request place {where!r}")
        if params:
            op["parameters"] = params
        body = {"schema": {"type": "string"}} if media.startswith("text/") else {}
        if media == "application/json":
            body = {"schema": {"type": "object"}}
        responses: dict[str, Any] = {str(ok): {"description": REASONS[ok], "content": {media: body}}}
        for status in errors:
            responses[str(status)] = {"description": REASONS[status], "content": {"application/json": ERROR_REF}}
        op["responses"] = responses
        paths.setdefault(path, {})[method.lower()] = op
    return {"openapi": "3.0.3", "info": {"title": title, "version": version,
                                         "description": "The local web app of cnnlab serve. Every 4xx answer is "
                                                        "JSON {\"error\": message}."},
            "paths": paths, "components": {"schemas": {"Error": ERROR}}}


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def _operation_id(method: str, path: str) -> str:
    words = [p.strip("{}").replace(".", "_") for p in path.split("/") if p] or ["index"]
    return method.lower() + "_" + "_".join(words)
