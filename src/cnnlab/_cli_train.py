"""The training subcommands of the ``cnnlab`` command line: ``train``, ``evaluate``, ``predict``,
and the short MNIST-1D training that ``cnnlab demo`` runs after the lecture's example.

Data sets by name: ``mnist1d`` (the default: 4,000 train / 1,000 test signals of length 40, given
the shape ``(1, 40)``), ``mnist``, ``fashion-mnist``, ``kmnist`` (28 x 28 grey images, scaled to
[0, 1] and normalised with the training set's mean and standard deviation), or the path of an
image folder (one sub-folder per class; with ``train/`` and ``test/`` sub-folders those are the
splits, otherwise a seeded fifth of the images is the test split).

Each checkpoint records what ``evaluate`` and ``predict`` need: the data set, its classes, the
input shape, the preprocessing (mean and standard deviation) and the settings of the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data.mnist import DATASETS

PUBLISHED_MNIST1D = (("logistic regression", 32), ("MLP", 68), ("CNN", 94), ("human", 96))
PAPER = "Greydanus & Kobak, MNIST-1D"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

# Training settings per model; command-line options override them.
RECIPES: dict[str, dict[str, Any]] = {
    "mnist1d-cnn": {"epochs": 60, "batch_size": 100, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0,
                    "scheduler": "none", "augment": 4},
    "mnist1d-cnn-bn": {"epochs": 40, "batch_size": 100, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0,
                       "scheduler": "onecycle", "augment": 4},
    "mnist1d-mlp": {"epochs": 150, "batch_size": 100, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0,
                    "scheduler": "none", "augment": 0},
    "mnist1d-logreg": {"epochs": 150, "batch_size": 100, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0,
                       "scheduler": "none", "augment": 0},
    "lenet5": {"epochs": 10, "batch_size": 128, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
               "scheduler": "none", "augment": 0},
    "convnet": {"epochs": 4, "batch_size": 128, "optimizer": "adamw", "lr": 5e-3, "weight_decay": 5e-4,
                "scheduler": "onecycle", "augment": 0},
    "spec": {"epochs": 10, "batch_size": 100, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
             "scheduler": "none", "augment": 0},
}
SETTINGS = ("data", "model", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "momentum", "scheduler",
            "augment", "val_split", "patience", "seed", "limit", "image_size", "rgb")


def _fail(message: str) -> Exception:
    from cnnlab.cli import CommandError

    return CommandError(message)


# ---------------------------------------------------------------------------------------------
# data


@dataclass
class Data:
    """A data set ready for training: float32 inputs ``(N, C, *spatial)`` and int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    mean: float | list[float]
    std: float | list[float]
    pixels: bool  # image data: inputs in [0, 1] that the loaders normalise with mean and std

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def preprocess(self) -> dict[str, Any]:
        return {"pixels": self.pixels, "mean": self.mean, "std": self.std}


def _pixel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    axes = (0, *range(2, x.ndim))
    mean = x.mean(axis=axes, dtype=np.float64)
    std = np.maximum(x.std(axis=axes, dtype=np.float64), 1e-6)
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


