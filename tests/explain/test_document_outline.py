"""The outline of a worked backprop: which headings, at which level, in which order.

A reader (and a Markdown table of contents) relies on the levels: one title, then one section
per part of the work (summary, forward pass, loss, one per step back, answer), and inside each
step its own subsections.  The expected outline is built here from the pipeline.
"""

import re

import numpy as np
import pytest

from cnnlab.explain import LECTURE_INPUT, Conv, Pool, backprop, render


def _outline(markdown):
    return [(len(m.group(1)), m.group(2)) for m in re.finditer(r"^(#+) (.*)$", markdown, re.MULTILINE)]


PIPELINES = {
    "conv-relu-maxpool": [Conv([[1, 0], [0, -1]]), "relu", Pool("max", 2)],
    "conv-avgpool": [Conv([[2, 1], [1, 0]], stride=1), Pool("avg", 2, stride=1)],
    "two-convs": [Conv([[1, -1], [0, 2]]), Conv([[1, 1], [1, 1]], label="G")],
}


@pytest.mark.parametrize("name", list(PIPELINES))
def test_backprop_outline_levels(name):
    stages = PIPELINES[name]
    bp = backprop(np.array(LECTURE_INPUT), stages)
    outline = _outline(render(bp, "md"))
    top = outline[0][0]
    assert outline[0][1].startswith("Backprop by hand: ")
    assert [title for level, title in outline if level == top] == [outline[0][1]]  # one title
    sections = [title for level, title in outline if level == top + 1]
    steps = len(stages)
    assert sections[:2] == ["Summary", "The forward pass"]
    assert sections[2].startswith("The loss and dL/d")
    assert [s.split(":")[0] for s in sections[3:-1]] == [f"Back through step {k}" for k in range(steps, 0, -1)]
    assert sections[-1] == "Answer"
    assert all(level <= top + 2 for level, _ in outline)
    # every step back ends with its own "Result" one level down
    for k in range(steps, 0, -1):
        start = next(i for i, (lv, t) in enumerate(outline) if lv == top + 1 and t.startswith(f"Back through step {k}"))
        end = next(i for i in range(start + 1, len(outline)) if outline[i][0] <= top + 1)
        inside = [(lv, t) for lv, t in outline[start + 1:end]]
        assert inside and inside[-1] == (top + 2, "Result")


@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (1, 2), (2, 1)])
def test_the_upstream_gradient_is_spread_out_only_for_a_stride(stride):
    """The input-gradient step explains the dilated upstream gradient exactly when a stride
    exceeds 1, with the stride's numbers."""
    bp = backprop(np.array(LECTURE_INPUT), [Conv([[1, 0], [0, -1]], stride=stride)])
    text = render(bp, "text")
    sentence = f"With stride {stride[0]}x{stride[1]}, first spread"
    assert (sentence in text) == (stride != (1, 1))
    assert ("first spread" in text) == (stride != (1, 1))
