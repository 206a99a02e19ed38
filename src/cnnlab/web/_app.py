"""The Starlette application of ``cnnlab serve``: routes, limits, JSON errors.

Every request is checked against its schema (:mod:`cnnlab.web._schema`); a bad one is answered
with a 4xx and ``{"error": "..."}`` naming the field and the limit.  An unexpected exception is
answered 500 with a generic message (never a traceback) and the server keeps serving.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import cnnlab
from cnnlab.web._explore import explore, explore_schema
from cnnlab.web._models import Runs, decode_image
from cnnlab.web._openapi import document
from cnnlab.web._schema import ApiError, Field, validate
from cnnlab.web._training import Jobs, events, train_schema

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("cnnlab.web")
MAX_INPUT = 3 * 96 * 96  # numbers of one model input (28 x 28 grey, 40-sample signals, small colour images)


@dataclass(frozen=True)
class Limits:
    """What the server accepts.

    Attributes
    ----------
    max_body : int
        Bytes of a JSON request body.
    max_upload : int
        Bytes of an uploaded image.
    max_pixels : int
        Width x height of an uploaded image (checked from its header, before decoding).
    max_matrix : int
        Rows and columns of the explorer's input.
    max_kernel : int
        Rows and columns of an explorer filter.
    max_filters : int
        Explorer filters.
    max_epochs : int
        Epochs of a run started from the page.
    max_runs : int
        Training runs at the same time.
    """

    max_body: int = 1_000_000
    max_upload: int = 4_000_000
    max_pixels: int = 16_000_000
    max_matrix: int = 16
    max_kernel: int = 7
    max_filters: int = 4
    max_epochs: int = 30
    max_runs: int = 1


def _schemas(limits: Limits) -> dict[str, dict[str, Field]]:
    image = MAX_INPUT
    return {
        "POST /api/explain": explore_schema(limits.max_matrix, limits.max_filters, limits.max_kernel),
        "GET /api/model": {"checkpoint": Field("text", required=True, pattern=r".{1,300}")},
        "GET /api/example": {"checkpoint": Field("text", required=True, pattern=r".{1,300}"),
                             "index": Field("int", low=0, high=10**6, default=0)},
        "POST /api/predict": {"checkpoint": Field("text", required=True, pattern=r".{1,300}"),
                              "input": Field("array", required=True, high=image)},
        "POST /api/cell": {"checkpoint": Field("text", required=True, pattern=r".{1,300}"),
                           "input": Field("array", required=True, high=image),
                           "layer": Field("text", required=True, pattern=r"[A-Za-z0-9_.]{1,40}"),
                           "channel": Field("int", low=0, high=4096, default=0),
                           "row": Field("int", low=0, high=4096, default=0),
                           "col": Field("int", low=0, high=4096, default=0)},
        "POST /api/image": {"checkpoint": Field("text", pattern=r".{1,300}", default=None,
                                                doc="resize to this model's input; without it, to size x size"),
                            "size": Field("int", low=1, high=limits.max_matrix, default=8,
                                          doc="rows and columns for the explorer (without a checkpoint)"),
                            "invert": Field("choice", choices=("auto", "yes", "no"), default="auto"),
                            "file": Field("file", required=True, high=limits.max_upload)},
        "POST /api/train": train_schema(limits.max_epochs),
        "POST /api/train/stop": {"run": Field("text", pattern=r"[A-Za-z0-9._~-]{1,128}", default=None)},
    }


async def _json_body(request: Request, limits: Limits) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body:
        raise ApiError(413, f"the request body is {declared} bytes, more than the limit of {limits.max_body} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.max_body:
            raise ApiError(413, f"the request body is more than the limit of {limits.max_body} bytes")
    if not body:
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON") from None


def create_app(runs_dir: str | Path = "runs", limits: Limits | None = None,
               train_command: list[str] | None = None) -> Starlette:
    """The web app over the runs folder ``runs_dir``.

    Parameters
    ----------
    runs_dir : str or Path, default 'runs'
        Where checkpoints are read from and runs started from the page are written.
    limits : Limits, optional
    train_command : list of str, optional
        How to run the command line (default ``[python, '-m', 'cnnlab']``).

    Returns
    -------
    starlette.applications.Starlette
    """
    limits = limits or Limits()
    runs = Runs(runs_dir)
    jobs = Jobs(runs.root, limits.max_runs, train_command)
    schemas = _schemas(limits)
    openapi = document(schemas, "cnnlab serve", cnnlab.__version__)

    async def explain_route(request: Request) -> Response:
        req = validate(await _json_body(request, limits), schemas["POST /api/explain"])
        return JSONResponse(await _thread(explore, req))

    async def schema_route(request: Request) -> Response:
        return JSONResponse({"limits": asdict(limits),
                             "endpoints": {k: {n: f.describe() for n, f in v.items()} for k, v in schemas.items()}})

    async def openapi_route(request: Request) -> Response:
        return JSONResponse(openapi)

    async def runs_route(request: Request) -> Response:
        running = jobs.running()
        return JSONResponse({"root": str(runs.root), "runs": runs.listing(running[0] if running else None)})

    async def model_route(request: Request) -> Response:
        req = validate(dict(request.query_params), schemas["GET /api/model"])
        return JSONResponse(await _thread(runs.describe, req["checkpoint"]))

    async def example_route(request: Request) -> Response:
        req = validate(dict(request.query_params), schemas["GET /api/example"])
        return JSONResponse(await _thread(runs.example, req["checkpoint"], req["index"]))

    async def predict_route(request: Request) -> Response:
        req = validate(await _json_body(request, limits), schemas["POST /api/predict"])
        return JSONResponse(await _thread(runs.predict, req["checkpoint"], req["input"]))

    async def cell_route(request: Request) -> Response:
        req = validate(await _json_body(request, limits), schemas["POST /api/cell"])
        return JSONResponse(await _thread(runs.cell, req["checkpoint"], req["input"], req["layer"], req["channel"],
                                          req["row"], req["col"]))

    async def image_route(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_upload + 10_000:
            raise ApiError(413, f"the upload is {declared} bytes, more than the limit of {limits.max_upload} bytes")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(415, "upload the image as multipart/form-data with fields 'file' and 'checkpoint'")
        try:
            form = await request.form(max_files=1, max_fields=4, max_part_size=limits.max_upload)
        except Exception as exc:  # starlette raises its own MultiPartException / HTTPException here
            raise ApiError(413 if "size" in str(exc).lower() else 400, f"cannot read the upload: {exc}") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(422, "field 'file' is required (the image)")
        data = await upload.read(limits.max_upload + 1)
        if len(data) > limits.max_upload:
            raise ApiError(413, f"the image file is more than the limit of {limits.max_upload} bytes")
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        schema = {k: f for k, f in schemas["POST /api/image"].items() if k != "file"}
        req = validate(fields, schema)
        if req["checkpoint"] is None:
            shape = [1, req["size"], req["size"]]
        else:
            shape = (await _thread(runs.describe, req["checkpoint"]))["input_shape"]
        if not isinstance(shape, list) or len(shape) != 3 or shape[0] != 1:
            raise ApiError(422, f"this model takes input shape {shape}, not a grey image")
        pixels = await _thread(decode_image, data, limits.max_pixels, (shape[1], shape[2]), req["invert"] == "yes")
        if req["invert"] == "auto" and sum(map(sum, pixels)) / (shape[1] * shape[2]) > 0.5:
            pixels = await _thread(decode_image, data, limits.max_pixels, (shape[1], shape[2]), True)
        return JSONResponse({"pixels": pixels})

    async def train_route(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(jobs.status())
        req = validate(await _json_body(request, limits), schemas["POST /api/train"])
        return JSONResponse(await _thread(jobs.start, req), status_code=201)

    async def stop_route(request: Request) -> Response:
        req = validate(await _json_body(request, limits), schemas["POST /api/train/stop"])
        return JSONResponse({"stopped": await _thread(jobs.stop, req["run"], 0.0)})

    async def events_route(request: Request) -> Response:
        folder = runs.run(request.path_params["name"])
        return StreamingResponse(events(folder, jobs, request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def api_error(request: Request, exc: ApiError) -> Response:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return JSONResponse({"error": exc.detail or "error"}, status_code=exc.status_code)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s: %r", request.method, request.url.path, exc)
        return JSONResponse({"error": "internal error: the server could not answer this request"}, status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        stopped = jobs.stop(wait=20.0)  # Ctrl-C: the runs save their state and exit
        if stopped:
            log.warning("stopped training run(s) %s; resume with cnnlab train --resume", ", ".join(stopped))

    routes = [
        Route("/", index),
        Route("/openapi.json", openapi_route),
        Route("/api/schema", schema_route),
        Route("/api/explain", explain_route, methods=["POST"]),
        Route("/api/runs", runs_route),
        Route("/api/model", model_route),
        Route("/api/example", example_route),
        Route("/api/predict", predict_route, methods=["POST"]),
        Route("/api/cell", cell_route, methods=["POST"]),
        Route("/api/image", image_route, methods=["POST"]),
        Route("/api/train", train_route, methods=["GET", "POST"]),
        Route("/api/train/stop", stop_route, methods=["POST"]),
        Route("/api/runs/{name}/events", events_route),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: server_error})
    app.state.runs = runs
    app.state.jobs = jobs
    app.state.limits = limits
    return app


async def _thread(fn: Any, *args: Any) -> Any:
    """Run the library call off the event loop (a worker thread)."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)
