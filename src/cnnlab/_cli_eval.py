"""``cnnlab evaluate`` and ``cnnlab predict``: use a checkpoint written by ``cnnlab train``.

Both rebuild the model from the checkpoint (``best.safetensors`` or ``last.safetensors``) and
apply the preprocessing recorded in it: image pixels are scaled to [0, 1] (``uint8`` arrays are
divided by 255; image files are read by Pillow) and normalised with the training set's mean and
standard deviation; MNIST-1D signals are used as they are.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab._cli_train import IMAGE_SUFFIXES, _fail, _positive_int, load_data


def _load_checkpoint(cmd: str, path: str) -> tuple[Any, dict[str, Any]]:
    from cnnlab.checkpoint import CheckpointError
    from cnnlab.train import load_trained

    try:
        model, metadata = load_trained(path)
    except FileNotFoundError:
        raise _fail(f"cnnlab {cmd}: checkpoint {path} does not exist") from None
    except (CheckpointError, ImportError) as exc:
        raise _fail(f"cnnlab {cmd}: {exc}") from None
    missing = [k for k in ("input_shape", "classes", "preprocess") if k not in metadata]
    if missing:
        raise _fail(f"cnnlab {cmd}: {path} records no {', '.join(missing)}; it was not written by cnnlab train")
    return model, metadata


def _normalise(x: np.ndarray, preprocess: dict[str, Any]) -> np.ndarray:
    """Model inputs ``(N, C, *spatial)`` from data in the training set's units."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = np.asarray(preprocess["mean"], dtype=np.float32).reshape(shape if np.ndim(preprocess["mean"]) else ())
    std = np.asarray(preprocess["std"], dtype=np.float32).reshape(shape if np.ndim(preprocess["std"]) else ())
    return ((x.astype(np.float32) - mean) / std).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# cnnlab evaluate