def _folder_arrays(folder: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        x = np.stack([folder[i][0] for i in range(len(folder))])
    except ValueError as exc:
        raise _fail(f"cnnlab: images in {folder.root} differ in size ({exc}); give --image-size N") from None
    return x.astype(np.float32), folder.targets.astype(np.int64)


def _load_folder(cmd: str, path: Path, image_size: int | None, rgb: bool, seed: int) -> Data:
    from cnnlab.data import ImageFolder

    try:
        if (path / "train").is_dir() and (path / "test").is_dir():
            train = ImageFolder(path / "train", grayscale=not rgb, size=image_size)
            test = ImageFolder(path / "test", grayscale=not rgb, size=image_size)
            if train.classes != test.classes:
                raise _fail(f"cnnlab {cmd}: {path}/train and {path}/test have different class folders")
            (x_train, y_train), (x_test, y_test) = _folder_arrays(train), _folder_arrays(test)
        else:
            train = ImageFolder(path, grayscale=not rgb, size=image_size)
            x, y = _folder_arrays(train)
            order = np.random.default_rng(seed).permutation(len(x))
            n_test = max(1, len(x) // 5) if len(x) > 1 else 0
            x_test, y_test = x[order[:n_test]], y[order[:n_test]]
            x_train, y_train = x[order[n_test:]], y[order[n_test:]]
    except (ValueError, FileNotFoundError, ImportError) as exc:
        raise _fail(f"cnnlab {cmd}: {exc}") from None
    mean, std = _pixel_stats(x_train)
    return Data(str(path), x_train, y_train, x_test, y_test, list(train.classes), mean, std, pixels=True)


def load_data(cmd: str, name: str, *, seed: int = 0, image_size: int | None = None, rgb: bool = False) -> Data:
    """Load a data set by name (``mnist1d``, ``mnist``, ``fashion-mnist``, ``kmnist``) or folder path."""
    key = name.lower()
    if key == "mnist1d":
        from cnnlab.data import load_mnist1d

        try:
            x_train, y_train, x_test, y_test = load_mnist1d()
        except ImportError:
            raise _fail(f"cnnlab {cmd}: MNIST-1D is generated by the 'mnist1d' package, which is not installed; "
                        "install it with: pip install 'cnnlab[data]'") from None
        classes = [str(k) for k in range(10)]
        return Data("mnist1d", x_train[:, None, :], y_train, x_test[:, None, :], y_test, classes, 0.0, 1.0, False)
    if key in DATASETS:
        from cnnlab.data import DatasetNotFoundError, data_dir, load_mnist

        try:
            (x_train, y_train), (x_test, y_test) = load_mnist(key, "train"), load_mnist(key, "test")
        except DatasetNotFoundError:
            raise _fail(f"cnnlab {cmd}: no copy of {DATASETS[key].name} was found and it could not be downloaded; "
                        f"put its four IDX files (train-images-idx3-ubyte.gz, ...) in {data_dir() / key}/") from None
        except ValueError as exc:
            raise _fail(f"cnnlab {cmd}: {exc}") from None
        x_train = (x_train[:, None] / np.float32(255)).astype(np.float32)
        x_test = (x_test[:, None] / np.float32(255)).astype(np.float32)
        mean, std = _pixel_stats(x_train)
        return Data(key, x_train, y_train, x_test, y_test, list(DATASETS[key].classes), mean, std, True)
    path = Path(name).expanduser()
    if path.is_dir():
        return _load_folder(cmd, path, image_size, rgb, seed)
    raise _fail(f"cnnlab {cmd}: unknown data {name!r}: expected mnist1d, {', '.join(DATASETS)} "
                "or the path of an image folder (one sub-folder per class)")


def _transform(data_pixels: bool, mean: Any, std: Any, augment: int, spatial: int) -> Any:
    from cnnlab.data import Compose, Normalize, RandomShift

    steps: list[Any] = []
    if augment:
        steps.append(RandomShift(augment, spatial_dims=spatial))
    if data_pixels:
        steps.append(Normalize(mean, std))
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else Compose(steps)


# ---------------------------------------------------------------------------------------------
# cnnlab train


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def _nonnegative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = _nonnegative(text)
    if not value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


_TRAIN_EPILOG = """\
models: a built-in name or a spec string such as c16k3p1-bn-relu-mp2-c32k3p1-relu-mp2-flat-fc10
{models}

examples:
  cnnlab train                                   # the MNIST-1D paper's CNN, compared with the paper
  cnnlab train --model mnist1d-cnn-bn            # our stronger MNIST-1D recipe
  cnnlab train --data fashion-mnist              # convnet on Fashion-MNIST (4 epochs)
  cnnlab train --resume runs/RUN/last.safetensors --epochs 80
"""


def add_train(sub: Any) -> None:
    """Declare ``cnnlab train``."""
    from cnnlab.models import _describe_models

    p = sub.add_parser(
        "train", help="train a model (default: the MNIST-1D paper's CNN)",
        description="Train a built-in model or one written as a spec string on MNIST-1D, MNIST, "
                    "Fashion-MNIST, KMNIST or a folder of images. Settings not given come from the "
                    "model's recipe. Writes metrics.jsonl, last.safetensors and best.safetensors to --out.",
        epilog=_TRAIN_EPILOG.format(models=_describe_models()), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default=None, metavar="NAME|PATH",
                   help="mnist1d (default), mnist, fashion-mnist, kmnist, or an image folder")
    p.add_argument("--model", default=None, metavar="NAME|SPEC",
                   help="built-in model or spec (default: mnist1d-cnn for MNIST-1D, convnet for images)")
    p.add_argument("--epochs", type=_positive_int, default=None, metavar="N")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="N")
    p.add_argument("--lr", type=_nonnegative, default=None, metavar="X", help="learning rate (peak for onecycle)")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default=None)
    p.add_argument("--weight-decay", type=_nonnegative, default=None, metavar="X")
    p.add_argument("--momentum", type=_nonnegative, default=None, metavar="X", help="for sgd (default 0.9)")
    p.add_argument("--scheduler", choices=("none", "onecycle", "cosine"), default=None)
    p.add_argument("--augment", type=_count, default=None, metavar="K",
                   help="random shifts of up to K samples/pixels (0: none)")
    p.add_argument("--val-split", type=_fraction, default=None, metavar="F",
                   help="hold out this fraction of the training set for validation (default 0: the "
                        "per-epoch val metrics are on the test set)")
    p.add_argument("--patience", type=_positive_int, default=None, metavar="N",
                   help="stop early after N epochs without a lower val loss")
    p.add_argument("--seed", type=_count, default=None, metavar="N", help="random seed (default 0)")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N", help="train on the first N examples")
    p.add_argument("--image-size", type=_positive_int, default=None, metavar="N",
                   help="resize folder images to N x N")
    p.add_argument("--rgb", action="store_true", default=None, help="read folder images in colour")
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default runs/<data>-<model>-<time>)")
    p.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue the run of a last.safetensors (only --epochs and --out may change)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or lines, only the summary")
    p.set_defaults(run=run_train)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings: the options given, then the model's recipe, then the defaults."""
    given = {k: getattr(args, k) for k in SETTINGS if getattr(args, k, None) is not None}
    data = given.get("data", "mnist1d")
    model = given.get("model") or ("mnist1d-cnn" if data.lower() == "mnist1d" else "convnet")
    from cnnlab.models import MODELS

    recipe = RECIPES[model.lower()] if model.lower() in MODELS else RECIPES["spec"]
    settings = {"data": data, "model": model, "momentum": 0.9, "val_split": 0.0, "patience": None, "seed": 0,
                "limit": None, "image_size": None, "rgb": False}
    settings.update(recipe)
    settings.update(given)
    return settings


