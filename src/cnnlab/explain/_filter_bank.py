"""Why many filters: each filter looks for one feature.

A conv layer has many filters because each responds to one pattern.  :func:`filter_bank` applies
the classic hand-made filters (vertical and horizontal edges, blur, sharpen) to one image (a real
Fashion-MNIST test image when its files are available, otherwise an image drawn here) and reports,
as numbers, where each filter responds strongly and where it stays near zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.explain._expr import Grid, Heading, Items, Para, Row
from cnnlab.explain._rendered import Rendered
from cnnlab.functional import correlate

OP = "filter_bank"

FILTERS: dict[str, tuple[np.ndarray, str]] = {
    "vertical edge": (np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
                      "Sobel: right column minus left column. Large positive where the image gets brighter "
                      "from left to right, large negative where it gets darker, zero on flat regions and on "
                      "horizontal edges."),
    "horizontal edge": (np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
                        "Sobel: bottom row minus top row. Large where the image changes from top to bottom, "
                        "zero on flat regions and on vertical edges."),
    "blur": (np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]),
             "A weighted average (the weights add up to 16): every response is 16 times a local mean, "
             "large inside bright regions, fine details smoothed away."),
    "sharpen": (np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
                "The centre minus its four neighbours, plus the centre: equal to the pixel on flat regions, "
                "beyond it next to edges (larger than 255 on the bright side, negative on the dark side)."),
}
"""The classic filters: name -> (3x3 integer filter, what its response means)."""


def synthetic_image(size: int = 28) -> np.ndarray:
    """A ``size x size`` uint8 image drawn in code: a bright rectangle and a diagonal stroke.

    >>> synthetic_image(8)[2]
    array([  0,   0, 200, 200, 200, 200,   0,   0], dtype=uint8)
    """
    img = np.zeros((size, size), dtype=np.uint8)
    img[size // 4: size // 2, size // 4: 3 * size // 4] = 200
    for i in range(size // 2, size - 1):
        img[i, i - size // 2 + 1] = 255
    return img


class FilterBank(Rendered):
    """The responses of the classic filters to one image.

    Attributes
    ----------
    image : numpy.ndarray
        The image, integers 0..255.
    source : str
        Where the image comes from.
    responses : dict
        Filter name -> response map (the valid cross-correlation, exact integers).
    """

    def __init__(self, image: np.ndarray, source: str, responses: dict[str, np.ndarray]) -> None:
        self.image, self.source, self.responses = image, source, responses

    def strongest(self, name: str) -> tuple[int, int]:
        """``(row, col)`` of the largest absolute response of filter ``name``."""
        r = np.abs(self.responses[name])
        return tuple(int(v) for v in np.unravel_index(int(np.argmax(r)), r.shape))

    def summary(self, name: str) -> dict[str, Any]:
        """Largest absolute response, its place, and the share of cells below a tenth of it."""
        r = self.responses[name].astype(np.float64)
        peak = float(np.abs(r).max())
        quiet = float(np.mean(np.abs(r) < 0.1 * peak)) if peak else 1.0
        return {"peak": peak, "at": self.strongest(name), "quiet": quiet}

    def document_blocks(self, cells: int | None = None) -> list:
        h, w = self.image.shape
        blocks: list = [
            Heading("Each filter looks for one feature", 1),
            Para(f"The image: {self.source}, {h}x{w} pixels from 0 (black) to 255 (white). Every filter "
                 "below is slid over it (a cross-correlation, as a conv layer does); a response is large "
                 "where the window looks like the filter and near zero where it does not. A conv layer "
                 "learns many such filters so that each output channel marks one feature."),
        ]
        for name, (kernel, meaning) in FILTERS.items():
            s = self.summary(name)
            r0, c0 = s["at"]
            rows = slice(max(r0 - 2, 0), min(r0 + 3, self.responses[name].shape[0]))
            cols = slice(max(c0 - 2, 0), min(c0 + 3, self.responses[name].shape[1]))
            image_part = self.image[rows.start: rows.stop + 2, cols.start: cols.stop + 2].astype(np.int64)
            blocks += [
                Heading(f"{name}", 2),
                Para(meaning),
                Row([Grid("F", kernel)]),
                Items([f"strongest response {s['peak']:g} at row {r0}, col {c0} of the {self.responses[name].shape[0]}x"
                       f"{self.responses[name].shape[1]} response map",
                       f"{100 * s['quiet']:.0f}% of the cells respond with less than a tenth of that: there the "
                       "feature is absent (flat background or a feature of another kind)"]),
                Para(f"Around the strongest response: the image (rows {rows.start}-{rows.stop + 1}, cols "
                     f"{cols.start}-{cols.stop + 1}) and the response (rows {rows.start}-{rows.stop - 1}, "
                     f"cols {cols.start}-{cols.stop - 1}):"),
                Row([Grid("image", image_part), Grid("response", self.responses[name][rows, cols])]),
            ]
        return blocks


def filter_bank(image: Any = None, *, source: str | None = None) -> FilterBank:
    """Apply the classic filters of :data:`FILTERS` to one image.

    Parameters
    ----------
    image : array_like, optional
        A 2-D image of integers 0..255 (at least 3x3); ``cnnlab filters`` passes a Fashion-MNIST
        test image.  By default :func:`synthetic_image`.
    source : str, optional
        Where the image comes from, for the text.

    Returns
    -------
    FilterBank

    Examples
    --------
    >>> bank = filter_bank(synthetic_image())
    >>> bank.strongest("vertical edge"), int(bank.responses["vertical edge"][8, 5])
    ((7, 5), 800)
    >>> int(bank.responses["vertical edge"][8, 12])  # inside the flat rectangle: no edge
    0
    """
    if image is None:
        image = synthetic_image()
        source = source or "a synthetic image (a bright rectangle and a diagonal stroke)"
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 3:
        raise ValueError(f"{OP}: image must be a 2-D array of at least 3x3, got shape {image.shape}")
    if image.dtype.kind not in "iu":
        raise TypeError(f"{OP}: image must hold integers 0..255, got dtype {image.dtype}")
    x = np.asarray(image, dtype=np.int64)
    responses = {name: correlate(x, kernel) for name, (kernel, _) in FILTERS.items()}
    return FilterBank(image, source or "the given image", responses)
