"""The JSON API with Starlette's test client: answers, bad inputs, limits, paths."""

from __future__ import annotations

import io
import json
import os
import time

import numpy as np
import pytest

from tests.web.conftest import bars


def test_explain_default_is_the_lecture_example(client):
    r = client.post("/api/explain", json={})
    assert r.status_code == 200
    body = r.json()
    assert body["answer"] == 5
    conv = body["stages"][0]
    assert conv["output"] == [[[2, 0], [3, 5]]]
    assert conv["cells"][3]["text"] == "O[1,1] = 1*1 + 0*0 + 0*0 + 1*4 = 5"
    assert conv["cells"][3]["rows"] == [1, 2]
    assert [s["kind"] for s in body["stages"]] == ["conv", "activation", "pool"]
    assert body["matrix_form"]["product"] == [2, 0, 3, 5]
    assert conv["shape"][0] == "rows: out = floor((3 + 0 + 0 - 1*(2-1) - 1) / 1) + 1 = 2"


def test_explain_options(client):
    r = client.post("/api/explain", json={
        "input": [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]],
        "filters": [[[1, 0], [0, -1]], [[0, 1], [1, 0]]], "mode": "convolve", "stride": 2, "padding": 1,
        "activation": "none", "pool": "avg", "pool_size": 2, "pool_stride": 1})
    assert r.status_code == 200, r.text
    conv = r.json()["stages"][0]
    assert len(conv["output"]) == 2 and len(conv["output"][0]) == 3
    assert conv["applied"][0] == [[-1, 0], [0, 1]]  # flipped for a true convolution
    assert conv["roles"][0][0] == 1  # a padding cell


@pytest.mark.parametrize("body, status, match", [
    ({"stride": 0}, 422, r"field 'stride': expected an integer in \[1, 8\], got 0"),
    ({"stride": True}, 422, "field 'stride'"),
    ({"mode": "fft"}, 422, "one of correlate, convolve"),
    ({"input": [[1, 2], [3]]}, 422, "rows differ in length"),
    ({"input": [[1, "a"]]}, 422, "finite numbers"),
    ('{"input": [[1e400]]}', 422, "finite numbers"),
    ('{"input": [[NaN]]}', 422, "finite numbers"),
    ({"input": [[0] * 17] * 17}, 422, "larger than the limit of 16 x 16"),
    ({"filters": [[[1]]] * 5}, 422, "more than the limit of 4"),
    ({"filters": [[[1, 2]], [[1]]]}, 422, "differ in shape"),
    ({"filters": [[[1] * 4] * 4]}, 422, "larger than the padded input"),
    ({"colour": 1}, 422, "unknown field"),
    ([1, 2], 422, "JSON object"),
])
def test_explain_bad_requests(client, body, status, match):
    if isinstance(body, str):
        r = client.post("/api/explain", content=body, headers={"content-type": "application/json"})
    else:
        r = client.post("/api/explain", json=body)
    assert r.status_code == status
    import re

    assert re.search(match, r.json()["error"]), r.json()