def _resume_settings(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    from cnnlab import checkpoint

    path = Path(args.resume)
    changed = [f"--{k.replace('_', '-')}" for k in SETTINGS if k != "epochs" and getattr(args, k, None) is not None]
    if changed:
        raise _fail(f"cnnlab train: --resume continues the recorded run; only --epochs and --out can be given, "
                    f"not {', '.join(changed)}")
    try:
        document = checkpoint.load_metadata(path) or {}
    except (OSError, ValueError) as exc:
        raise _fail(f"cnnlab train: cannot resume from {path}: {exc}") from None
    settings = (document.get("metadata") or {}).get("settings")
    if not isinstance(settings, dict) or "training" not in (document.get("metadata") or {}):
        raise _fail(f"cnnlab train: {path} is not a last.safetensors written by cnnlab train")
    settings = dict(settings)
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    return settings, path


def _optimizer(settings: dict[str, Any], params: Any) -> Any:
    from cnnlab import optim

    lr, wd = settings["lr"], settings["weight_decay"]
    if settings["optimizer"] == "sgd":
        return optim.SGD(params, lr=lr, momentum=settings["momentum"], weight_decay=wd)
    if settings["optimizer"] == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=wd)
    return optim.Adam(params, lr=lr, weight_decay=wd)


def _scheduler(settings: dict[str, Any], opt: Any, steps_per_epoch: int) -> Any:
    from cnnlab import optim

    if settings["scheduler"] == "onecycle":
        return optim.OneCycleLR(opt, max_lr=settings["lr"], epochs=settings["epochs"], steps_per_epoch=steps_per_epoch)
    if settings["scheduler"] == "cosine":
        return optim.CosineAnnealingLR(opt, T_max=settings["epochs"])
    return None


