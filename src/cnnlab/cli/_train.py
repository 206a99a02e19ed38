"""``cnnlab train``: argument parsing for :func:`cnnlab.training.run`, whose errors become one line here.

Data sets by name: ``mnist1d`` (the default), ``mnist``, ``fashion-mnist``, ``kmnist``, or the path of
an image folder (see :func:`cnnlab.data.load_dataset`).  Settings not given come from the model's
recipe (:data:`cnnlab.training.RECIPES`).  Each checkpoint records what ``evaluate`` and ``predict``
need: the data set, its classes, the input shape, the preprocessing and the settings of the run.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from cnnlab.cli._common import CommandError, count, fraction, nonnegative, positive_int

_TRAIN_EPILOG = """\
models: a built-in name or a spec string such as c16k3p1-bn-relu-mp2-c32k3p1-relu-mp2-flat-fc10
{models}

examples:
  cnnlab train                                   # the MNIST-1D paper's CNN, compared with the paper
  cnnlab train --model mnist1d-cnn-bn            # our stronger MNIST-1D recipe
  cnnlab train --data fashion-mnist              # convnet on Fashion-MNIST (24 epochs, ~6 min on 2 cores)
  cnnlab train --resume runs/RUN/last.safetensors --epochs 80
"""


def add_train(sub: Any) -> None:
    """Declare ``cnnlab train``."""
    from cnnlab.training.models import _describe_models

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
    p.add_argument("--epochs", type=positive_int, default=None, metavar="N")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="N")
    p.add_argument("--lr", type=nonnegative, default=None, metavar="X", help="learning rate (peak for onecycle)")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default=None)
    p.add_argument("--weight-decay", type=nonnegative, default=None, metavar="X")
    p.add_argument("--momentum", type=nonnegative, default=None, metavar="X", help="for sgd (default 0.9)")
    p.add_argument("--scheduler", choices=("none", "onecycle", "cosine"), default=None)
    p.add_argument("--augment", type=count, default=None, metavar="K",
                   help="random shifts of up to K samples/pixels (0: none)")
    p.add_argument("--val-split", type=fraction, default=None, metavar="F",
                   help="hold out this fraction of the training set for validation; it picks best.safetensors "
                        "and early stopping (default 0.1; 0 uses the TEST set for that, which leaks it)")
    p.add_argument("--patience", type=positive_int, default=None, metavar="N",
                   help="stop early after N epochs without a lower val loss")
    p.add_argument("--seed", type=count, default=None, metavar="N", help="random seed (default 0)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="train on the first N examples")
    p.add_argument("--image-size", type=positive_int, default=None, metavar="N",
                   help="resize folder images to N x N")
    p.add_argument("--rgb", action="store_true", default=None, help="read folder images in colour")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="run folder (default: a fresh runs/<data>-<model>-<time>); a folder holding a run is refused "
                        "unless it is resumed or --overwrite is given")
    p.add_argument("--overwrite", action="store_true", help="replace the run that --out holds")
    p.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue the run of a last.safetensors (only --epochs and --out may change)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or lines, only the summary")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Run ``cnnlab train``; a SIGTERM at any moment ends it cleanly with exit 143."""
    from cnnlab.training import Terminated, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            return _train(args)
    except Terminated:
        out = f" in {args.out}" if args.out else ""
        print(f"cnnlab train: terminated (SIGTERM) outside the training loop; every checkpoint written{out} is "
              "complete (resume with --resume LAST, or start again)", file=sys.stderr)
        return 143


def _train(args: argparse.Namespace) -> int:
    from cnnlab.checkpoint import CheckpointError
    from cnnlab.data import DataError
    from cnnlab.training import RunFolderError, sigterm_deferred
    from cnnlab.training.models import SpecError
    from cnnlab.training.recipes import SETTINGS, RunError, published_table, resolve_settings, resume_settings, run

    try:
        if args.resume is not None:
            changed = [f"--{k.replace('_', '-')}" for k in SETTINGS
                       if k != "epochs" and getattr(args, k, None) is not None]
            if changed:
                raise CommandError(f"cnnlab train: --resume continues the recorded run; only --epochs and --out can "
                                   f"be given, not {', '.join(changed)}")
            settings = resume_settings(args.resume, args.epochs)
        else:
            settings = resolve_settings({k: getattr(args, k, None) for k in SETTINGS})
        result = run(settings, args.out, resume=args.resume, progress=False if args.no_progress else True,
                     log=lambda line: print(line, flush=True), overwrite=args.overwrite, warmup=True)
    except (DataError, RunError, RunFolderError, SpecError, CheckpointError, FloatingPointError) as exc:
        raise CommandError(f"cnnlab train: {exc}") from None
    out = result.out_dir
    if result.interrupted:
        print(f"cnnlab train: {result.message}", file=sys.stderr)
        print(f"continue with: cnnlab train --resume {out / 'last.safetensors'}", file=sys.stderr)
        return 128 + int(result.signal or signal.SIGINT)  # 130 after Ctrl-C, 143 after SIGTERM
    print(f"{result.message} in {result.seconds:.0f} s; test accuracy {100 * result.test_accuracy:.1f}% "
          f"(loss {result.test_loss:.4f}, final model, test set used once at the end)")
    if settings["data"] == "mnist1d":
        print(published_table(result.test_accuracy, settings["model"]), end="")
    print(f"checkpoints: {out}/last.safetensors, {out}/best.safetensors; "
          f"try: cnnlab evaluate {out}/last.safetensors")
    # the figures are a bonus: drawing them must never fail a finished run, and a SIGTERM meanwhile
    # waits for them (an exception inside matplotlib's first import can break the interpreter's exit)
    with sigterm_deferred():
        try:
            from cnnlab.viz import plot_run

            print("figures: " + ", ".join(str(p) for p in plot_run(out)))
        except Exception as exc:  # noqa: BLE001
            print(f"cnnlab train: figures not written ({type(exc).__name__}: {exc})", file=sys.stderr)
    return 0
