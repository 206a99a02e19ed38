"""The teaching commands: ``demo``, ``explain``, ``backprop``, ``matrix`` and ``problem``."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from cnnlab.cli._common import (
    CommandError,
    color,
    count,
    ints,
    padding,
    positive_int,
    real,
    retag,
    write,
)
from cnnlab.cli._common import add_output_options as _common_output_options


def add_output_options(p: argparse.ArgumentParser) -> None:
    """The shared output options, and ``--standalone`` for a complete LaTeX document."""
    _common_output_options(p)
    p.add_argument("--standalone", action="store_true",
                   help="with --format latex: a complete document for pdflatex (default: a "
                        "fragment for any document that loads amsmath)")


def _render(result: Any, args: argparse.Namespace, **extra: Any) -> str:
    """``result`` rendered as the output options ask."""
    if args.standalone and args.format != "latex":
        raise CommandError(f"cnnlab {args.command}: --standalone needs --format latex")
    return result.render(args.format, cells=args.cells, color=color(args.color),
                         standalone=args.standalone, **extra)


# ---------------------------------------------------------------------------------------------
# cnnlab demo


def add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="the lecture's example, worked out step by step",
        description=(
            "Work out the lecture's example by hand: I = [[1,0,2],[3,1,0],[0,0,4]], "
            "F = [[1,0],[0,1]], stride 1, ReLU, 2x2 max-pool with stride 1. Shows every window "
            "of the conv with its products and sum, Conv(I), ReLU, the pooling window and the "
            "answer 5, and how a true convolution (flipped filter) compares. Then (text format) "
            "a short MNIST-1D training of the paper's CNN, compared with the published accuracies."
        ),
    )
    add_output_options(p)
    p.add_argument("--no-train", action="store_true",
                   help="skip the short MNIST-1D training after the lecture's example")
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from cnnlab.explain import lecture_example
    from cnnlab.training.recipes import demo_training, demo_warmup

    train = args.format == "text" and not args.no_train
    # the training's kernels compile in a second process while the example is worked out (a
    # first run on a machine compiles them all)
    with demo_warmup(train):
        write(_render(lecture_example(), args))
        if train:
            demo_training(write)
    return 0


# ---------------------------------------------------------------------------------------------
# cnnlab explain

_EXPLAIN_EPILOG = """\
matrices: [[1,0,2],[3,1,0],[0,0,4]] or "1 0 2; 3 1 0; 0 0 4"; entries may be fractions (1/3);
a file (.json, .csv, .txt, .npy), or - to read stdin. A 3-D --input is a stack of channels;
with --volume it is one volume (D, H, W) (4-D: with channels) and filters are (kD, kH, kW).

example:
  cnnlab explain --input "[[1,0,2],[3,1,0],[0,0,4]]" --filter "[[1,0],[0,1]]" \\
      --stride 1 --padding 0 --activation relu --pool max --pool-size 2 --pool-stride 1
  cnnlab explain --input vol.npy --filter f.npy --volume --activation relu --pool max