def test_invalid_json_and_oversized_bodies(client):
    assert client.post("/api/explain", content=b"{not json").status_code == 400
    r = client.post("/api/explain", content=b" " * 300_000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "200000 bytes" in r.json()["error"]
    assert client.get("/no/such/page").json() == {"error": "Not Found"}
    assert client.get("/api/explain").status_code == 405


def test_runs_listing(client, runs_dir):
    runs = client.get("/api/runs").json()["runs"]
    assert "bars/best.safetensors" in [c for r in runs for c in r["checkpoints"]]


def test_model_and_prediction(client):
    info = client.get("/api/model", params={"checkpoint": "bars/best.safetensors"}).json()
    assert info["input_shape"] == [1, 28, 28] and info["classes"] == ["vertical", "horizontal"]
    assert np.asarray(info["filters"]).shape == (4, 1, 3, 3)
    x, y = bars(8, 1)
    for k in range(8):
        r = client.post("/api/predict", json={"checkpoint": "bars/best.safetensors", "input": x[k, 0].tolist()})
        body = r.json()
        assert r.status_code == 200
        assert sum(body["probabilities"]) == pytest.approx(1.0)
        assert body["predicted"] == y[k]  # the tiny model has learned the bars
    assert [layer["type"] for layer in body["layers"]][:3] == ["Conv2d", "ReLU", "MaxPool2d"]
    assert np.asarray(body["layers"][0]["maps"]).shape == (4, 28, 28)


def test_cell_arithmetic_matches_the_layer(client):
    x, _ = bars(1, 2)
    for layer, channel, row, col in [("0", 1, 0, 0), ("0", 3, 14, 9), ("3", 2, 5, 7)]:
        r = client.post("/api/cell", json={"checkpoint": "bars/best.safetensors", "input": x[0, 0].tolist(),
                                           "layer": layer, "channel": channel, "row": row, "col": col})
        body = r.json()
        assert r.status_code == 200, body
        assert body["value"] == pytest.approx(body["layer_value"], rel=1e-4, abs=1e-5)
        assert body["text"].startswith(f"{layer}[{channel}][{row},{col}] = ")
        assert body["pads"] == ([[1, 1], [1, 1]] if layer == "0" else [[0, 0], [0, 0]])
    r = client.post("/api/cell", json={"checkpoint": "bars/best.safetensors", "input": x[0, 0].tolist(),
                                       "layer": "1"})
    assert r.status_code == 422 and "conv layer" in r.json()["error"]
    r = client.post("/api/cell", json={"checkpoint": "bars/best.safetensors", "input": x[0, 0].tolist(),
                                       "layer": "0", "row": 40})
    assert r.status_code == 422 and "outside" in r.json()["error"]


def test_signal_model_run(client, mnist1d_run):
    info = client.get("/api/model", params={"checkpoint": f"{mnist1d_run}/best.safetensors"}).json()
    assert info["signal"] and info["input_shape"] == [1, 40]
    ex = client.get("/api/example", params={"checkpoint": f"{mnist1d_run}/best.safetensors", "index": 3}).json()
    assert np.asarray(ex["input"]).shape == (1, 40)
    body = client.post("/api/predict", json={"checkpoint": f"{mnist1d_run}/last.safetensors",
                                             "input": ex["input"]}).json()
    assert len(body["probabilities"]) == 10
    assert np.asarray(body["layers"][0]["maps"]).shape == (16, 19)
    r = client.post("/api/cell", json={"checkpoint": f"{mnist1d_run}/best.safetensors", "input": ex["input"],
                                       "layer": "2", "channel": 4, "col": 3})
    assert r.status_code == 200
    assert r.json()["value"] == pytest.approx(r.json()["layer_value"], rel=1e-4, abs=1e-5)
    r = client.get("/api/example", params={"checkpoint": f"{mnist1d_run}/best.safetensors", "index": 10**6})
    assert r.status_code == 422


@pytest.mark.parametrize("checkpoint, status", [
    ("../secret.safetensors", 403), ("/etc/passwd", 403), ("bars/../../x.safetensors", 403),
    ("~/x.safetensors", 403), ("bars/nothing.safetensors", 404), ("bars", 404), ("escape/best.safetensors", 403),
    ("", 422),
])
def test_checkpoints_only_inside_the_runs_folder(client, runs_dir, tmp_path_factory, checkpoint, status):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "best.safetensors").write_bytes((runs_dir / "bars" / "best.safetensors").read_bytes())
    link = runs_dir / "escape"
    if not link.exists():
        os.symlink(outside, link)
    r = client.get("/api/model", params={"checkpoint": checkpoint})
    assert r.status_code == status, r.json()
    assert "error" in r.json()


