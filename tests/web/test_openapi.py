"""The OpenAPI document of the web app, and a schemathesis fuzz of every operation through it.

The fuzz runs in-process through the ASGI app, derandomized (a fixed seed), with at most
``EXAMPLES`` cases per operation and mode: schema-valid data, data that breaks the schema, and
valid data aimed at the trained checkpoint of conftest.py.  It checks schemathesis'
``not_a_server_error`` and that every 4xx answer is JSON with a message.

Left out of it, so that the test stays fast and leaves no run behind: ``POST /api/train`` (a
valid body starts a training run; its bad bodies are covered by test_fuzz.py and test_api.py)
and ``GET /api/runs/{name}/events`` (a server-sent event stream that stays open while its run
may still write).  ``POST /api/train/stop`` is fuzzed: no run is going, so it stops nothing.
"""

from __future__ import annotations

import pytest
from starlette.routing import Mount, Route

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from cnnlab.web._openapi import OPERATIONS  # noqa: E402

EXCLUDED = ("POST /api/train", "GET /api/runs/{name}/events")
EXAMPLES = 12
CHECKPOINT = "bars/best.safetensors"  # the trained model of conftest.py
CHECKPOINT_OPERATIONS = ("GET /api/model", "GET /api/example", "POST /api/predict", "POST /api/cell",
                         "POST /api/image")


@pytest.fixture()
def app(runs_dir):
    from cnnlab.web import Limits, create_app

    return create_app(runs_dir, Limits(max_body=200_000, max_upload=100_000, max_pixels=250_000, max_epochs=5))


@pytest.fixture()
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _app_operations(app) -> set[str]:
    ops = set()
    for route in app.routes:
        if isinstance(route, Route):
            ops |= {f"{m} {route.path}" for m in route.methods if m != "HEAD"}
        elif isinstance(route, Mount):
            ops.add(f"GET {route.path}/{{path}}")
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")
    return ops


def test_document_lists_every_route(app, api_schema):
    doc = api_schema.raw_schema
    assert doc["openapi"].startswith("3.")
    documented = {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item}
    assert documented == _app_operations(app)
    loaded = {f"{r.ok().method.upper()} {r.ok().path}" for r in api_schema.get_all_operations()}
    # schemathesis read every operation without an error (it leaves out the document's own path)
    assert loaded == documented - {"GET /openapi.json"}


def test_document_states_the_limits(app, api_schema):
    paths = api_schema.raw_schema["paths"]
    explain = paths["/api/explain"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert explain["additionalProperties"] is False
    assert explain["properties"]["stride"] == {"type": "integer", "minimum": 1, "maximum": 8, "default": 1}
    assert explain["properties"]["input"]["maxItems"] == 16
    assert explain["properties"]["filters"]["maxItems"] == 4
    cell = paths["/api/cell"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(cell["required"]) == {"checkpoint", "input", "layer"}
    image = paths["/api/image"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert image["required"] == ["file"] and "100000 bytes" in image["properties"]["file"]["description"]
    query = {p["name"]: p for p in paths["/api/example"]["get"]["parameters"]}
    assert query["checkpoint"]["required"] and query["index"]["schema"]["maximum"] == 10**6
    for item in paths.values():
        for op in item.values():
            for status, answer in op["responses"].items():
                if status.startswith("4"):
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_document_matches_the_schema_endpoint(app):
    from starlette.testclient import TestClient

    with TestClient(app) as client:
        doc = client.get("/openapi.json").json()
        endpoints = client.get("/api/schema").json()["endpoints"]
    for key, fields in endpoints.items():
        method, path = key.split(" ", 1)
        op = doc["paths"][path][method.lower()]
        if "requestBody" in op:
            (content,) = op["requestBody"]["content"].values()
            names = set(content["schema"]["properties"])
        else:
            names = {p["name"] for p in op["parameters"]}
        assert names == set(fields), key


def _error_is_json(response):
    """Every 4xx answer is JSON ``{"error": message}`` with a non-empty message."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], response.text


@st.composite
def _at_checkpoint(draw, cases):
    """A valid case aimed at the trained model: its checkpoint and, for three in four, an input of its
    shape (a 28 x 28 grey image of one drawn value) and one of its layers and cells, so the library calls run."""
    case = draw(cases)
    if case.query and "checkpoint" in case.query:
        case.query["checkpoint"] = CHECKPOINT
    if isinstance(case.body, dict) and "checkpoint" in case.body:
        case.body["checkpoint"] = CHECKPOINT
        if "input" in case.body and draw(st.integers(0, 3)) > 0:
            value = draw(st.floats(-1e3, 1e3, allow_nan=False))
            case.body["input"] = [[value] * 28] * 28
            if "layer" in case.body:
                case.body["layer"] = draw(st.sampled_from(["0", "3", "1", case.body["layer"]]))
                for name, high in (("channel", 4), ("row", 13), ("col", 13)):
                    case.body[name] = draw(st.integers(0, high))
    return case


def _runs():
    """(operation, mode): every operation with schema-valid data, and, where it takes input,
    with data that breaks the schema and with valid data aimed at the trained checkpoint."""
    for key, (_, where, *_) in OPERATIONS.items():
        if key in EXCLUDED:
            continue
        yield key, "positive"
        if where in ("json", "query", "multipart"):
            yield key, "negative"
        if key in CHECKPOINT_OPERATIONS:
            yield key, "checkpoint"


@pytest.mark.parametrize("key, mode", list(_runs()))
def test_fuzz_no_server_error(api_schema, key, mode):
    method, path = key.split(" ", 1)
    operation = api_schema[path][method]
    strategy = operation.as_strategy(GenerationMode.NEGATIVE if mode == "negative" else GenerationMode.POSITIVE)
    if mode == "checkpoint":
        strategy = _at_checkpoint(strategy)
    seen = []

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        response = case.call()
        seen.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])
        _error_is_json(response)

    run()
    assert seen