def add_evaluate(sub: Any) -> None:
    """Declare ``cnnlab evaluate``."""
    p = sub.add_parser(
        "evaluate", help="accuracy, per-class accuracy and confusion matrix of a checkpoint",
        description="Evaluate a checkpoint written by cnnlab train on a data set's test (or train) split: "
                    "accuracy, loss, and a confusion matrix with each class's accuracy.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="best.safetensors or last.safetensors of a run")
    p.add_argument("--data", default=None, metavar="NAME|PATH", help="default: the data set the model was trained on")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--batch-size", type=_positive_int, default=500, metavar="N")
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``cnnlab evaluate``."""
    from cnnlab.data import DataLoader, TensorDataset
    from cnnlab.metrics import confusion_matrix, format_confusion_matrix
    from cnnlab.train import evaluate

    model, meta = _load_checkpoint("evaluate", args.checkpoint)
    settings = meta.get("settings") or {}
    name = args.data or meta.get("data")
    if not name:
        raise _fail("cnnlab evaluate: the checkpoint does not record its data set; give --data")
    data = load_data("evaluate", name, seed=settings.get("seed", 0), image_size=settings.get("image_size"),
                     rgb=bool(settings.get("rgb")))
    if list(data.input_shape) != list(meta["input_shape"]):
        raise _fail(f"cnnlab evaluate: {data.name} has inputs of shape {data.input_shape} but the model expects "
                    f"{tuple(meta['input_shape'])}")
    if data.classes != list(meta["classes"]):
        raise _fail(f"cnnlab evaluate: {data.name} has classes {data.classes} but the model was trained on "
                    f"{meta['classes']}")
    x, y = (data.x_test, data.y_test) if args.split == "test" else (data.x_train, data.y_train)
    if len(x) == 0:
        raise _fail(f"cnnlab evaluate: the {args.split} split of {data.name} is empty")
    inputs = _normalise(x, meta["preprocess"]) if meta["preprocess"].get("pixels") else x
    result = evaluate(model, DataLoader(TensorDataset(inputs, y), batch_size=args.batch_size))
    epoch = (meta.get("metrics") or {}).get("epoch")
    print(f"checkpoint: {args.checkpoint} ({meta.get('model', 'model')}"
          + (f", epoch {epoch})" if epoch else ")"))
    print(f"data: {data.name}, {args.split} split, {result.count} examples")
    print(f"accuracy: {100 * result.accuracy:.2f}%  ({int(round(result.accuracy * result.count))} of "
          f"{result.count} correct; mean loss {result.loss:.4f})")
    print()
    cm = confusion_matrix(result.predictions, result.targets, num_classes=len(data.classes))
    print(format_confusion_matrix(cm, data.classes))
    return 0


# ---------------------------------------------------------------------------------------------
# cnnlab predict


def add_predict(sub: Any) -> None:
    """Declare ``cnnlab predict``."""
    p = sub.add_parser(
        "predict", help="classify images or .npy arrays with a checkpoint",
        description="Print the predicted class and the top probabilities for each file: PNG/JPEG images "
                    "(read with Pillow) or .npy arrays holding one sample (C, *spatial) or a batch "
                    "(N, C, *spatial); for one-channel models the channel axis may be left out.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="best.safetensors or last.safetensors of a run")
    p.add_argument("files", nargs="+", metavar="FILE", help="images or .npy files")
    p.add_argument("--top", type=_positive_int, default=3, metavar="K", help="probabilities shown (default 3)")
    p.add_argument("--resize", action="store_true", help="resize images to the model's input size")
    p.set_defaults(run=run_predict)


def _npy_samples(path: Path, expected: tuple[int, ...], pixels: bool) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise _fail(f"cnnlab predict: cannot read {path} as a .npy array: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise _fail(f"cnnlab predict: {path} holds {array.dtype} data; expected numbers")
    shape, c, spatial = array.shape, expected[0], expected[1:]
    if shape == expected:
        batch = array[None]
    elif c == 1 and shape == spatial:
        batch = array[None, None]
    elif shape[1:] == expected:
        batch = array
    elif c == 1 and len(shape) == len(spatial) + 1 and shape[1:] == spatial:
        batch = array[:, None]
    else:
        one = f"{spatial} or {expected}" if c == 1 else f"{expected}"
        raise _fail(f"cnnlab predict: {path} has shape {shape} but the model expects one sample of shape {one}, "
                    f"or a batch (N, {', '.join(map(str, expected))})")
    if pixels and batch.dtype == np.uint8:
        return batch.astype(np.float32) / np.float32(255)
    return batch.astype(np.float32)


def _image_sample(path: Path, expected: tuple[int, ...], resize: bool) -> np.ndarray:
    from cnnlab.data import load_image

    if len(expected) != 3:
        raise _fail(f"cnnlab predict: {path} is an image but the model expects signals of shape {expected}; "
                    "give a .npy file")
    c, h, w = expected
    if c not in (1, 3):
        raise _fail(f"cnnlab predict: the model expects {c}-channel inputs; give a .npy file")
    try:
        x = load_image(path, grayscale=c == 1, size=(h, w) if resize else None)
    except (ValueError, ImportError) as exc:
        raise _fail(f"cnnlab predict: {exc}") from None
    if x.shape != expected:
        raise _fail(f"cnnlab predict: {path} is {x.shape[2]}x{x.shape[1]} pixels but the model expects "
                    f"{w}x{h} images; add --resize to scale it")
    return x[None]


def run_predict(args: argparse.Namespace) -> int:
    """Run ``cnnlab predict``."""
    from cnnlab.functional import softmax
    from cnnlab.train import predict

    model, meta = _load_checkpoint("predict", args.checkpoint)
    expected = tuple(int(n) for n in meta["input_shape"])
    classes = [str(c) for c in meta["classes"]]
    pixels = bool(meta["preprocess"].get("pixels"))
    inputs: list[tuple[str, np.ndarray]] = []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise _fail(f"cnnlab predict: {path} does not exist")
        if path.suffix.lower() == ".npy":
            batch = _npy_samples(path, expected, pixels)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            batch = _image_sample(path, expected, args.resize)
        else:
            raise _fail(f"cnnlab predict: {path}: expected an image ({', '.join(IMAGE_SUFFIXES)}) or a .npy file")
        if len(batch) == 0:
            raise _fail(f"cnnlab predict: {path} holds no samples")
        inputs.append((name, batch))
    top = min(args.top, len(classes))
    for name, batch in inputs:
        x = _normalise(batch, meta["preprocess"]) if pixels else batch
        probs = softmax(predict(model, x), dim=1)
        for i, p in enumerate(probs):
            label = name if len(batch) == 1 else f"{name}[{i}]"
            order = np.argsort(-p, kind="stable")[:top]
            best = order[0]
            ranked = "  ".join(f"{classes[k]} {100 * p[k]:.1f}%" for k in order)
            print(f"{label}: {_class_text(best, classes)}   ({ranked})")
    return 0


def _class_text(k: int, classes: list[str]) -> str:
    return classes[k] if classes[k] == str(k) else f"{k} ({classes[k]})"
