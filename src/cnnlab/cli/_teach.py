"""The lecture's remaining questions as commands: ``size``, ``filters``, ``flip``, ``scale`` and
``continuous``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from cnnlab.cli._common import CommandError, count, positive_int, write
from cnnlab.cli._explain import _accept_negative_values, _render, add_output_options


def _numbers(text: str) -> list[float]:
    """``0.5,0.25`` -> [0.5, 0.25]."""
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
    return values


def _shape(text: str) -> tuple[int, ...]:
    """``1,28,28`` -> (1, 28, 28)."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape such as 1,28,28, got {text!r}") from None
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected (C,L) or (C,H,W) with sizes >= 1, got {text!r}")
    return shape


# ---------------------------------------------------------------------------------------------
# cnnlab size


def add_size(sub: Any) -> None:
    p = sub.add_parser(
        "size",
        help="object size: the receptive field of every layer of a model, and which objects it sees",
        description=("The receptive field of every conv and pooling layer of a built-in model (e.g. lenet5), "
                     "a spec string (with --input-shape) or a checkpoint written by cnnlab train, and which "
                     "object sizes each layer sees whole."),
    )
    p.add_argument("model", help="a built-in model name, a spec string, or a checkpoint file")
    p.add_argument("--input-shape", type=_shape, default=None, metavar="C,H,W",
                   help="one sample's shape (needed for a spec string)")
    p.add_argument("--sizes", type=_numbers, default=None, metavar="N,N,...",
                   help="object sizes in input cells (default 2, 4, 8, ... up to the input size)")
    add_output_options(p)
    p.set_defaults(run=_run_size)


def _run_size(args: argparse.Namespace) -> int:
    from cnnlab.explain import model_field
    from cnnlab.training.models import MODELS, SpecError, build_model

    if os.path.isfile(args.model):
        from cnnlab.cli._evaluate import _load_checkpoint

        model, meta = _load_checkpoint("size", args.model)
        shape = tuple(int(n) for n in meta["input_shape"])
    elif args.model in MODELS:
        shape = args.input_shape or tuple(MODELS[args.model].input_shape)
        model = build_model(args.model, shape)
    else:
        if args.input_shape is None:
            raise CommandError(f"cnnlab size: {args.model!r} is not a built-in model ({', '.join(MODELS)}) or a "
                               "file; a spec string needs --input-shape")
        try:
            model, shape = build_model(args.model, args.input_shape), args.input_shape
        except (SpecError, ValueError, TypeError) as exc:
            raise CommandError(f"cnnlab size: {str(exc).splitlines()[0]}") from None
    sizes = None if args.sizes is None else [max(1, int(v)) for v in args.sizes][:32]
    write(_render(model_field(model, shape, name=os.path.basename(args.model), sizes=sizes), args))
    return 0


# ---------------------------------------------------------------------------------------------
# cnnlab filters, flip, scale


def add_filters(sub: Any) -> None:
    p = sub.add_parser(
        "filters",
        help="why many filters: classic filters (edges, blur, sharpen) applied to a real image",
        description=("Apply vertical- and horizontal-edge, blur and sharpen filters to a Fashion-MNIST test "
                     "image (a synthetic image when the data set is not available) and show, as numbers, "
                     "where each responds strongly and where it does not."),
    )
    p.add_argument("--index", type=count, default=0, metavar="N", help="which test image (default 0)")
    p.add_argument("--synthetic", action="store_true", help="use the image drawn in code")
    add_output_options(p)
    p.set_defaults(run=_run_filters)


def _fashion_image(index: int) -> tuple[Any, str] | None:
    """Fashion-MNIST test image ``index`` (uint8) and its description, or None without the data."""
    from cnnlab.data import DATASETS, DatasetNotFoundError, load_mnist

    try:
        x, y = load_mnist("fashion-mnist", "test")
    except (DatasetNotFoundError, OSError, ValueError):
        return None
    if index >= len(x):
        raise CommandError(f"cnnlab filters: --index must be below {len(x)} (the test images), got {index}")
    return x[index], f"Fashion-MNIST test image {index} ({DATASETS['fashion-mnist'].classes[int(y[index])]})"


def _run_filters(args: argparse.Namespace) -> int:
    from cnnlab.explain import filter_bank

    found = None if args.synthetic else _fashion_image(args.index)
    write(_render(filter_bank(found[0], source=found[1]) if found else filter_bank(), args))
    return 0


def add_flip(sub: Any) -> None:
    p = sub.add_parser(
        "flip",
        help="the network learns the flipped filter: train with correlation and with convolution",
        description=("Train one filter twice on the same data, once with cross-correlation and once with true "
                     "convolution, from starting filters that are each other's flip: the learned filters are "
                     "flipped copies and the losses are equal."),
    )
    p.add_argument("--steps", type=positive_int, default=150, metavar="N", help="gradient steps (default 150)")
    p.add_argument("--seed", type=count, default=0, metavar="N")
    add_output_options(p)
    p.set_defaults(run=_run_flip)


