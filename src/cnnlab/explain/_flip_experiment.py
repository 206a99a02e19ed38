""""The network learns the flipped filter": train the same filter with correlation and with convolution.

A conv layer computes a cross-correlation.  Had it computed a true convolution (flipped filter), it
would simply learn the flipped filter: the two models are the same family of functions, one
reparametrised by ``w -> flip(w)``.  :func:`flip_experiment` shows it by training: one filter is
fitted to reproduce a target edge detector, once with :func:`cnnlab.functional.correlate` and once
with :func:`cnnlab.functional.convolve`, from starting filters that are each other's flip.  The
learned filters come out flipped, the losses equal at every step.  The target filter is also the
"inverse filter" question: to undo, or to match, a correlation with ``k`` a convolution needs
``flip(k)``.
"""

from __future__ import annotations

import numpy as np

from cnnlab.explain._expr import Grid, Heading, Items, Para, Row
from cnnlab.explain._rendered import Rendered

OP = "flip_experiment"
TARGET = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
"""The filter to recover: a Sobel edge detector, not symmetric under a 180-degree rotation."""


class FlipExperiment(Rendered):
    """The two trained filters and their loss curves (see :func:`flip_experiment`).

    Attributes
    ----------
    target : numpy.ndarray
        The filter that made the training targets (with correlation).
    correlate_filter, convolve_filter : numpy.ndarray
        The filters learned by the correlating and the convolving model.
    correlate_losses, convolve_losses : numpy.ndarray
        The mean squared error after each step.
    """

    def __init__(self, target, correlate_filter, convolve_filter, correlate_losses, convolve_losses) -> None:
        self.target = target
        self.correlate_filter, self.convolve_filter = correlate_filter, convolve_filter
        self.correlate_losses, self.convolve_losses = correlate_losses, convolve_losses

    @property
    def flipped(self) -> bool:
        """Whether the convolving model's filter is the correlating model's filter rotated by 180 degrees."""
        return bool(np.allclose(self.convolve_filter, self.correlate_filter[::-1, ::-1], atol=1e-9))

    @property
    def loss_gap(self) -> float:
        """The largest difference between the two loss curves."""
        return float(np.max(np.abs(self.correlate_losses - self.convolve_losses)))

    def document_blocks(self, cells: int | None = None) -> list:
        r = lambda a: np.round(a, 3)  # noqa: E731 - a short display helper
        steps = len(self.correlate_losses)
        return [
            Heading("The network learns the flipped filter", 1),
            Para("Targets: random images cross-correlated with the filter T. Two one-filter models are trained "
                 "on them by gradient descent on the mean squared error: one cross-correlates with its filter "
                 "(what a conv layer does), the other convolves (flips its filter first). They start from "
                 "filters that are each other's flip."),
            Row([Grid("T", self.target)]),
            Row([Grid("learned (correlation)", r(self.correlate_filter)),
                 Grid("learned (convolution)", r(self.convolve_filter))]),
            Items([
                f"the convolving model's filter is the correlating model's rotated by 180 degrees: "
                f"{'yes' if self.flipped else 'NO'}",
                f"losses after step 1 / {steps}: {self.correlate_losses[0]:.4g} / {self.correlate_losses[-1]:.3g} "
                f"(correlation), {self.convolve_losses[0]:.4g} / {self.convolve_losses[-1]:.3g} (convolution); "
                f"largest difference between the curves {self.loss_gap:.2g}",
            ]),
            Para("So whether a library calls its layer convolution or correlation does not matter for what the "
                 "network can learn: the convolving network learns flip(T), the inverse (flipped) filter, and "
                 "fits the data exactly as well. It matters only when a filter is given by hand, as in the "
                 "lecture's exercises."),
        ]


def flip_experiment(steps: int = 150, *, images: int = 16, size: int = 12, lr: float = 0.02,
                    seed: int = 0) -> FlipExperiment:
    """Train one filter with correlation and one with convolution on the same data and compare.

    Parameters
    ----------
    steps : int, default 150
        Gradient-descent steps (1 to 10,000).
    images, size : int
        How many random ``size x size`` training images (at most 256 of at most 64x64).
    lr : float, default 0.02
        The step size.
    seed : int, default 0

    Returns
    -------
    FlipExperiment

    Examples
    --------
    >>> exp = flip_experiment(steps=100)
    >>> exp.flipped, exp.loss_gap < 1e-9
    (True, True)
    >>> (np.round(exp.convolve_filter, 1)[0] + 0.0).tolist()  # the first row of flip(T)
    [-1.0, 0.0, 1.0]
    """
    from cnnlab.autograd import Tensor
    from cnnlab.functional import convolve, correlate, mse_loss

    for name, value, hi in (("steps", steps, 10_000), ("images", images, 256), ("size", size, 64)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise ValueError(f"{OP}: {name} must be an int in [1, {hi}], got {value!r}")
    if size < 3:
        raise ValueError(f"{OP}: size must be at least 3 (the filter is 3x3), got {size}")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(images, size, size))
    y = correlate(x, TARGET[None])
    start = rng.normal(scale=0.5, size=(1, 3, 3))
    results = []
    for op, init in ((correlate, start), (convolve, start[:, ::-1, ::-1].copy())):
        w = Tensor(init.copy(), requires_grad=True)
        losses = []
        for _ in range(steps):
            loss = mse_loss(op(Tensor(x), w), Tensor(y))
            loss.backward()
            grad = w.grad.numpy() if hasattr(w.grad, "numpy") else np.asarray(w.grad)
            w = Tensor(w.numpy() - lr * grad, requires_grad=True)
            losses.append(float(loss.item()))
        results.append((w.numpy()[0], np.array(losses)))
    (wc, lc), (wv, lv) = results
    return FlipExperiment(TARGET, wc, wv, lc, lv)
