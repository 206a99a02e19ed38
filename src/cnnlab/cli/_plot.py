"""``cnnlab plot``: figures from the command line (PNG, SVG, or a GIF of the sliding window).

One-line errors only; the figures are :mod:`cnnlab.viz`'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cnnlab.cli._common import CommandError, count, ints, padding

_EPILOG = """\
examples:
  cnnlab plot window --out window.gif                       # the lecture's example, animated
  cnnlab plot window --input "1 2 3; 4 5 6; 7 8 9" --filter "1 0; 0 1" --op conv_transpose --stride 2 --out t.gif
  cnnlab plot window --input "1 2 3 4; 5 6 7 8" --op max_pool --padding "0,0;1,1" --frame 1 --out pool.svg
  cnnlab plot filters runs/RUN/best.safetensors --out filters.png
  cnnlab plot maps runs/RUN/best.safetensors --index 7 --out maps.png
  cnnlab plot filter-bank runs/RUN/best.safetensors --index 0 --out bank.png
  cnnlab plot curves runs/RUN --out curves.png
  cnnlab plot run runs/RUN                                   # curves, confusion matrix, most wrong
"""


def _matrix(text: str) -> Any:
    from cnnlab.explain import MatrixError, parse_matrix

    try:
        return parse_matrix(text)
    except MatrixError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_plot(sub: Any) -> None:
    """Declare ``cnnlab plot``."""
    p = sub.add_parser("plot", help="draw figures: sliding window, filters, feature maps, training",
                       description="Draw a figure with matplotlib: PNG or SVG by the suffix of --out "
                                   "(the sliding window also as an animated GIF or a folder of frames).",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="figure", metavar="FIGURE", required=True)

    w = kinds.add_parser("window", help="the sliding window of a conv, transposed conv or pooling")
    w.add_argument("--input", type=_matrix, default=None, metavar="M",
                   help='rows separated by ";" (default: the lecture\'s)')
    w.add_argument("--filter", type=_matrix, default=None, metavar="M", help="the kernel (default: the lecture's)")
    w.add_argument("--op", choices=("conv", "conv_transpose", "max_pool", "avg_pool"), default="conv")
    w.add_argument("--mode", choices=("correlate", "convolve"), default="correlate")
    w.add_argument("--stride", type=ints, default=None, metavar="S")
    w.add_argument("--padding", type=padding, default=0, metavar="P",
                   help="P, PH,PW, (lo, hi) pairs TOP,BOTTOM;LEFT,RIGHT, or same/valid/full (conv)")
    w.add_argument("--dilation", type=ints, default=1, metavar="D")
    w.add_argument("--output-padding", type=ints, default=0, metavar="P", help="for conv_transpose")
    w.add_argument("--kernel-size", type=ints, default=2, metavar="K", help="for the pools")
    w.add_argument("--ceil-mode", action="store_true", help="for the pools")
    w.add_argument("--frame", type=count, default=None, metavar="N", help="one frame (default: the last) for .png/.svg")
    w.add_argument("--out", required=True, metavar="PATH", help="a .png, .svg, .gif, or a folder for all frames")
    w.set_defaults(run=_run_window)

    f = kinds.add_parser("filters", help="a model's conv filters as a grid")
    f.add_argument("checkpoint")
    f.add_argument("--layer", type=count, default=None, metavar="N", help="which conv layer (0: the first)")
    f.add_argument("--out", required=True, metavar="PATH")
    f.set_defaults(run=_run_filters)

    for name, helptext, runner in (("maps", "every layer's feature maps for one input", _run_maps),
                                   ("filter-bank", "classic filters next to the model's first-layer filters",
                                    _run_bank)):
        m = kinds.add_parser(name, help=helptext)
        m.add_argument("checkpoint")
        src = m.add_mutually_exclusive_group()
        src.add_argument("--index", type=count, default=0, metavar="N", help="test example N of the model's data set")
        src.add_argument("--image", default=None, metavar="FILE", help="an image file (resized to the model's input)")
        m.add_argument("--out", required=True, metavar="PATH")
        m.set_defaults(run=runner)

    c = kinds.add_parser("curves", help="loss, accuracy and learning rate of a run")
    c.add_argument("run_dir", metavar="RUN", help="a run folder (with metrics.jsonl)")
    c.add_argument("--out", required=True, metavar="PATH")
    c.set_defaults(run=_run_curves)

    r = kinds.add_parser("run", help="a run's curves, confusion matrix and most-wrong test examples")
    r.add_argument("run_dir", metavar="RUN", help="a run folder written by cnnlab train")
    r.add_argument("--checkpoint", default="last.safetensors", metavar="NAME",
                   help="the model to evaluate (default last.safetensors: the final model)")
    r.set_defaults(run=_run_run)


def _viz() -> Any:
    try:
        from cnnlab import viz
    except ImportError as exc:
        raise CommandError(f"cnnlab plot: {exc}") from None
    return viz


def _guard(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError, OSError) as exc:
        raise CommandError(f"cnnlab plot: {exc}") from None


def _run_window(args: argparse.Namespace) -> int:
    from cnnlab.explain import LECTURE_FILTER, LECTURE_INPUT

    viz = _viz()
    x = args.input if args.input is not None else [list(r) for r in LECTURE_INPUT]
    kernel = args.filter if args.filter is not None else [list(r) for r in LECTURE_FILTER]
    pool = args.op.endswith("pool")
    sw = _guard(viz.sliding_window, x, None if pool else kernel, op=args.op, mode=args.mode, stride=args.stride,
                padding=args.padding, dilation=args.dilation, output_padding=args.output_padding,
                kernel_size=args.kernel_size, ceil_mode=args.ceil_mode)
    out = Path(args.out)
    if out.suffix.lower() == ".gif":
        _guard(sw.save_gif, out)
        print(f"wrote {out} ({len(sw)} frames)")
    elif out.suffix.lower() in (".png", ".svg"):
        frame = len(sw) - 1 if args.frame is None else args.frame
        _guard(sw.plot, frame, out)
        print(f"wrote {out} (frame {frame} of {len(sw)}: {sw.frames[frame].text})")
    elif out.suffix:
        raise CommandError(f"cnnlab plot: --out must end in .png, .svg or .gif, or name a folder for the frames, "
                           f"got {out}")
    else:
        paths = _guard(sw.save_frames, out)
        print(f"wrote {len(paths)} frames to {out}/")
    for line in sw.shape_text:
        print(line)
    return 0


def _model(viz: Any, path: str) -> tuple[Any, dict[str, Any]]:
    import cnnlab

    try:
        model = viz.load_checkpoint(path)
        meta = dict((cnnlab.load_metadata(path) or {}).get("metadata") or {})
    except (ValueError, OSError) as exc:
        raise CommandError(f"cnnlab plot: cannot load {path}: {exc}") from None
    return model, meta


def _example(viz: Any, args: argparse.Namespace, meta: dict[str, Any]) -> tuple[Any, str]:
    """The raw example (unnormalised) and a caption."""
    import numpy as np

    if args.image is not None:
        shape = meta.get("input_shape")
        if not isinstance(shape, list) or len(shape) != 3:
            raise CommandError(f"cnnlab plot: --image needs a model of images; this one takes {shape}")
        try:
            from PIL import Image

            with Image.open(args.image) as img:
                grey = img.convert("L").resize((shape[2], shape[1]))
        except (OSError, ValueError) as exc:
            raise CommandError(f"cnnlab plot: cannot read {args.image}: {exc}") from None
        return np.asarray(grey, dtype=np.float32)[None] / 255, args.image
    try:
        x, y = viz.load_test_set(meta.get("data", ""))
    except (ValueError, ImportError, OSError) as exc:
        raise CommandError(f"cnnlab plot: {exc}; give --image FILE") from None
    if not 0 <= args.index < len(x):
        raise CommandError(f"cnnlab plot: --index must be in [0, {len(x) - 1}], got {args.index}")
    return x[args.index], f"test example {args.index} (label {int(y[args.index])})"


def _run_filters(args: argparse.Namespace) -> int:
    viz = _viz()
    model, _ = _model(viz, args.checkpoint)
    _guard(viz.plot_filters, model, args.out, layer=args.layer)
    print(f"wrote {args.out}")
    return 0


def _run_maps(args: argparse.Namespace) -> int:
    viz = _viz()
    model, meta = _model(viz, args.checkpoint)
    x, caption = _example(viz, args, meta)
    _guard(viz.plot_feature_maps, model, _guard(viz.prepare_input, meta, x), args.out)
    print(f"wrote {args.out} ({caption})")
    return 0


def _run_bank(args: argparse.Namespace) -> int:
    viz = _viz()
    model, meta = _model(viz, args.checkpoint)
    x, caption = _example(viz, args, meta)
    if x.ndim != 3 or x.shape[0] != 1:
        raise CommandError(f"cnnlab plot: filter-bank needs a grey image model; this one takes "
                           f"{meta.get('input_shape')}")
    prepared = _guard(viz.prepare_input, meta, x)
    _guard(viz.plot_filter_bank, x[0], model, args.out, model_input=prepared[0])
    print(f"wrote {args.out} ({caption})")
    return 0


def _run_curves(args: argparse.Namespace) -> int:
    viz = _viz()
    _guard(viz.plot_training_curves, args.run_dir, args.out)
    print(f"wrote {args.out}")
    return 0


def _run_run(args: argparse.Namespace) -> int:
    viz = _viz()
    written = _guard(viz.plot_run, args.run_dir, args.checkpoint)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
