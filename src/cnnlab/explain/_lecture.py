"""The lecture's example, the default of ``cnnlab demo``."""

from __future__ import annotations

from cnnlab.explain._engine import explain
from cnnlab.explain._solution import Solution
from cnnlab.explain._spec import Activation, Conv, Pool

LECTURE_INPUT = ((1, 0, 2), (3, 1, 0), (0, 0, 4))
LECTURE_FILTER = ((1, 0), (0, 1))


def lecture_example() -> Solution:
    """Pool(ReLU(Conv(I))) for the lecture's I and F: stride 1 conv, 2x2 max-pool, stride 1.

    Examples
    --------
    >>> sol = lecture_example()
    >>> sol.stages[0].output[0].tolist(), sol.answer
    ([[2, 0], [3, 5]], 5)
    """
    return explain(
        [list(row) for row in LECTURE_INPUT],
        [Conv([list(row) for row in LECTURE_FILTER], stride=1, padding=0),
         Activation("relu"),
         Pool("max", kernel_size=2, stride=1)],
    )