def _build(cmd: str, settings: dict[str, Any], data: Data) -> Any:
    from cnnlab.models import SpecError, build_model, output_shape

    try:
        model = build_model(settings["model"], data.input_shape, num_classes=len(data.classes))
        out = output_shape(model, data.input_shape)
    except (SpecError, ValueError, TypeError) as exc:
        raise _fail(f"cnnlab {cmd}: {exc}") from None
    if out != (len(data.classes),):
        raise _fail(f"cnnlab {cmd}: model {settings['model']!r} outputs shape {out} but {data.name} has "
                    f"{len(data.classes)} classes; end the spec with fc{len(data.classes)}")
    return model


def _split(data: Data, settings: dict[str, Any]) -> tuple[np.ndarray, ...]:
    x, y = data.x_train, data.y_train
    if settings["limit"] is not None:
        x, y = x[:settings["limit"]], y[:settings["limit"]]
    if not settings["val_split"]:
        return x, y, None, None
    order = np.random.default_rng(settings["seed"]).permutation(len(x))
    n_val = int(round(settings["val_split"] * len(x)))
    if n_val < 1 or n_val >= len(x):
        raise _fail(f"cnnlab train: --val-split {settings['val_split']} leaves no validation or no training "
                    f"examples out of {len(x)}")
    return x[order[n_val:]], y[order[n_val:]], x[order[:n_val]], y[order[:n_val]]


def _describe(settings: dict[str, Any], data: Data, n_train: int) -> str:
    opt = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}[settings["optimizer"]]
    text = (f"{settings['model']} on {data.name} ({n_train} train / {len(data.x_test)} test), {opt} lr "
            f"{settings['lr']:g}")
    if settings["weight_decay"]:
        text += f" weight decay {settings['weight_decay']:g}"
    if settings["scheduler"] != "none":
        text += f", {settings['scheduler']} schedule"
    text += f", batch {settings['batch_size']}, {settings['epochs']} epochs"
    if settings["augment"]:
        text += f", random shifts up to {settings['augment']}"
    return text + f", seed {settings['seed']}"


def _published_table(accuracy: float, model: str) -> str:
    label = "this run: " + model
    width = max(22, len(label) + 2)
    rows = [f"  {name:<{width}}{value:>5}%   (published)" for name, value in PUBLISHED_MNIST1D]
    rows.append(f"  {label:<{width}}{100 * accuracy:>5.1f}%")
    return f"MNIST-1D test accuracy ({PAPER}):\n" + "\n".join(rows) + "\n"


def run_train(args: argparse.Namespace) -> int:
    """Run ``cnnlab train``."""
    import cnnlab
    from cnnlab.checkpoint import CheckpointError
    from cnnlab.data import DataLoader, TensorDataset
    from cnnlab.train import evaluate, fit

    resume = None
    if args.resume is not None:
        settings, resume = _resume_settings(args)
    else:
        settings = _settings(args)
    data = load_data("train", settings["data"], seed=settings["seed"], image_size=settings["image_size"],
                     rgb=settings["rgb"])
    cnnlab.manual_seed(settings["seed"])
    model = _build("train", settings, data)
    x_train, y_train, x_val, y_val = _split(data, settings)
    spatial = len(data.input_shape) - 1
    train_tf = _transform(data.pixels, data.mean, data.std, settings["augment"], spatial)
    eval_tf = _transform(data.pixels, data.mean, data.std, 0, spatial)
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=settings["batch_size"], shuffle=True,
                              seed=settings["seed"], transform=train_tf)
    test_loader = DataLoader(TensorDataset(data.x_test, data.y_test), batch_size=500, transform=eval_tf)
    val_loader = test_loader if x_val is None else DataLoader(TensorDataset(x_val, y_val), batch_size=500,
                                                              transform=eval_tf)
    opt = _optimizer(settings, model.parameters())
    scheduler = _scheduler(settings, opt, len(train_loader))
    if args.out is not None:
        out = Path(args.out)
    elif resume is not None:
        out = resume.parent
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        label = settings["model"] if settings["model"].lower() in RECIPES else "custom"
        out = Path("runs") / f"{Path(data.name).name}-{label}-{stamp}"
    metadata = {"data": data.name, "classes": data.classes, "input_shape": list(data.input_shape),
                "preprocess": data.preprocess(), "model": settings["model"], "settings": settings}
    print(("resuming " if resume else "training ") + _describe(settings, data, len(x_train)) + f" -> {out}/",
          flush=True)
    if x_val is None:
        print("(no --val-split: the per-epoch val metrics are on the test set)", flush=True)
    start = time.perf_counter()
    try:
        result = fit(model, train_loader, val_loader, epochs=settings["epochs"], optimizer=opt, scheduler=scheduler,
                     out_dir=out, seed=settings["seed"], early_stopping_patience=settings["patience"],
                     resume_from=resume, progress=False if args.no_progress else True, metadata=metadata)
    except (CheckpointError, FileNotFoundError) as exc:
        raise _fail(f"cnnlab train: cannot resume: {exc}") from None
    except FloatingPointError as exc:
        raise _fail(f"cnnlab train: {exc}") from None
    seconds = time.perf_counter() - start
    if result.interrupted:
        print(f"cnnlab train: {result.message}", file=sys.stderr)
        print(f"continue with: cnnlab train --resume {out / 'last.safetensors'}", file=sys.stderr)
        return 130
    test = evaluate(model, test_loader)
    summary = {"test_accuracy": test.accuracy, "test_loss": test.loss, "epochs": result.epochs_completed,
               "seconds": round(seconds, 1), "message": result.message, "settings": settings}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{result.message} in {seconds:.0f} s; test accuracy {100 * test.accuracy:.1f}% "
          f"(loss {test.loss:.4f}, final model)")
    if data.name == "mnist1d":
        print(_published_table(test.accuracy, settings["model"]), end="")
    print(f"checkpoints: {out}/last.safetensors, {out}/best.safetensors; "
          f"try: cnnlab evaluate {out}/last.safetensors")
    return 0


