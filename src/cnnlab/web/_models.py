"""The runs folder and the models in it: safe paths, loading, predictions, feature maps, one cell.

Checkpoints are named by their path relative to the runs folder; :meth:`Runs.checkpoint` refuses
absolute paths, ``..`` and anything whose real path (symlinks followed) leaves the folder.
The numbers come from the library: the model's layers (:func:`cnnlab.viz.layer_outputs`) and,
for a clicked conv cell, :func:`cnnlab.explain.explain` on that layer's input.
"""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

import cnnlab
from cnnlab import nn
from cnnlab.explain import Conv, explain
from cnnlab.viz import cell_text, layer_outputs, load_checkpoint, load_test_set, prepare_input
from cnnlab.web._explore import jsonable
from cnnlab.web._schema import ApiError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_MAPS = 16
MAX_FILTERS = 64


class Runs:
    """The configured runs folder: lists runs and checkpoints, loads models (cached)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self._cache: dict[tuple[str, int], tuple[Any, dict[str, Any]]] = {}
        self._data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.lock = threading.Lock()

    # -- paths ----------------------------------------------------------------------------------
    def _inside(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.root)
        except ValueError:
            return False
        return True

    def run(self, name: Any) -> Path:
        """The folder of the run ``name`` (a direct child of the runs folder)."""
        if not isinstance(name, str) or not NAME.fullmatch(name) or name in (".", ".."):
            raise ApiError(422, f"run must be a folder name of letters, digits, '.', '_' and '-', got {name!r}")
        folder = self.root / name
        if not self._inside(folder):
            raise ApiError(403, f"run {name!r} is outside the runs folder")
        if not folder.is_dir():
            raise ApiError(404, f"no run {name!r} in the runs folder")
        return folder

    def checkpoint(self, rel: Any) -> Path:
        """The checkpoint at ``rel`` (``run/best.safetensors``) inside the runs folder."""
        if not isinstance(rel, str) or not rel or len(rel) > 300:
            raise ApiError(422, f"checkpoint must be a path relative to the runs folder, got {rel!r}")
        parts = rel.replace("\\", "/").split("/")
        if rel.startswith(("/", "~")) or any(p in ("", ".", "..") for p in parts) or ":" in parts[0]:
            raise ApiError(403, f"checkpoint {rel!r} is not a plain path inside the runs folder")
        path = self.root.joinpath(*parts)
        if not self._inside(path):
            raise ApiError(403, f"checkpoint {rel!r} leads outside the runs folder")
        if path.suffix != ".safetensors" or not path.is_file():
            raise ApiError(404, f"no checkpoint {rel!r} (a .safetensors file) in the runs folder")
        return path

    def listing(self, running: str | None = None) -> list[dict[str, Any]]:
        """The runs (folders holding checkpoints or ``metrics.jsonl``), newest first."""
        if not self.root.is_dir():
            return []
        runs = []
        for folder in self.root.iterdir():
            if not folder.is_dir() or not NAME.fullmatch(folder.name) or not self._inside(folder):
                continue
            ckpts = sorted(p.name for p in folder.glob("*.safetensors") if self._inside(p))
            metrics = folder / "metrics.jsonl"
            if not ckpts and not metrics.is_file():
                continue
            stamp = max([p.stat().st_mtime for p in folder.iterdir() if p.is_file()] or [folder.stat().st_mtime])
            runs.append({"name": folder.name, "checkpoints": [f"{folder.name}/{c}" for c in ckpts],
                         "metrics": metrics.is_file(), "finished": (folder / "results.json").is_file(),
                         "running": folder.name == running, "modified": stamp})
        return sorted(runs, key=lambda r: -r["modified"])

    # -- models ---------------------------------------------------------------------------------
    def load(self, rel: Any) -> tuple[Any, dict[str, Any], Path]:
        """The model of a checkpoint and what its metadata records (cached by path and mtime)."""
        path = self.checkpoint(rel)
        key = (str(path), path.stat().st_mtime_ns)
        with self.lock:
            if key not in self._cache:
                try:
                    model = load_checkpoint(path)
                    document = cnnlab.load_metadata(path) or {}
                except (ValueError, OSError) as exc:
                    raise ApiError(422, f"cannot load {rel}: {exc}") from None
                model.eval()
                if len(self._cache) >= 4:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = (model, dict(document.get("metadata") or {}))
            model, meta = self._cache[key]
        return model, meta, path

    def describe(self, rel: Any) -> dict[str, Any]:
        model, meta, _ = self.load(rel)
        convs = [m for m in (model.children() if isinstance(model, nn.Sequential) else [model])
                 if isinstance(m, (nn.Conv1d, nn.Conv2d))]
        filters = None if not convs else jsonable(np.asarray(convs[0].weight.data)[:MAX_FILTERS])
        layers = [{"name": name, "type": type(m).__name__, "repr": repr(m)[:200]}
                  for name, m in (model.named_children() if isinstance(model, nn.Sequential) else [("model", model)])]
        shape = meta.get("input_shape")
        return {"checkpoint": rel, "input_shape": shape, "classes": meta.get("classes"), "data": meta.get("data"),
                "layers": layers, "filters": filters, "signal": isinstance(shape, list) and len(shape) == 2}

    def _prepare(self, meta: dict[str, Any], x: np.ndarray) -> np.ndarray:
        try:
            return prepare_input(meta, x)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None

    def example(self, rel: Any, index: int) -> dict[str, Any]:
        """Test example ``index`` of the data set the checkpoint was trained on (raw, unnormalised)."""
        _, meta, _ = self.load(rel)
        name = str(meta.get("data", "")).lower()
        if name not in self._data:
            try:
                self._data[name] = load_test_set(name)
            except ValueError as exc:
                raise ApiError(422, str(exc)) from None
            except (ImportError, OSError) as exc:
                raise ApiError(422, f"the {name} test set is not available here: {exc}") from None
        x, y = self._data[name]
        if not 0 <= index < len(x):
            raise ApiError(422, f"field 'index': expected an integer in [0, {len(x) - 1}], got {index}")
        label = int(y[index])
        classes = meta.get("classes") or []
        return {"input": jsonable(x[index]), "label": label,
                "class": classes[label] if label < len(classes) else str(label)}

    def predict(self, rel: Any, values: Any) -> dict[str, Any]:
        """Class probabilities and each layer's feature maps for one input."""
        model, meta, _ = self.load(rel)
        x = self._prepare(meta, np.asarray(values, dtype=np.float64))
        with self.lock:
            try:
                records = layer_outputs(model, x)
            except (TypeError, ValueError) as exc:
                raise ApiError(422, f"the model cannot take this input: {exc}") from None
        logits = records[-1].output
        layers = []
        for r in records:
            out = r.output
            entry = {"name": r.name, "type": type(r.module).__name__, "shape": list(out.shape),
                     "conv": r.is_conv}
            if out.ndim in (2, 3):
                entry["maps"] = jsonable(out[:MAX_MAPS])
            layers.append(entry)
        probs = None
        if logits.ndim == 1:
            from cnnlab import functional as F

            probs = np.asarray(F.softmax(logits[None].astype(np.float64), dim=1))[0]
        return {"probabilities": None if probs is None else jsonable(probs),
                "predicted": None if probs is None else int(np.argmax(probs)),
                "classes": meta.get("classes"), "layers": layers}

    def cell(self, rel: Any, values: Any, layer: str, channel: int, row: int, col: int) -> dict[str, Any]:
        """The window and arithmetic of output cell ``(channel, row, col)`` of conv layer ``layer``."""
        model, meta, _ = self.load(rel)
        x = self._prepare(meta, np.asarray(values, dtype=np.float64))
        with self.lock:
            records = layer_outputs(model, x)
        record = next((r for r in records if r.name == layer), None)
        if record is None or not record.is_conv:
            names = [r.name for r in records if r.is_conv]
            raise ApiError(422, f"field 'layer': expected the name of a conv layer ({', '.join(names)}), "
                                f"got {layer!r}")
        conv = record.module
        if conv.groups != 1:
            raise ApiError(422, f"layer {layer}: grouped convolutions are not explained cell by cell")
        out = record.output
        limits = out.shape
        if not (0 <= channel < limits[0] and 0 <= row < (limits[1] if out.ndim == 3 else 1)
                and 0 <= col < limits[-1]):
            raise ApiError(422, f"cell ({channel}, {row}, {col}) is outside layer {layer}'s output {tuple(limits)}")
        weight = np.asarray(conv.weight.data, dtype=np.float64)[channel:channel + 1]
        bias = None if conv.bias is None else [float(np.asarray(conv.bias.data)[channel])]
        padding = conv.padding
        xin = record.input.astype(np.float64)
        if isinstance(conv, nn.Conv1d):  # a signal is a one-row image
            xin, weight = xin[:, None, :], weight[:, :, None, :]
            stride, dilation = (1, conv.stride[0]), (1, conv.dilation[0])
            if not isinstance(padding, str):
                p = padding[0]
                padding = ((0, 0), p if isinstance(p, tuple) else (p, p))
        else:
            stride, dilation = conv.stride, conv.dilation
            if not isinstance(padding, str):
                padding = tuple(p if isinstance(p, tuple) else (p, p) for p in padding)
        wanted = (0, row if out.ndim == 3 else 0, col)
        stage = explain(xin, [Conv(weight, stride=stride, padding=padding, dilation=dilation, bias=bias,
                                   padding_mode=conv.padding_mode)], at=[wanted]).stages[0]
        cell = stage.cells[0]  # the one position asked for (the layer's shape says it lies in the output)
        return {"layer": layer, "index": [channel, row, col], "rows": list(cell.rows), "cols": list(cell.cols),
                "pads": jsonable(stage.pads),
                "window": jsonable(cell.window), "kernel": jsonable(cell.kernel), "bias": jsonable(cell.bias),
                "value": jsonable(cell.value), "layer_value": jsonable(out[(channel, *wanted[1:])]
                                                                       if out.ndim == 3 else out[channel, col]),
                "text": cell_text(cell, f"{layer}[{channel}]")}


def decode_image(data: bytes, max_pixels: int, size: tuple[int, int], invert: bool) -> list[list[float]]:
    """An uploaded image as grey values in [0, 1] of ``size = (H, W)``; refuses images over ``max_pixels``."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        width, height = img.size  # read from the header, before any pixel is decoded
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ApiError(422, f"the upload is not an image PIL can read ({type(exc).__name__})") from None
    if width * height > max_pixels:
        raise ApiError(413, f"the image is {width} x {height} = {width * height} pixels, more than the limit of "
                            f"{max_pixels} pixels")
    try:
        grey = img.convert("L").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ApiError(422, f"the image cannot be decoded: {exc}") from None
    pixels = np.asarray(grey, dtype=np.float64) / 255.0
    if invert:
        pixels = 1.0 - pixels
    return jsonable(pixels)
