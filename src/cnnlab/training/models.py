"""Built-in models and a compact architecture spec language: ``build_model("lenet5", (1, 28, 28))``.

Built-in models (:data:`MODELS`), each built for an input shape ``(C, *spatial)`` (no batch
dim) and a number of classes:

``mnist1d-cnn``
    The CNN of the MNIST-1D paper (Greydanus and Kobak, "Scaling down deep learning with
    MNIST-1D"; ``ConvBase`` in the authors' ``notebooks/models.py``): three ``Conv1d`` with 25
    channels, kernels 5, 3, 3, stride 2, padding 1, each followed by ReLU, then one ``Linear``
    from the flattened ``25 x 5`` features to the classes.  5,210 parameters for ``(1, 40)``.
    The authors reshape each signal ``(N, 40)`` to ``(N, 1, 40)`` inside ``forward``; here the
    data pipeline gives every MNIST-1D signal that channel axis, so the model is a plain
    :class:`~cnnlab.nn.Sequential`.
``mnist1d-mlp``
    The paper's MLP (``MLPBase``): ``Linear(40, 100)``, ReLU, a residual block
    ``h + ReLU(Linear(100, 100)(h))``, then ``Linear(100, 10)``; 15,210 parameters.
``mnist1d-logreg``
    The paper's logistic-regression baseline (``LinearBase``): one ``Linear(40, 10)``; 410
    parameters.
``mnist1d-cnn-bn``
    Our stronger MNIST-1D CNN (the benchmark's "best recipe"): the paper's layout widened to 64
    channels, with BatchNorm after each convolution and dropout before the classifier.
``lenet5``
    LeNet-5 for 28 x 28 images: ``Conv2d(C, 6, 5, padding=2)``, ReLU, max-pool 2,
    ``Conv2d(6, 16, 5)``, ReLU, max-pool 2, then ``Linear`` 400 -> 120 -> 84 -> classes with ReLU
    between (the modern variant: ReLU and max-pooling instead of LeCun's scaled tanh and
    trainable sub-sampling).  61,706 parameters for ``(1, 28, 28)``.
``convnet``
    A small CNN for 28 x 28 images (Fashion-MNIST): three stages of conv3x3 (padding 1, no bias),
    BatchNorm, ReLU and 2 x 2 average pooling, widths 24, 48, 96 (28 -> 14 -> 7 -> 3), then
    dropout 0.3 and ``Linear(864, classes)``; 61,042 parameters.  One convolution per stage,
    average rather than max pooling and these widths keep an epoch of Fashion-MNIST under a
    minute on a 2-core CPU (a conv32-conv32-pool-conv64-conv64-pool network costs 5 times as
    much there), so that the recipe's 24 epochs (93.5% test accuracy, about 6 minutes) fit the 15-minute budget
    of the benchmark (docs/RESULTS.md).

Architecture specs: a model can also be written as a string of layers joined by ``-``:

==================  ============================================================================
token               layer
==================  ============================================================================
``c32k3``           convolution, 32 output channels, kernel 3; optional ``s2`` stride,
                    ``p1`` padding, ``d2`` dilation, ``nb`` no bias, in that order:
                    ``c64k3s2p1``, ``c32k3p1nb``.  Conv1d or Conv2d by the input's dims.
``mp2``, ``ap2``    max- or average-pooling with kernel 2 (stride = kernel); ``mp3s2``: stride 2
``gap``             global average pooling, flattened: ``(C, *spatial) -> (C,)``
``bn``              batch normalisation (BatchNorm1d or BatchNorm2d by the input's dims)
``relu``, ``tanh``, ``sigmoid``, ``gelu``, ``elu``, ``lrelu``   activations
``flat``            flatten ``(C, *spatial) -> (C * prod(spatial),)``
``fc10``            fully connected layer with 10 outputs (its input must be flat); ``fc10nb``:
                    no bias
``drop0.5``         dropout with probability 0.5
==================  ============================================================================

Input channels and features are inferred from the input shape, layer by layer; an invalid token
or a layer that does not fit its input raises :class:`SpecError` naming the token and its
position in the string.  So does a layer beyond the stated limits, checked before anything is
allocated: at most :data:`MAX_LAYER_PARAMETERS` (50 million) weights in one layer and at most
:data:`MAX_SAMPLE_VALUES` (16 million) values in one sample's output of a layer (``c99999999k3``
is refused at once instead of running out of memory).  The built model records itself with
``to_config`` (a checkpoint holds the architecture; see :func:`cnnlab.checkpoint.load_model`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab import nn
from cnnlab.autograd import no_grad
from cnnlab.functional import _backend
from cnnlab.nn import Residual

__all__ = [
    "MODELS",
    "ModelInfo",
    "Residual",
    "MAX_LAYER_PARAMETERS",
    "MAX_SAMPLE_VALUES",
    "SpecError",
    "build_model",
    "convnet",
    "lenet5",
    "mnist1d_cnn",
    "mnist1d_cnn_bn",
    "mnist1d_logreg",
    "mnist1d_mlp",
    "output_shape",
    "parse_spec",
]


# ---------------------------------------------------------------------------------------------
# shapes


def _check_shape(op: str, input_shape: Any) -> tuple[int, ...]:
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
        raise TypeError(f"{op}: input_shape must be a tuple of ints (C, *spatial), got {input_shape!r}")
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in input_shape):
        raise TypeError(f"{op}: input_shape must be a tuple of ints (C, *spatial), got {input_shape!r}")
    shape = tuple(int(n) for n in input_shape)
    if not 1 <= len(shape) <= 3 or min(shape) < 1:
        raise ValueError(f"{op}: input_shape must be 1 to 3 positive sizes (C, *spatial), got {shape}")
    return shape


def output_shape(model: nn.Module, input_shape: Sequence[int]) -> tuple[int, ...]:
    """The shape of one sample's output: ``model`` run in eval mode on zeros of ``(1, *input_shape)``.

    It runs on the NumPy kernels (:func:`cnnlab.functional._backend.using`): a shape needs no
    compiled kernel, and a model built here should not wait for Numba to compile the kernels of
    one sample (training compiles what it needs, possibly helped by
    :mod:`cnnlab.training._warmup`).

    Examples
    --------
    >>> output_shape(mnist1d_cnn(), (1, 40))
    (10,)
    """
    shape = _check_shape("output_shape", input_shape)
    was_training = model.training
    model.eval()
    try:
        with no_grad(), _backend.using("numpy"):
            out = model(np.zeros((1, *shape), dtype=np.float32))
    finally:
        model.train(was_training)
    return tuple(np.shape(getattr(out, "data", out)))[1:]


def _head(features: nn.Module, input_shape: tuple[int, ...], num_classes: int, **linear: Any) -> nn.Linear:
    """The final Linear layer, sized to the flattened output of ``features``."""
    flat = int(np.prod(output_shape(features, input_shape)))
    return nn.Linear(flat, num_classes, **linear)


def _check_classes(op: str, num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"{op}: num_classes must be an int, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"{op}: num_classes must be >= 1, got {num_classes}")
    return int(num_classes)


def _check_dims(op: str, shape: tuple[int, ...], spatial: int, example: str) -> None:
    if len(shape) != spatial + 1:
        kind = "signal" if spatial == 1 else "image"
        raise ValueError(f"{op}: expected a {kind} input shape like {example}, got {shape}")


# ---------------------------------------------------------------------------------------------
# built-in models


def mnist1d_cnn(input_shape: Sequence[int] = (1, 40), num_classes: int = 10, channels: int = 25) -> nn.Sequential:
    """The MNIST-1D paper's CNN (``ConvBase``): 3 x (Conv1d stride 2 + ReLU), then Linear.

    Examples
    --------
    >>> model = mnist1d_cnn()
    >>> sum(p.numel() for p in model.parameters())
    5210
    """
    shape = _check_shape("mnist1d_cnn", input_shape)
    _check_dims("mnist1d_cnn", shape, 1, "(1, 40)")
    c = channels
    features = nn.Sequential(
        nn.Conv1d(shape[0], c, 5, stride=2, padding=1), nn.ReLU(),
        nn.Conv1d(c, c, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv1d(c, c, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
    )
    return nn.Sequential(*features, _head(features, shape, _check_classes("mnist1d_cnn", num_classes)))


def mnist1d_cnn_bn(input_shape: Sequence[int] = (1, 40), num_classes: int = 10, channels: int = 64,
                   dropout: float = 0.2) -> nn.Sequential:
    """The paper's CNN layout, wider (64 channels), with BatchNorm after each conv and dropout.

    Examples
    --------
    >>> output_shape(mnist1d_cnn_bn(), (1, 40))
    (10,)
    """
    shape = _check_shape("mnist1d_cnn_bn", input_shape)
    _check_dims("mnist1d_cnn_bn", shape, 1, "(1, 40)")
    c = channels
    layers: list[nn.Module] = []
    for k, c_in in ((5, shape[0]), (3, c), (3, c)):
        layers += [nn.Conv1d(c_in, c, k, stride=2, padding=1, bias=False), nn.BatchNorm1d(c), nn.ReLU()]
    features = nn.Sequential(*layers, nn.Flatten())
    head = _head(features, shape, _check_classes("mnist1d_cnn_bn", num_classes))
    return nn.Sequential(*features, nn.Dropout(dropout), head)


def mnist1d_mlp(input_shape: Sequence[int] = (1, 40), num_classes: int = 10, hidden: int = 100) -> nn.Sequential:
    """The MNIST-1D paper's MLP (``MLPBase``): Linear, ReLU, residual Linear + ReLU, Linear.

    Examples
    --------
    >>> sum(p.numel() for p in mnist1d_mlp().parameters())
    15210
    """
    shape = _check_shape("mnist1d_mlp", input_shape)
    n_in = int(np.prod(shape))
    return nn.Sequential(
        nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(),
        Residual(nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())),
        nn.Linear(hidden, _check_classes("mnist1d_mlp", num_classes)),
    )


def mnist1d_logreg(input_shape: Sequence[int] = (1, 40), num_classes: int = 10) -> nn.Sequential:
    """Multinomial logistic regression (``LinearBase``): Flatten, then one Linear layer.

    Examples
    --------
    >>> sum(p.numel() for p in mnist1d_logreg().parameters())
    410
    """
    shape = _check_shape("mnist1d_logreg", input_shape)
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), _check_classes("mnist1d_logreg", num_classes)))


def lenet5(input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10) -> nn.Sequential:
    """LeNet-5 for 28 x 28 images (padding 2 on the first conv), with ReLU and max-pooling.

    Examples
    --------
    >>> sum(p.numel() for p in lenet5().parameters())
    61706
    """
    shape = _check_shape("lenet5", input_shape)
    _check_dims("lenet5", shape, 2, "(1, 28, 28)")
    features = nn.Sequential(
        nn.Conv2d(shape[0], 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    )
    flat = int(np.prod(output_shape(features, shape)))
    return nn.Sequential(
        *features, nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, _check_classes("lenet5", num_classes)),
    )


def convnet(input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, widths: Sequence[int] = (24, 48, 96),
            dropout: float = 0.3) -> nn.Sequential:
    """A small CNN: per width, conv3x3 + BatchNorm + ReLU + 2 x 2 average pooling; then dropout and Linear.

    Examples
    --------
    >>> model = convnet()
    >>> output_shape(model, (1, 28, 28)), sum(p.numel() for p in model.parameters())
    ((10,), 61042)
    """
    shape = _check_shape("convnet", input_shape)
    _check_dims("convnet", shape, 2, "(1, 28, 28)")
    layers: list[nn.Module] = []
    c_in = shape[0]
    for width in widths:
        layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                   nn.AvgPool2d(2)]
        c_in = width
    features = nn.Sequential(*layers, nn.Flatten())
    head = _head(features, shape, _check_classes("convnet", num_classes))
    return nn.Sequential(*features, nn.Dropout(dropout), head)


@dataclass(frozen=True)
class ModelInfo:
    """A built-in model: its builder, the input shape it is meant for, and a one-line description."""

    builder: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    description: str


MODELS: dict[str, ModelInfo] = {
    "mnist1d-cnn": ModelInfo(mnist1d_cnn, (1, 40), "MNIST-1D paper's CNN: 3 x Conv1d(25 ch, stride 2) + Linear"),
    "mnist1d-cnn-bn": ModelInfo(mnist1d_cnn_bn, (1, 40), "wider MNIST-1D CNN (64 ch) with BatchNorm and dropout"),
    "mnist1d-mlp": ModelInfo(mnist1d_mlp, (1, 40), "MNIST-1D paper's MLP: 100 hidden units, residual middle layer"),
    "mnist1d-logreg": ModelInfo(mnist1d_logreg, (1, 40), "logistic regression (one Linear layer)"),
    "lenet5": ModelInfo(lenet5, (1, 28, 28), "LeNet-5 (ReLU, max-pool) for 28 x 28 images"),
    "convnet": ModelInfo(convnet, (1, 28, 28), "3 x (conv3x3 + BatchNorm + ReLU + avg-pool), 24/48/96 ch, dropout"),
}


# ---------------------------------------------------------------------------------------------
# architecture specs


class SpecError(ValueError):
    """An architecture spec string that cannot be parsed or does not fit its input shape."""


MAX_LAYER_PARAMETERS = 50_000_000
MAX_SAMPLE_VALUES = 16_000_000
MAX_MODEL_PARAMETERS = 100_000_000
MAX_LAYERS = 1000


def _check_size(weights: int, values: int, fail: Callable[[str], SpecError]) -> None:
    """Refuse a layer whose weights or per-sample output would exceed the spec limits (before allocating)."""
    if weights > MAX_LAYER_PARAMETERS:
        raise fail(f"would have {weights:,} weights, more than the limit of {MAX_LAYER_PARAMETERS:,} per layer")
    if values > MAX_SAMPLE_VALUES:
        raise fail(f"would output {values:,} values per sample, more than the limit of {MAX_SAMPLE_VALUES:,}")


_NUM = r"(\d+)"
_TOKENS: list[tuple[str, re.Pattern[str]]] = [
    ("conv", re.compile(rf"c{_NUM}k{_NUM}(?:s{_NUM})?(?:p{_NUM})?(?:d{_NUM})?(nb)?")),
    ("maxpool", re.compile(rf"mp{_NUM}(?:s{_NUM})?")),
    ("avgpool", re.compile(rf"ap{_NUM}(?:s{_NUM})?")),
    ("gap", re.compile(r"gap")),
    ("bn", re.compile(r"bn")),
    ("act", re.compile(r"relu|tanh|sigmoid|gelu|elu|lrelu")),
    ("flat", re.compile(r"flat")),
    ("fc", re.compile(rf"fc{_NUM}(nb)?")),
    ("drop", re.compile(r"drop(\d*\.?\d+)")),
]
_GRAMMAR = ("c<out>k<k>[s<s>][p<p>][d<d>][nb], mp<k>[s<s>], ap<k>[s<s>], gap, bn, relu, tanh, sigmoid, "
            "gelu, elu, lrelu, flat, fc<n>[nb], drop<p>")
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "elu": nn.ELU, "lrelu": nn.LeakyReLU,
}


def _tokens(spec: str) -> list[tuple[int, str]]:
    """``(1-based character position, token)`` for each ``-``-separated token."""
    out, pos = [], 0
    for token in spec.split("-"):
        out.append((pos + 1, token))
        pos += len(token) + 1
    return out


def _layer(kind: str, groups: tuple[str | None, ...], shape: tuple[int, ...], fail: Callable[[str], SpecError]
           ) -> list[nn.Module]:
    """The module(s) for one token, given the shape ``(C, *spatial)`` of its input."""
    ints = [None if g is None or g == "nb" else int(g) for g in groups] if kind not in ("drop", "act") else []
    spatial = len(shape) - 1
    if kind in ("conv", "maxpool", "avgpool", "gap") and spatial not in (1, 2):
        raise fail(f"needs a 1-d or 2-d feature map (C, L) or (C, H, W), got shape {shape}")
    if kind == "conv":
        out, k, s, p, d = ints[:5]
        padded = [n + 2 * (p or 0) for n in shape[1:]]
        _check_size(out * shape[0] * k ** spatial, out * int(np.prod(padded, dtype=object)), fail)
        cls = nn.Conv1d if spatial == 1 else nn.Conv2d
        return [cls(shape[0], out, k, stride=s or 1, padding=p or 0, dilation=d or 1, bias=groups[5] is None)]
    if kind in ("maxpool", "avgpool"):
        k, s = ints[:2]
        if kind == "maxpool":
            return [(nn.MaxPool1d if spatial == 1 else nn.MaxPool2d)(k, stride=s)]
        return [(nn.AvgPool1d if spatial == 1 else nn.AvgPool2d)(k, stride=s)]
    if kind == "gap":
        return [(nn.AdaptiveAvgPool1d if spatial == 1 else nn.AdaptiveAvgPool2d)(1), nn.Flatten()]
    if kind == "bn":
        if spatial > 2:
            raise fail(f"BatchNorm supports inputs (F), (C, L) or (C, H, W), got shape {shape}")
        return [(nn.BatchNorm2d if spatial == 2 else nn.BatchNorm1d)(shape[0])]
    if kind == "act":
        return [_ACTIVATIONS[groups[0]]()]
    if kind == "flat":
        return [nn.Flatten()]
    if kind == "fc":
        if len(shape) != 1:
            raise fail(f"needs a flat input but gets shape {shape}; put 'flat' (or 'gap') before it")
        _check_size(shape[0] * ints[0], ints[0], fail)
        return [nn.Linear(shape[0], ints[0], bias=groups[1] is None)]
    if kind == "drop":
        p = float(groups[0])
        if not 0 <= p < 1:
            raise fail(f"dropout probability must be in [0, 1), got {p}")
        return [nn.Dropout(p)]
    raise fail(f"unknown layer kind {kind}")  # pragma: no cover - every kind is handled above


def parse_spec(spec: str, input_shape: Sequence[int]) -> nn.Sequential:
    """Build the :class:`~cnnlab.nn.Sequential` a spec string describes, for inputs of ``input_shape``.

    Parameters
    ----------
    spec : str
        Layers joined by ``-``, e.g. ``"c16k3p1-bn-relu-mp2-c32k3p1-relu-mp2-flat-fc10"`` (see
        the module documentation for the tokens).
    input_shape : tuple of int
        One sample's shape ``(C,)``, ``(C, L)`` or ``(C, H, W)``, without the batch dim.

    Returns
    -------
    Sequential
        With weights freshly initialised (PyTorch's defaults).

    Raises
    ------
    SpecError
        For an empty spec, an unknown or malformed token, or a layer that does not fit the shape
        reaching it (e.g. a kernel larger than the feature map); the message gives the token and
        its character position.
    TypeError
        If ``spec`` is not a string.

    Examples
    --------
    >>> model = parse_spec("c8k3p1-relu-mp2-flat-fc10", (1, 28, 28))
    >>> [type(m).__name__ for m in model]
    ['Conv2d', 'ReLU', 'MaxPool2d', 'Flatten', 'Linear']
    >>> model[4].in_features
    1568
    >>> parse_spec("c8k3-zz-fc10", (1, 40))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnlab.training.models.SpecError: model spec 'c8k3-zz-fc10': unknown layer 'zz' at character 6 ...
    """
    if not isinstance(spec, str):
        raise TypeError(f"parse_spec: spec must be a string, got {type(spec).__name__}")
    shape = _check_shape("parse_spec", input_shape)
    text = spec.strip()
    if not text:
        raise SpecError("model spec is empty; write layers joined by '-', e.g. c16k3p1-relu-mp2-flat-fc10")
    tokens = _tokens(text)
    if len(tokens) > MAX_LAYERS:
        raise SpecError(f"model spec has {len(tokens)} layers, more than the limit of {MAX_LAYERS}")
    modules: list[nn.Module] = []
    total = 0
    for index, (pos, token) in enumerate(tokens, start=1):
        where = f"model spec {text!r}: {'empty layer' if not token else repr(token)} at character {pos} (layer {index})"

        def fail(problem: str, where: str = where) -> SpecError:
            return SpecError(f"{where}: {problem}")

        match = next(((kind, m) for kind, pattern in _TOKENS if (m := pattern.fullmatch(token))), None)
        if match is None:
            problem = f"unknown layer {token!r}" if token else "empty layer (two '-' in a row?)"
            raise SpecError(f"model spec {text!r}: {problem} at character {pos} (layer {index}); "
                            f"expected one of {_GRAMMAR}")
        kind, m = match
        groups = (m.group(0),) if kind == "act" else m.groups()
        try:
            new = _layer(kind, groups, shape, fail)
            block = nn.Sequential(*new)
            shape = output_shape(block, shape)
        except SpecError:
            raise
        except (ValueError, TypeError) as exc:
            raise fail(f"does not fit its input of shape {shape}: {exc}") from None
        if min(shape, default=1) < 1:
            raise fail(f"gives an empty output of shape {shape}")
        total += sum(p.numel() for p in block.parameters())
        if total > MAX_MODEL_PARAMETERS:
            raise fail(f"brings the model to {total:,} weights, more than the limit of {MAX_MODEL_PARAMETERS:,}")
        modules.extend(new)
    return nn.Sequential(*modules)


def build_model(name_or_spec: str, input_shape: Sequence[int] | None = None, num_classes: int = 10) -> nn.Sequential:
    """A built-in model by name (see :data:`MODELS`), or a model from a spec string.

    Parameters
    ----------
    name_or_spec : str
        A key of :data:`MODELS` such as ``"mnist1d-cnn"``, or a spec such as
        ``"c16k3p1-relu-mp2-flat-fc10"``.
    input_shape : tuple of int or None, optional
        One sample's shape without the batch dim; defaults to the built-in model's own (specs
        need it).
    num_classes : int, optional
        Outputs of a built-in model's last layer (a spec sets its own).

    Returns
    -------
    Sequential

    Raises
    ------
    SpecError
        If ``name_or_spec`` is neither a model name nor a valid spec.
    ValueError
        If a built-in model does not fit ``input_shape`` (e.g. LeNet-5 on MNIST-1D signals).

    Examples
    --------
    >>> build_model("mnist1d-logreg")
    Sequential(
      (0): Flatten(start_dim=1, end_dim=-1)
      (1): Linear(in_features=40, out_features=10, bias=True)
    )
    >>> output_shape(build_model("lenet5", (3, 28, 28), num_classes=5), (3, 28, 28))
    (5,)
    """
    if not isinstance(name_or_spec, str):
        raise TypeError(f"build_model: expected a model name or spec string, got {type(name_or_spec).__name__}")
    key = name_or_spec.strip().lower()
    if key in MODELS:
        info = MODELS[key]
        shape = info.input_shape if input_shape is None else _check_shape("build_model", input_shape)
        try:
            return info.builder(shape, num_classes)
        except ValueError as exc:
            raise ValueError(f"model {key!r} does not fit inputs of shape {shape}: {exc}") from None
    if input_shape is None:
        raise ValueError(f"build_model: a spec needs input_shape (model {name_or_spec!r} is not a built-in name)")
    if not any(ch.isdigit() for ch in key) and "-" not in key:
        raise SpecError(f"unknown model {name_or_spec!r}: not a built-in model ({', '.join(MODELS)}) "
                        "nor a spec like c16k3p1-relu-mp2-flat-fc10")
    return parse_spec(key, input_shape)


def _describe_models() -> str:
    """One line per built-in model (for help texts)."""
    width = max(len(name) for name in MODELS)
    return "\n".join(f"  {name:<{width}}  {info.description}" for name, info in MODELS.items())