# ---------------------------------------------------------------------------------------------
# the short training of cnnlab demo

DEMO_EPOCHS = 15


def demo_training(write: Any, epochs: int = DEMO_EPOCHS) -> None:
    """Train the MNIST-1D paper's CNN briefly and print the result next to the published table.

    ``write`` prints text (the demo's stdout writer).  Without the ``mnist1d`` package (and no
    cached copy of the data) it prints one line saying how to install it.
    """
    import cnnlab
    from cnnlab import optim
    from cnnlab.data import DataLoader, RandomShift, TensorDataset, load_mnist1d
    from cnnlab.models import build_model
    from cnnlab.train import evaluate, fit

    try:
        x_train, y_train, x_test, y_test = load_mnist1d()
    except ImportError:
        write("\nSkipping the short MNIST-1D training: it needs the mnist1d package "
              "(pip install 'cnnlab[data]').\n")
        return
    recipe = RECIPES["mnist1d-cnn"]
    cnnlab.manual_seed(0)
    model = build_model("mnist1d-cnn")
    n_params = sum(p.numel() for p in model.parameters())
    write(f"\nNow a short training run: the MNIST-1D paper's CNN ({n_params:,} parameters) learns to "
          f"classify {len(x_train):,} signals for {epochs} epochs\n(the full `cnnlab train` runs "
          f"{recipe['epochs']}).\n")
    train = DataLoader(TensorDataset(x_train[:, None], y_train), batch_size=recipe["batch_size"], shuffle=True,
                       seed=0, transform=RandomShift(recipe["augment"], spatial_dims=1))
    test = DataLoader(TensorDataset(x_test[:, None], y_test), batch_size=500)
    start = time.perf_counter()

    def report(record: dict[str, Any]) -> None:
        if record["epoch"] in (1, epochs) or record["epoch"] % 5 == 0:
            write(f"  epoch {record['epoch']:>2}/{epochs}: train accuracy {100 * record['train_acc']:.0f}%, "
                  f"test accuracy {100 * record['val_acc']:.0f}%\n")

    fit(model, train, test, epochs=epochs, optimizer=optim.Adam(model.parameters(), lr=recipe["lr"]), seed=0,
        progress=False, on_epoch_end=report)
    accuracy = evaluate(model, test).accuracy
    published = ", ".join(f"{name} {value}%" for name, value in PUBLISHED_MNIST1D)
    write(f"Test accuracy after this short run ({time.perf_counter() - start:.0f} s): {100 * accuracy:.0f}%. "
          f"The full `cnnlab train` reaches about 95%;\npublished ({PAPER}): {published}.\n")
