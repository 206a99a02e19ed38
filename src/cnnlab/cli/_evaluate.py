"""``cnnlab evaluate`` and ``cnnlab predict``: use a checkpoint written by ``cnnlab train``.

Both rebuild the model from the checkpoint (``best.safetensors`` or ``last.safetensors``) and
apply the preprocessing recorded in it: image pixels are scaled to [0, 1] (``uint8`` arrays are
divided by 255; image files are read by Pillow) and normalised with the training set's mean and
standard deviation; MNIST-1D signals are used as they are.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from cnnlab.cli._common import CommandError, positive_int
from cnnlab.training.inference import InputError, classify, preprocess, read_samples


def _load_checkpoint(cmd: str, path: str, verify: bool = True) -> tuple[Any, dict[str, Any]]:
    from cnnlab.checkpoint import CheckpointError
    from cnnlab.training import load_trained
    from cnnlab.training.inference import nonfinite_weight

    try:
        model, metadata = load_trained(path, verify=verify)
    except FileNotFoundError:
        raise CommandError(f"cnnlab {cmd}: checkpoint {path} does not exist") from None
    except (CheckpointError, ImportError) as exc:
        raise CommandError(f"cnnlab {cmd}: {exc}") from None
    missing = [k for k in ("input_shape", "classes", "preprocess") if k not in metadata]
    if missing:
        raise CommandError(f"cnnlab {cmd}: {path} records no {', '.join(missing)}; it was not written by cnnlab train")
    bad = nonfinite_weight(model)
    if bad is not None:
        raise CommandError(f"cnnlab {cmd}: {path} holds NaN or infinite weights (in {bad!r}); its outputs would be "
                           "meaningless")
    return model, metadata


def _add_verify(p: Any) -> None:
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the SHA-256 check of the checkpoint's tensor data (faster for big files)")


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
    p.add_argument("--batch-size", type=positive_int, default=500, metavar="N")
    _add_verify(p)
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``cnnlab evaluate``."""
    from cnnlab.data import DataError, DataLoader, TensorDataset, load_dataset
    from cnnlab.training import evaluate
    from cnnlab.training.metrics import confusion_matrix, format_confusion_matrix

    model, meta = _load_checkpoint("evaluate", args.checkpoint, args.verify)
    settings = meta.get("settings") or {}
    name = args.data or meta.get("data")
    if not name:
        raise CommandError("cnnlab evaluate: the checkpoint does not record its data set; give --data")
    try:
        data = load_dataset(name, seed=settings.get("seed", 0), image_size=settings.get("image_size"),
                            rgb=bool(settings.get("rgb")))
    except DataError as exc:
        raise CommandError(f"cnnlab evaluate: {exc}") from None
    if list(data.input_shape) != list(meta["input_shape"]):
        raise CommandError(f"cnnlab evaluate: {data.name} has inputs of shape {data.input_shape} but the model expects "
                    f"{tuple(meta['input_shape'])}")
    if data.classes != list(meta["classes"]):
        raise CommandError(f"cnnlab evaluate: {data.name} has classes {data.classes} but the model was trained on "
                    f"{meta['classes']}")
    x, y = (data.x_test, data.y_test) if args.split == "test" else (data.x_train, data.y_train)
    if len(x) == 0:
        raise CommandError(f"cnnlab evaluate: the {args.split} split of {data.name} is empty")
    inputs = preprocess(x, meta["preprocess"])
    if not np.isfinite(inputs).all():
        raise CommandError(f"cnnlab evaluate: the {args.split} split of {data.name} holds NaN or infinite values")
    result = evaluate(model, DataLoader(TensorDataset(inputs, y), batch_size=args.batch_size))
    if not np.isfinite(result.loss):
        raise CommandError(f"cnnlab evaluate: the model's outputs on {data.name} are NaN or infinite "
                           f"(mean loss {result.loss}); no accuracy is reported")
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
    p.add_argument("--top", type=positive_int, default=3, metavar="K", help="probabilities shown (default 3)")
    p.add_argument("--resize", action="store_true", help="resize images to the model's input size")
    _add_verify(p)
    p.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    """Run ``cnnlab predict``."""
    model, meta = _load_checkpoint("predict", args.checkpoint, args.verify)
    expected = tuple(int(n) for n in meta["input_shape"])
    classes = [str(c) for c in meta["classes"]]
    pixels = bool(meta["preprocess"].get("pixels"))
    inputs: list[tuple[str, Any]] = []
    for name in args.files:
        try:
            batch = read_samples(name, expected, pixels, args.resize)
        except InputError as exc:
            raise CommandError(f"cnnlab predict: {exc}") from None
        inputs.append((name, batch))
    for name, batch in inputs:
        try:
            results = classify(model, batch, meta["preprocess"], top=args.top)
        except InputError as exc:
            raise CommandError(f"cnnlab predict: {name}: {exc}") from None
        for i, ranked in enumerate(results):
            label = name if len(batch) == 1 else f"{name}[{i}]"
            shown = "  ".join(f"{classes[k]} {100 * p:.1f}%" for k, p in ranked)
            print(f"{label}: {_class_text(ranked[0][0], classes)}   ({shown})")
    return 0


def _class_text(k: int, classes: list[str]) -> str:
    return classes[k] if classes[k] == str(k) else f"{k} ({classes[k]})"