def _run_flip(args: argparse.Namespace) -> int:
    from cnnlab.explain import flip_experiment

    try:
        result = flip_experiment(args.steps, seed=args.seed)
    except ValueError as exc:
        raise CommandError(f"cnnlab {exc}") from None
    write(_render(result, args))
    return 0


def add_scale(sub: Any) -> None:
    p = sub.add_parser(
        "scale",
        help="object size, measured: accuracy on test images rescaled 0.5x-1.5x, with and without augmentation",
        description=("Train a small CNN on Fashion-MNIST (or MNIST) twice, without and with random rescaling of "
                     "the training images, and report its accuracy on test images zoomed by each factor."),
    )
    p.add_argument("--data", default="fashion-mnist", choices=("fashion-mnist", "mnist", "kmnist"))
    p.add_argument("--train", type=positive_int, default=6000, metavar="N", help="training images (default 6000)")
    p.add_argument("--test", type=positive_int, default=1000, metavar="N", help="test images (default 1000)")
    p.add_argument("--epochs", type=positive_int, default=3, metavar="N", help="epochs (default 3)")
    p.add_argument("--scales", type=_numbers, default=[0.5, 0.75, 1.0, 1.25, 1.5], metavar="F,F,...")
    p.add_argument("--seed", type=count, default=0, metavar="N")
    add_output_options(p)
    p.set_defaults(run=_run_scale)


def _run_scale(args: argparse.Namespace) -> int:
    from cnnlab.data import DataError, load_dataset
    from cnnlab.explain import scale_experiment

    try:
        d = load_dataset(args.data)
        result = scale_experiment(d.x_train[:args.train], d.y_train[:args.train], d.x_test[:args.test],
                                  d.y_test[:args.test], epochs=args.epochs, scales=args.scales, seed=args.seed,
                                  data=args.data)
    except (DataError, ValueError) as exc:
        raise CommandError(f"cnnlab scale: {str(exc).splitlines()[0]}") from None
    write(_render(result, args))
    return 0


# ---------------------------------------------------------------------------------------------
# cnnlab continuous

_CONTINUOUS_EPILOG = """\
signals are read safely (nothing is run as Python): numbers, t, pi, E, the parameters a b c k w T,
+ - * / ^ and the functions rect tri Heaviside (u, step) exp sin cos tan sqrt log Abs sign Max Min
sinc gauss.

example:
  cnnlab continuous "rect(t)" "exp(-t)*Heaviside(t)"
"""


def add_continuous(sub: Any) -> None:
    p = sub.add_parser(
        "continuous",
        help="continuous convolution of two signals: the closed form and sampled sums converging to it",
        description=("The continuous convolution (or cross-correlation) of two signals in t, in closed form "
                     "(SymPy), and the discrete sums of their samples approaching it as the step shrinks."),
        epilog=_CONTINUOUS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _accept_negative_values(p)
    p.add_argument("f", help="the first signal, e.g. rect(t)")
    p.add_argument("g", help="the second signal, e.g. exp(-t)*Heaviside(t)")
    p.add_argument("--correlate", action="store_true", help="cross-correlation instead of convolution")
    p.add_argument("--steps", type=_numbers, default=[0.5, 0.25, 0.125, 0.0625], metavar="H,H,...",
                   help="sampling steps (default 0.5,0.25,0.125,0.0625)")
    p.add_argument("--at", type=_numbers, default=[-1.0, 0.0, 0.5, 1.0, 2.0], metavar="T,T,...",
                   help="where to compare (default -1,0,0.5,1,2)")
    add_output_options(p)
    p.set_defaults(run=_run_continuous)


CONTINUOUS_SECONDS = 30
"""How long SymPy may work on one request before the command gives up."""


class _TookTooLong(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _TookTooLong


def _run_continuous(args: argparse.Namespace) -> int:
    import signal
    import threading

    from cnnlab.explain import continuous_report

    timed = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if timed:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(CONTINUOUS_SECONDS)
    try:
        result = continuous_report(args.f, args.g, op="correlate" if args.correlate else "convolve",
                                   steps=args.steps, t_values=args.at)
    except (ValueError, TypeError) as exc:
        raise CommandError(f"cnnlab {str(exc).splitlines()[0]}") from None
    except ImportError:
        raise CommandError("cnnlab continuous: needs SymPy (pip install 'cnnlab[explain]')") from None
    except _TookTooLong:
        raise CommandError(f"cnnlab continuous: no result within {CONTINUOUS_SECONDS} s; try simpler signals") from None
    finally:
        if timed:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    write(_render(result, args))
    return 0
