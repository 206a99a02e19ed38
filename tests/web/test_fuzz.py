"""A seeded fuzz of every endpoint: valid, mutated and random requests never get a 5xx.

Starlette has no OpenAPI schema for schemathesis to read, so this walks the app's own schemas
(``GET /api/schema``): for each field it sends valid values, boundary values, wrong types and
junk, alone and combined, and checks that every answer is JSON with a status below 500.
"""

from __future__ import annotations

import json
import random

import pytest

JUNK = [None, True, -1, 0, 1, 2**40, -2**63, 1.5, -0.0, "", "x", "../../etc/passwd", "/etc/passwd", "%00",
        "bars/best.safetensors", "a" * 400, [], [[]], [[1, 2], [3]], [["a"]], [[1e308, -1e308]],
        {"a": 1}, [[[[1]]]], [1] * 50, [[0.5] * 28] * 28, "\u0000\ud7ff"]


def _valid(field: dict, rng: random.Random):
    kind = field["type"]
    if kind == "int":
        return rng.choice([field["low"], field["high"], int(rng.uniform(field["low"], field["high"]))])
    if kind == "number":
        return rng.uniform(field["low"], field["high"])
    if kind == "choice":
        return rng.choice(field["choices"])
    if kind == "matrix":
        n = rng.randint(1, int(field.get("high", 4)))
        return [[rng.randint(-3, 3) for _ in range(n)] for _ in range(rng.randint(1, n))]
    if kind == "matrices":
        k = rng.randint(1, 3)
        return [[[rng.randint(-2, 2) for _ in range(k)] for _ in range(k)] for _ in range(rng.randint(1, 2))]
    if kind == "array":
        return rng.choice([[[0.0] * 28] * 28, [[0.1] * 40], [1, 2, 3]])
    if kind == "text":
        return rng.choice(["bars/best.safetensors", "0", "3", "mnist1d-logreg"])
    return None


def _requests(schema: dict, rng: random.Random, n: int):
    names = list(schema)
    for _ in range(n):
        body = {name: _valid(f, rng) for name, f in schema.items() if rng.random() < 0.7}
        for name in rng.sample(names, k=rng.randint(0, len(names))):
            if rng.random() < 0.5:
                body[name] = rng.choice(JUNK)
        if rng.random() < 0.1:
            body["unexpected"] = 1
        yield body


@pytest.mark.parametrize("seed", [0, 1])
def test_no_endpoint_answers_5xx(client, seed):
    rng = random.Random(seed)
    endpoints = client.get("/api/schema").json()["endpoints"]
    assert len(endpoints) >= 8
    sent = 0
    for key, schema in endpoints.items():
        method, path = key.split(" ", 1)
        if path == "/api/train":
            schema = {k: v for k, v in schema.items()}  # a valid body would start a run: force a bad one below
        for body in _requests(schema, rng, 25):
            if path == "/api/train":
                body["epochs"] = rng.choice([0, 10**6, "x", None, -3])
                if body["epochs"] is None:
                    body["data"] = "not-a-data-set"
            if method == "GET":
                params = {k: (json.dumps(v) if not isinstance(v, str) else v) for k, v in body.items()}
                r = client.get(path, params=params)
            elif path == "/api/image":
                files = {"file": ("f.png", rng.choice([b"", b"\x89PNG\r\n\x1a\n", b"GIF89a" + bytes(20)]), "image/png")}
                data = {k: str(v) for k, v in body.items() if k != "file"}
                r = client.post(path, data=data, files=files)
            else:
                r = client.post(path, json=body)
            sent += 1
            assert r.status_code < 500, (key, body, r.text)
            assert "error" in r.json() or r.status_code < 400, (key, body, r.text)
        for raw in (b"", b"null", b"[]", b"{", b'{"a":', "\u00ff".encode("latin-1"), b"1" * 5000):
            r = client.request(method, path, content=raw, headers={"content-type": "application/json"})
            assert r.status_code < 500, (key, raw, r.text)
    for path in ("/api/runs/%2e%2e/events", "/api/runs/bars%2f..%2f..%2fetc/events", "/static/../pyproject.toml",
                 "/api/model?checkpoint=bars%2F..%2F..%2Fx.safetensors", "/api/example?index=-1"):
        r = client.get(path)
        assert 400 <= r.status_code < 500, (path, r.text)
    assert sent > 150
    # and the server still answers normally afterwards
    assert client.post("/api/explain", json={}).json()["answer"] == 5