"""


def add_explain(sub: Any) -> None:
    p = sub.add_parser(
        "explain",
        help="work out any conv -> activation -> pool pipeline by hand",
        description=(
            "Work out a conv -> activation -> pooling pipeline on your own matrices: every "
            "window, product and sum, every intermediate matrix, and the output-size arithmetic. "
            "Integers and fractions stay exact."
        ),
        epilog=_EXPLAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_pipeline_options(p, both=True)
    add_output_options(p)
    p.set_defaults(run=_run_explain)


# argparse reads any argument that starts with '-' and is not a plain negative number (-1, -.5)
# as an option, so `--bias -1,2` would lose its value.  These commands have no option that looks
# like a number, so a '-' followed by numbers and separators is a value here.
_NEGATIVE_VALUES = re.compile(r"^-\.?\d[\d\s.,;/eE+-]*$")


def _accept_negative_values(p: argparse.ArgumentParser) -> None:
    """Let ``p`` take values such as ``-1,2`` or ``"-1 2; 3 4"`` after an option."""
    p._negative_number_matcher = _NEGATIVE_VALUES  # noqa: SLF001 - argparse has no public hook


def _add_pipeline_options(p: argparse.ArgumentParser, both: bool) -> None:
    """The matrices and the conv -> activation -> pooling options of ``explain`` (``both``: offer
    ``--both``)."""
    _accept_negative_values(p)
    p.add_argument("-i", "--input", required=True, metavar="MATRIX",
                   help="the input: a matrix, a stack of channels, a file, or - for stdin")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="MATRIX",
                   help="a filter (repeat for several filters); without one there is no conv")
    p.add_argument("--bias", default=None, metavar="NUMBERS",
                   help="one bias per filter, e.g. 1 or 1,0,-1")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--convolve", action="store_true",
                      help="compute a true convolution (flipped filter) instead of the CNN "
                           "layer's cross-correlation")
    if both:
        mode.add_argument("--both", action="store_true",
                          help="show cross-correlation and convolution side by side")
    else:
        p.set_defaults(both=False)
    p.add_argument("--volume", action="store_true",
                   help="a 3-D --input is one volume (D, H, W), a 4-D one a volume with channels "
                        "(C, D, H, W); filters have a depth axis (kD, kH, kW)")
    p.add_argument("--stride", type=ints, default=1, help="conv stride: 1 or 2,1 (default 1)")
    p.add_argument("--padding", type=padding, default=0,
                   help="conv padding: 1, 1,2, (lo,hi) pairs 0,1;1,0, same, valid or full")
    p.add_argument("--dilation", type=ints, default=1, help="conv dilation (default 1)")
    p.add_argument("--padding-mode", default="zeros",
                   choices=("zeros", "reflect", "replicate", "circular"))
    p.add_argument("--activation", default="none",
                   choices=("none", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh"))
    p.add_argument("--negative-slope", type=real, default=0.01, help="for leaky_relu")
    p.add_argument("--alpha", type=real, default=1.0, help="for elu")
    p.add_argument("--approximate", choices=("none", "tanh"), default="none", help="for gelu")
    p.add_argument("--pool", choices=("none", "max", "avg"), default="none")
    p.add_argument("--pool-size", type=ints, default=2, help="pooling window (default 2)")
    p.add_argument("--pool-stride", type=ints, default=None,
                   help="pooling stride (default: the window size)")
    p.add_argument("--pool-padding", type=ints, default=0, help="pooling padding (default 0)")
    p.add_argument("--pool-dilation", type=ints, default=1, help="pooling dilation (default 1)")
    p.add_argument("--ceil-mode", action="store_true", help="round the pooled size up")
    p.add_argument("--exclude-pad", action="store_true",
                   help="average pooling: padding zeros do not count in the divisor")
    p.add_argument("--divisor", type=int, default=None,
                   help="average pooling: divide every sum by this number")


def _matrices(args: argparse.Namespace, command: str = "explain") -> tuple[Any, list, Any]:
    """The input, filters and bias, read and checked, as arrays (``command`` names the
    subcommand in error messages)."""
    import numpy as np

    from cnnlab.explain import MatrixError, has_fraction, read_source, to_array

    sources = [("--input", args.input)]
    sources += [("--filter" if len(args.filter) == 1 else f"--filter {n}", f)
                for n, f in enumerate(args.filter, start=1)]
    if args.bias is not None:
        sources.append(("--bias", args.bias))
    if sum(1 for _, text in sources if text == "-") > 1:
        raise CommandError(f"cnnlab {command}: only one matrix can be read from stdin ('-')")
    read = []
    for name, text in sources:
        try:
            read.append((name, read_source(text, sys.stdin)))
        except MatrixError as exc:
            raise CommandError(f"cnnlab {command}: {name} {exc}") from None
    exact = any(isinstance(tree, list) and has_fraction(tree) for _, tree in read)
    arrays = {}
    for name, tree in read:
        try:
            arrays[name] = tree if isinstance(tree, np.ndarray) else to_array(tree, exact)
        except MatrixError as exc:
            raise CommandError(f"cnnlab {command}: {name} {exc}") from None
    x = arrays.pop("--input")
    if x.ndim == 2 and x.shape[0] == 1 and getattr(args, "signal", False):
        x = x[0]
    volume = getattr(args, "volume", False)
    if volume and x.ndim not in (3, 4):
        raise CommandError(
            f"cnnlab {command}: --volume needs a 3-D --input (D, H, W) or a 4-D one (C, D, H, W), "
            f"got {x.ndim}-D with shape {x.shape}"
        )
    if not volume and x.ndim not in (1, 2, 3):
        raise CommandError(
            f"cnnlab {command}: --input must be a 1-D signal, a 2-D matrix or a 3-D stack of "
            f"channels, got {x.ndim}-D with shape {x.shape}"
        )
    bias = arrays.pop("--bias", None)
    if bias is not None:
        if bias.ndim > 1 and bias.size == bias.shape[-1]:
            bias = bias.reshape(-1)
        if bias.ndim > 1:
            raise CommandError(f"cnnlab {command}: --bias must be numbers, got shape {bias.shape}")
    # a filter typed as one row ("1 0 -1") is a 1-D filter for a signal
    filters = [(name, f[0] if x.ndim == 1 and f.ndim == 2 and f.shape[0] == 1 else f)
               for name, f in arrays.items()]
    for name, f in filters:
        if x.ndim == 1 and f.ndim != 1:
            raise CommandError(
                f"cnnlab {command}: {name} must be a 1-D filter for a 1-D --input, got "
                f"{f.ndim}-D with shape {f.shape}"
            )
        if volume and f.ndim not in (3, 4, 5):
            raise CommandError(
                f"cnnlab {command}: {name} must be a 3-D filter (kD, kH, kW) for a volume (or a "
                f"4-D/5-D stack), got {f.ndim}-D with shape {f.shape}"
            )
        if not volume and x.ndim > 1 and f.ndim not in (2, 3, 4):
            raise CommandError(
                f"cnnlab {command}: {name} must be a 2-D filter (or 3-D/4-D stack), got "
                f"{f.ndim}-D with shape {f.shape}"
            )
        if f.shape != filters[0][1].shape:
            raise CommandError(
                f"cnnlab {command}: {name} has shape {f.shape}, expected {filters[0][1].shape} "
                f"like the first filter"
            )
    return x, [f for _, f in filters], bias


def _stages(args: argparse.Namespace, filters: list, bias: Any, command: str = "explain") -> list:
    import numpy as np

    from cnnlab.explain import Activation, Conv, Pool

    stages: list = []
    if filters:
        weights = filters[0] if len(filters) == 1 else np.stack(filters)
        stages.append(Conv(weights, mode="convolve" if args.convolve else "correlate",
                           stride=args.stride, padding=args.padding, dilation=args.dilation,
                           bias=bias, padding_mode=args.padding_mode))
    elif bias is not None:
        raise CommandError(f"cnnlab {command}: --bias needs a --filter")
    if args.activation != "none":
        stages.append(Activation(args.activation, negative_slope=args.negative_slope,
                                 alpha=args.alpha, approximate=args.approximate))
    if args.pool != "none":
        stages.append(Pool(args.pool, args.pool_size, stride=args.pool_stride,
                           padding=args.pool_padding, dilation=args.pool_dilation,
                           ceil_mode=args.ceil_mode, count_include_pad=not args.exclude_pad,
                           divisor_override=args.divisor))
    if not stages:
        raise CommandError(
            f"cnnlab {command}: nothing to explain: give a --filter, an --activation or a --pool"
        )
    if args.both and not filters:
        raise CommandError(f"cnnlab {command}: --both needs a --filter")
    return stages


def _run_explain(args: argparse.Namespace) -> int:
    from cnnlab.explain import compare, explain

    x, filters, bias = _matrices(args)
    stages = _stages(args, filters, bias)
    if args.volume and args.both:
        raise CommandError("cnnlab explain: --both is not supported with --volume; run it once "
                           "with and once without --convolve")
    try:
        result = (compare(x, stages, cells=args.cells) if args.both
                  else explain(x, stages, cells=args.cells, volume=args.volume))
    except (ValueError, TypeError) as exc:
        raise CommandError(f"cnnlab {exc}") from None
    except MemoryError:
        raise CommandError("cnnlab explain: not enough memory for this input") from None
    write(_render(result, args))
    return 0


# ---------------------------------------------------------------------------------------------
# cnnlab backprop


_BACKPROP_EPILOG = """\
the pipeline options are those of cnnlab explain. Losses: sum (every output cell counts once),
mse (squared error to --target, a matrix of the output's shape), cross_entropy (the output's cells,
read row by row, are class scores; --target is the class index).

