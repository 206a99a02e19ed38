"""The text format's layout: matrices printed side by side wrap at 100 columns.

Found by benchmarks/mutation.py (the wrapping rule could be changed without a test failing).
"""

import numpy as np
import pytest

from cnnlab.explain import Conv, explain, render

WIDTH = 100


@pytest.mark.parametrize("count", [2, 3, 4])
def test_side_by_side_matrices_wrap_at_the_width(count):
    x = (np.arange(64).reshape(8, 8) * 137) % 2000 - 1000  # 5-character cells: wide matrices
    rng = np.random.default_rng(count)
    filters = rng.integers(-3, 4, size=(count, 2, 2))
    lines = render(explain(x, [Conv(filters)]), "text").splitlines()
    grid_lines = [line for line in lines if "|" in line]
    assert grid_lines
    assert max(len(line) for line in grid_lines) <= WIDTH
    # small matrices that fit stay on one line: all the filters, side by side
    assert any(all(f"F{k + 1} = |" in line for k in range(count)) for line in lines)
    # the wide outputs (7x7 matrices of 5-6 character cells, over 50 columns each) do not fit two
    # to a line: each output channel starts a line of its own
    assert sum(line.lstrip().startswith("Conv(I)[0] = |") for line in lines) >= 1
    assert not any("Conv(I)[0] = |" in line and "Conv(I)[1] = |" in line for line in lines)