def _png(width: int, height: int, value: int = 255) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    img = Image.new("L", (width, height), 0)
    img.paste(value, (width // 3, 2, width // 3 + max(1, width // 6), height - 2))
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_image_upload(client):
    r = client.post("/api/image", data={"checkpoint": "bars/best.safetensors"},
                    files={"file": ("digit.png", _png(56, 56), "image/png")})
    assert r.status_code == 200, r.json()
    pixels = np.asarray(r.json()["pixels"])
    assert pixels.shape == (28, 28) and pixels.max() > 0.9 and pixels.mean() < 0.5


def test_image_for_the_explorer(client):
    r = client.post("/api/image", data={"size": "8", "invert": "no"},
                    files={"file": ("digit.png", _png(40, 40), "image/png")})
    assert r.status_code == 200, r.json()
    assert np.asarray(r.json()["pixels"]).shape == (8, 8)
    r = client.post("/api/image", data={"size": "40"}, files={"file": ("digit.png", _png(40, 40), "image/png")})
    assert r.status_code == 422 and "[1, 16]" in r.json()["error"]


def test_image_limits(client):
    big = client.post("/api/image", data={"checkpoint": "bars/best.safetensors"},
                      files={"file": ("big.bin", b"\0" * 150_000, "image/png")})
    assert big.status_code == 413 and "100000 bytes" in big.json()["error"]
    # a small file that claims many pixels (a decompression bomb) is refused from its header
    bomb = client.post("/api/image", data={"checkpoint": "bars/best.safetensors"},
                       files={"file": ("bomb.png", _png(1000, 1000, 0), "image/png")})
    assert bomb.status_code == 413 and "limit of 250000 pixels" in bomb.json()["error"]
    junk = client.post("/api/image", data={"checkpoint": "bars/best.safetensors"},
                       files={"file": ("x.png", b"not an image", "image/png")})
    assert junk.status_code == 422
    assert client.post("/api/image", json={"checkpoint": "x"}).status_code == 415
    missing = client.post("/api/image", files={"checkpoint": (None, "bars/best.safetensors")})  # no file
    assert missing.status_code == 422 and "'file' is required" in missing.json()["error"]


def test_predict_input_limits(client):
    r = client.post("/api/predict", json={"checkpoint": "bars/best.safetensors", "input": [[0.0] * 200] * 200})
    assert r.status_code == 413 and "limit of 27648 numbers" in r.json()["error"]
    r = client.post("/api/predict", json={"checkpoint": "bars/best.safetensors", "input": [[0.0] * 5] * 5})
    assert r.status_code == 422 and "shape (1, 28, 28)" in r.json()["error"]


@pytest.mark.parametrize("path, extra", [("/api/predict", {}), ("/api/cell", {"layer": "0"})])
@pytest.mark.parametrize("array", [[[0.0], [0.0, 0.0]], [[[0.0]], [[0.0, 1.0]]], [[0.0], 1.0], [1.0, [0.0]]])
def test_ragged_input_is_a_422(client, path, extra, array):
    # found by the schemathesis run (test_openapi.py): a ragged input used to reach NumPy and answer 500
    r = client.post(path, json={"checkpoint": "bars/best.safetensors", "input": array, **extra})
    assert r.status_code == 422, r.text
    assert "field 'input'" in r.json()["error"]


def _events(client, run: str) -> list[tuple[str, dict]]:
    out = []
    with client.stream("GET", f"/api/runs/{run}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append((kind, json.loads(line[6:])))
                if kind == "done":
                    break
    return out


def test_training_from_the_api(client, runs_dir, mnist1d_run):
    r = client.post("/api/train", json={"data": "mnist1d", "model": "mnist1d-logreg", "epochs": 3, "limit": 300})
    assert r.status_code == 201, r.json()
    run = r.json()["run"]
    second = client.post("/api/train", json={"epochs": 1})
    assert second.status_code == 409 and "at most 1" in second.json()["error"]
    events = _events(client, run)
    kinds = [k for k, _ in events]
    assert kinds[0] == "hello" and kinds[-1] == "done"
    assert [d["epoch"] for k, d in events if k == "epoch"] == [1, 2, 3]
    assert events[-1][1]["finished"] is True
    deadline = time.monotonic() + 10
    while client.get("/api/train").json()["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.get("/api/train").json()["running"] == []
    assert (runs_dir / run / "best.safetensors").is_file()
    # watching a run written by `cnnlab train` replays it, with its filters
    replay = _events(client, mnist1d_run)
    assert [k for k, _ in replay].count("epoch") == 2 and "filters" in [k for k, _ in replay]


@pytest.mark.parametrize("body, match", [
    ({"epochs": 6}, r"\[1, 5\]"), ({"model": "../../x"}, "field 'model'"), ({"data": "imagenet"}, "one of"),
    ({"lr": -1}, "field 'lr'"),
])
def test_training_bad_requests(client, body, match):
    import re

    r = client.post("/api/train", json=body)
    assert r.status_code == 422 and re.search(match, r.json()["error"])


def test_events_of_unknown_or_escaping_runs(client):
    assert client.get("/api/runs/nope/events").status_code == 404
    assert client.get("/api/runs/..%2F..%2Fetc/events").status_code in (403, 404, 422)


def test_schema_lists_every_endpoint_with_limits(client):
    body = client.get("/api/schema").json()
    assert body["limits"]["max_upload"] == 100_000
    assert body["endpoints"]["POST /api/explain"]["stride"] == {"type": "int", "required": False, "default": 1,
                                                                 "low": 1, "high": 8}


def test_front_end_fetches_nothing_from_the_internet(client):
    import re
    from pathlib import Path

    import cnnlab.web

    static = Path(cnnlab.web.__file__).parent / "static"
    names = sorted(p.name for p in static.iterdir())
    assert names == ["app.js", "index.html", "style.css"]
    for name in names:
        text = (static / name).read_text()
        urls = set(re.findall(r"https?://[^\s\"')]+", text)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), (name, urls)
        assert client.get(f"/static/{name}").status_code == 200