example (the lecture's pipeline):
  cnnlab backprop --input "[[1,0,2],[3,1,0],[0,0,4]]" --filter "[[1,0],[0,1]]" \\
      --activation relu --pool max --pool-size 2 --pool-stride 1
"""


def add_backprop(sub: Any) -> None:
    p = sub.add_parser(
        "backprop",
        help="work out the gradients of a conv -> activation -> pool pipeline by hand",
        description=(
            "Backprop by hand: the gradient of a loss with respect to the input, the filters and "
            "the bias, step by step: the loss, pooling routing the gradient, the activation "
            "masking it, the filter gradient as a correlation and the input gradient as a full "
            "convolution with the flipped filter. Integers and fractions stay exact."
        ),
        epilog=_BACKPROP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_pipeline_options(p, both=False)
    p.add_argument("--loss", choices=("sum", "mse", "cross_entropy"), default="sum",
                   help="the loss of the output (default sum)")
    p.add_argument("--target", default=None, metavar="TARGET",
                   help="mse: a matrix of the output's shape; cross_entropy: the class index")
    p.add_argument("--reduction", choices=("mean", "sum"), default="mean",
                   help="mse: average (default) or add up the squared errors")
    add_output_options(p)
    p.set_defaults(run=_run_backprop)


def _target(args: argparse.Namespace) -> Any:
    from cnnlab.explain import MatrixError, has_fraction, read_source, to_array

    if args.target is None:
        if args.loss != "sum":
            raise CommandError(f"cnnlab backprop: --loss {args.loss} needs a --target")
        return None
    if args.loss == "sum":
        raise CommandError("cnnlab backprop: --loss sum takes no --target")
    if args.loss == "cross_entropy":
        try:
            return int(args.target)
        except ValueError:
            raise CommandError(
                f"cnnlab backprop: --target must be a class index (a whole number) for "
                f"cross_entropy, got {args.target!r}"
            ) from None
    if args.target == "-" and "-" in [args.input, *args.filter, args.bias]:
        raise CommandError("cnnlab backprop: only one matrix can be read from stdin ('-')")
    try:
        tree = read_source(args.target, sys.stdin)
        return tree if not isinstance(tree, list) else to_array(tree, has_fraction(tree))
    except MatrixError as exc:
        raise CommandError(f"cnnlab backprop: --target {exc}") from None


def _run_backprop(args: argparse.Namespace) -> int:
    from cnnlab.explain import backprop

    target = _target(args)
    x, filters, bias = _matrices(args, "backprop")
    stages = _stages(args, filters, bias, "backprop")
    try:
        result = backprop(x, stages, loss=args.loss, target=target, reduction=args.reduction,
                          cells=args.cells, volume=args.volume)
    except (ValueError, TypeError) as exc:
        raise retag(exc, "backprop") from None
    except MemoryError:
        raise CommandError("cnnlab backprop: not enough memory for this input") from None
    write(_render(result, args))
    return 0


# ---------------------------------------------------------------------------------------------
# cnnlab matrix


def add_matrix(sub: Any) -> None:
    p = sub.add_parser(
        "matrix",
        help="a conv as the matrix M: M vec(I) = vec(Conv(I)), and M^T as its gradient",
        description=(
            "Show the conv stage of a pipeline as its matrix M (conv_matrix), check that "
            "M vec(I) is the conv's output and that M^T vec(g) is the input gradient the conv's "
            "backward computes (the transposed convolution). Pipeline options as for explain."
        ),
    )
    _add_pipeline_options(p, both=False)
    p.add_argument("--grad", default=None, metavar="MATRIX",
                   help="the upstream gradient g (the conv output's shape); default all ones")
    add_output_options(p)
    p.set_defaults(run=_run_matrix)


def _run_matrix(args: argparse.Namespace) -> int:
    from cnnlab.explain import MatrixError, explain, has_fraction, matrix_view, read_source, to_array

    x, filters, bias = _matrices(args, "matrix")
    if not filters:
        raise CommandError("cnnlab matrix: the matrix form needs a --filter")
    grad = None
    if args.grad is not None:
        try:
            tree = read_source(args.grad, sys.stdin)
            grad = tree if not isinstance(tree, list) else to_array(tree, has_fraction(tree))
        except MatrixError as exc:
            raise CommandError(f"cnnlab matrix: --grad {exc}") from None
    stages = _stages(args, filters, bias, "matrix")
    try:
        result = matrix_view(explain(x, stages, cells=args.cells, volume=args.volume), grad_out=grad)
    except (ValueError, TypeError) as exc:
        raise retag(exc, "matrix") from None
    except MemoryError:
        raise CommandError("cnnlab matrix: not enough memory for this input") from None
    write(_render(result, args))
    return 0


# ---------------------------------------------------------------------------------------------
# cnnlab problem


def _difficulty(text: str) -> int:
    if text not in ("1", "2", "3"):
        raise argparse.ArgumentTypeError(f"expected 1, 2 or 3, got {text!r}")
    return int(text)


def add_problem(sub: Any) -> None:
    from cnnlab.explain.problems import KINDS, MAX_COUNT

    p = sub.add_parser(
        "problem",
        help="fresh practice problems like the lecture's, with answers and worked solutions",
        description=(
            "Generate problems with small integer matrices and integer answers: conv outputs, "
            "pooling, the lecture's Pool(ReLU(Conv(I))), backprop, output shapes. The same seed "
            "gives the same problems; --answers appends the answer key and worked solutions."
        ),
    )
    p.add_argument("--seed", type=count, default=None, metavar="N",
                   help="the problem set's seed (default: a fresh one, printed in the title)")
    p.add_argument("--kind", choices=KINDS, default="conv", help="what to practise (default conv)")
    p.add_argument("--difficulty", type=_difficulty, default=1, metavar="{1,2,3}",
                   help="1 (small, stride 1) to 3 (channels, stride, padding, bias); default 1")
    p.add_argument("--count", type=positive_int, default=5, metavar="N",
                   help=f"number of problems, 1 to {MAX_COUNT} (default 5)")
    p.add_argument("--answers", action="store_true",
                   help="append the answer key and the worked solutions")
    add_output_options(p)
    p.set_defaults(run=_run_problem)


def _run_problem(args: argparse.Namespace) -> int:
    import secrets

    from cnnlab.explain.problems import generate

    seed = secrets.randbelow(1_000_000) if args.seed is None else args.seed
    try:
        problems = generate(seed, kind=args.kind, difficulty=args.difficulty, count=args.count)
    except (ValueError, TypeError) as exc:
        raise retag(exc, "problem") from None
    write(_render(problems, args, answers=args.answers))
    return 0
