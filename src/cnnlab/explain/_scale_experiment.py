"""Object size, measured: accuracy on test images rescaled 0.5x-1.5x, with and without scale augmentation.

A CNN's filters and receptive fields have fixed sizes (:func:`cnnlab.explain.model_field`), so a
network trained on objects of one size is not automatically good at other sizes: convolution is
equivariant to shifts, not to scaling.  :func:`scale_experiment` trains the same small CNN twice,
once on the training images as they are and once on images randomly rescaled (scale
augmentation), and measures both on the test images rescaled by each factor.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def scale_experiment(data: str = "fashion-mnist", *, train: int = 6000, test: int = 1000, epochs: int = 3,
                     scales: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5), low: float = 0.5,
                     high: float = 1.5, seed: int = 0) -> ScaleExperiment:
    """Train :data:`MODEL` with and without scale augmentation and test it on rescaled images.

    Parameters
    ----------
    data : str, default 'fashion-mnist'
        A 28x28 image data set of :func:`cnnlab.data.load_dataset` (``mnist``, ``fashion-mnist``).
    train, test : int
        How many training and test images to use (the first ones).
    epochs : int, default 3
    scales : sequence of float
        The test zoom factors.
    low, high : float
        The range of the random training zoom of the augmented model.
    seed : int, default 0

    Returns
    -------
    ScaleExperiment

    Raises
    ------
    cnnlab.data.DataError
        If the data set is not available.
    ValueError
        For sizes or factors out of range.
    """
    import cnnlab
    from cnnlab import optim
    from cnnlab.data import DataLoader, TensorDataset, load_dataset
    from cnnlab.training import evaluate, fit
    from cnnlab.training.models import build_model

    for name, value in (("train", train), ("test", test), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{OP}: {name} must be a whole number >= 1, got {value!r}")
    factors = [float(f) for f in scales]
    if not factors or any(not 0.1 <= f <= 4 for f in factors) or not 0.1 <= low <= high <= 4:
        raise ValueError(f"{OP}: scale factors must lie in [0.1, 4] with low <= high, got {factors}, {low}, {high}")
    d = load_dataset(data)
    if d.x_train.ndim != 4 or d.x_train.shape[1] != 1:
        raise ValueError(f"{OP}: needs single-channel images, {data} has inputs {d.x_train.shape[1:]}")
    mean, std = np.float32(np.ravel(d.mean)[0]), np.float32(np.ravel(d.std)[0])
    rng = np.random.default_rng(seed)
    x_train, y_train = d.x_train[:train, 0], d.y_train[:train]
    x_test, y_test = d.x_test[:test, 0], d.y_test[:test]
    zoomed = np.empty_like(x_train)
    for i, f in enumerate(rng.uniform(low, high, size=len(x_train))):
        zoomed[i] = rescale(x_train[i:i + 1], float(f))[0]
    accuracies = []
    for images in (x_train, zoomed):
        cnnlab.manual_seed(seed)
        model = build_model(MODEL, input_shape=(1, *images.shape[1:]))
        loader = DataLoader(TensorDataset(((images - mean) / std)[:, None], y_train), batch_size=64,
                            shuffle=True, seed=seed)
        fit(model, loader, None, epochs=epochs, optimizer=optim.Adam(model.parameters(), lr=2e-3), seed=seed,
            progress=False)
        accs = []
        for f in factors:
            scaled = (rescale(x_test, f) - mean) / std
            accs.append(float(evaluate(model, DataLoader(TensorDataset(scaled[:, None], y_test),
                                                         batch_size=500)).accuracy))
        accuracies.append(accs)
    setup = {"data": data, "train": len(x_train), "test": len(x_test), "epochs": epochs, "seed": seed,
             "model": MODEL, "low": low, "high": high}
    return ScaleExperiment(factors, accuracies[0], accuracies[1], setup)
