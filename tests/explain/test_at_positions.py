"""explain(..., at=[...]): exactly the asked output cells are worked out, in every stage that has them."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.explain import Conv, Pool, explain


def test_at_works_out_exactly_the_asked_cells_of_a_large_stage():
    rng = np.random.default_rng(0)
    x = rng.integers(-5, 6, size=(30, 30))
    k = rng.integers(-2, 3, size=(3, 3))
    sol = explain(x, [Conv(k), "relu", Pool("max", 2)], at=[(0, 17, 4), (0, 2, 20)])
    conv, relu, pool = sol.stages
    assert [c.index for c in conv.cells] == [(0, 17, 4), (0, 2, 20)]
    for c in conv.cells:  # each worked value is the loop sum of its window
        _, i, j = c.index
        assert c.value == int((x[i:i + 3, j:j + 3] * k).sum())
    assert [c.index for c in relu.cells] == [(0, 17, 4), (0, 2, 20)]
    assert [c.index for c in pool.cells] == []  # the pooled output is 14 x 14: neither position lies in it
    assert conv.output.shape == (1, 28, 28) and pool.output.shape == (1, 14, 14)  # every value is still computed


@pytest.mark.parametrize("bad", ["0,1,2", [], [(0, 1)], [(0, 1, 2.5)], [(True, 1, 2)]])
def test_at_must_be_positions(bad):
    with pytest.raises(TypeError, match="at must be|each position in at"):
        explain([[1, 2], [3, 4]], [Conv([[1]])], at=bad)
