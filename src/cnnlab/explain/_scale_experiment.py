"""Object size, measured: accuracy on test images rescaled 0.5x-1.5x, with and without scale augmentation.

A CNN's filters and receptive fields have fixed sizes (:func:`cnnlab.explain.model_field`), so a
network trained on objects of one size is not automatically good at other sizes: convolution is
equivariant to shifts, not to scaling.  :func:`scale_experiment` trains the same small CNN twice,
once on the training images as they are and once on images randomly rescaled (scale
augmentation), and measures both on the test images rescaled by each factor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.explain._expr import Heading, Items, Para
from cnnlab.explain._rendered import Rendered

OP = "scale_experiment"
MODEL = "c16k3p1-relu-mp2-c32k3p1-relu-mp2-flat-fc10"
"""The small CNN trained (a cnnlab spec string): two 3x3 conv layers with max pooling."""


def rescale(images: np.ndarray, factor: float) -> np.ndarray:
    """Images ``(N, H, W)`` zoomed by ``factor`` about their centre (bilinear, zeros outside).

    >>> img = np.zeros((1, 8, 8)); img[0, 3:5, 3:5] = 1
    >>> int((rescale(img, 2.0) > 0.5).sum()), int((rescale(img, 1.0) > 0.5).sum())
    (16, 4)
    """
    if not factor > 0:
        raise ValueError(f"rescale: factor must be > 0, got {factor}")
    n, h, w = images.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    ys = (np.arange(h) - cy) / factor + cy
    xs = (np.arange(w) - cx) / factor + cx
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    padded = np.pad(images, ((0, 0), (1, 2), (1, 2)))
    y0, x0 = np.clip(y0 + 1, 0, h + 1), np.clip(x0 + 1, 0, w + 1)

    def at(dy: int, dx: int) -> np.ndarray:
        return padded[:, (y0 + dy)[:, None], (x0 + dx)[None, :]]

    top = at(0, 0) * (1 - fx) + at(0, 1) * fx
    bottom = at(1, 0) * (1 - fx) + at(1, 1) * fx
    return (top * (1 - fy)[:, None] + bottom * fy[:, None]).astype(images.dtype)


class ScaleExperiment(Rendered):
    """Test accuracy per scale factor, without and with scale augmentation.

    Attributes
    ----------
    scales : list of float
    plain, augmented : list of float
        Test accuracy (0..1) at each scale of the model trained without / with augmentation.
    setup : dict
        What was trained on what (data set, sizes, epochs, seed, model).
    """

    def __init__(self, scales: list[float], plain: list[float], augmented: list[float], setup: dict) -> None:
        self.scales, self.plain, self.augmented, self.setup = scales, plain, augmented, setup

    def table(self) -> str:
        """The results as a Markdown table."""
        lines = ["| scale | " + " | ".join(f"{s:g}x" for s in self.scales) + " |",
                 "|---|" + "---|" * len(self.scales)]
        for name, accs in (("trained as is", self.plain), ("with scale augmentation", self.augmented)):
            lines.append(f"| {name} | " + " | ".join(f"{100 * a:.1f}%" for a in accs) + " |")
        return "\n".join(lines)

    def document_blocks(self, cells: int | None = None) -> list:
        s = self.setup
        return [
            Heading("Object size: accuracy on rescaled test images", 1),
            Para(f"The CNN {s['model']} trained for {s['epochs']} epoch(s) on {s['train']} {s['data']} training "
                 f"images (seed {s['seed']}), once as they are and once with every training image rescaled "
                 f"by a random factor in [{s['low']:g}, {s['high']:g}]; tested on {s['test']} test images zoomed "
                 "about their centre by each factor."),
            Items([f"scale {f:g}x: {100 * a:.1f}% as trained, {100 * b:.1f}% with scale augmentation"
                   for f, a, b in zip(self.scales, self.plain, self.augmented, strict=True)]),
            Para("Convolution shares its filters across positions, not across sizes: the plain model is best at "
                 "the size it was trained on and loses accuracy as objects shrink or grow; showing it objects "
                 "of many sizes during training (augmentation) flattens the curve."),
        ]


def _model(seed: int) -> Any:
    """:data:`MODEL`, built from its layers (seeded)."""
    import cnnlab
    from cnnlab import nn

    cnnlab.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def _train(x: np.ndarray, y: np.ndarray, epochs: int, seed: int, lr: float = 2e-3) -> Any:
    """Train :data:`MODEL` on ``x`` ``(N, 1, 28, 28)`` with Adam (written out: the update of
    Kingma and Ba, without an optimizer object), batches of 64, cross-entropy."""
    from cnnlab.autograd import Tensor
    from cnnlab.functional import cross_entropy

    model = _model(seed)
    params = list(model.parameters())
    moments = [(np.zeros_like(p.data), np.zeros_like(p.data)) for p in params]
    rng = np.random.default_rng(seed)
    t = 0
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), 64):
            batch = order[start:start + 64]
            for p in params:
                p.grad = None
            loss = cross_entropy(model(Tensor(x[batch])), y[batch])
            loss.backward()
            t += 1
            for p, (m, v) in zip(params, moments, strict=True):
                g = p.grad.numpy() if hasattr(p.grad, "numpy") else np.asarray(p.grad)
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                p.data -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    model.eval()
    return model


def _accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    from cnnlab.autograd import Tensor, no_grad

    correct = 0
    with no_grad():
        for start in range(0, len(x), 500):
            logits = model(Tensor(x[start:start + 500])).numpy()
            correct += int((logits.argmax(axis=1) == y[start:start + 500]).sum())
    return correct / len(x)


def scale_experiment(x_train: Any, y_train: Any, x_test: Any, y_test: Any, *, epochs: int = 3,
                     scales: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5), low: float = 0.5,
                     high: float = 1.5, seed: int = 0, data: str = "the data") -> ScaleExperiment:
    """Train :data:`MODEL` with and without scale augmentation and test it on rescaled images.

    Parameters
    ----------
    x_train, x_test : array_like
        28x28 images ``(N, 28, 28)`` or ``(N, 1, 28, 28)`` with values in [0, 1] (as
        ``cnnlab.data.load_dataset('fashion-mnist')`` gives them); ``cnnlab scale`` loads them.
    y_train, y_test : array_like
        Class indices 0..9.
    epochs : int, default 3
    scales : sequence of float
        The test zoom factors.
    low, high : float
        The range of the random training zoom of the augmented model.
    seed : int, default 0
    data : str
        The data set's name, for the text.

    Returns
    -------
    ScaleExperiment

    Raises
    ------
    ValueError
        For images that are not 28x28, labels out of range, or sizes and factors out of range.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((32, 28, 28)), rng.integers(0, 10, 32)
    >>> exp = scale_experiment(x, y, x[:8], y[:8], epochs=1, scales=(0.5, 1.0))
    >>> len(exp.plain), len(exp.augmented)
    (2, 2)
    """
    x_train, x_test = (np.asarray(a, dtype=np.float32) for a in (x_train, x_test))
    x_train, x_test = (a[:, 0] if a.ndim == 4 and a.shape[1] == 1 else a for a in (x_train, x_test))
    y_train, y_test = (np.asarray(a).astype(np.int64) for a in (y_train, y_test))
    for name, a, labels in (("x_train", x_train, y_train), ("x_test", x_test, y_test)):
        if a.ndim != 3 or a.shape[1:] != (28, 28) or len(a) != len(labels) or len(a) == 0:
            raise ValueError(f"{OP}: {name} must be (N, 28, 28) images with one label each, got shape {a.shape} "
                             f"and {len(labels)} labels")
        if labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"{OP}: labels must be class indices 0..9, got {labels.min()}..{labels.max()}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 100:
        raise ValueError(f"{OP}: epochs must be a whole number in [1, 100], got {epochs!r}")
    factors = [float(f) for f in scales]
    if not factors or len(factors) > 12 or any(not 0.1 <= f <= 4 for f in factors) or not 0.1 <= low <= high <= 4:
        raise ValueError(f"{OP}: give 1 to 12 scale factors in [0.1, 4] and 0.1 <= low <= high <= 4, got "
                         f"{factors}, {low}, {high}")
    mean, std = np.float32(x_train.mean()), np.float32(max(float(x_train.std()), 1e-6))
    rng = np.random.default_rng(seed)
    zoomed = np.empty_like(x_train)
    for i, f in enumerate(rng.uniform(low, high, size=len(x_train))):
        zoomed[i] = rescale(x_train[i:i + 1], float(f))[0]
    accuracies = []
    for images in (x_train, zoomed):
        model = _train(((images - mean) / std)[:, None], y_train, epochs, seed)
        accuracies.append([_accuracy(model, ((rescale(x_test, f) - mean) / std)[:, None], y_test)
                           for f in factors])
    setup = {"data": data, "train": len(x_train), "test": len(x_test), "epochs": epochs, "seed": seed,
             "model": MODEL, "low": low, "high": high}
    return ScaleExperiment(factors, accuracies[0], accuracies[1], setup)
