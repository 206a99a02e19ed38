"""Size before any work: limits named in the error, a few worked cells for large inputs, bounded output."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.explain import (
    MAX_EXACT_WORK,
    Conv,
    Pool,
    backprop,
    compare,
    explain,
    matrix_view,
)
from cnnlab.explain._limits import DEFAULT_CELLS, SHOW_SIDE, elide, representative

RNG = np.random.default_rng(0)
BIG = RNG.integers(-5, 6, (300, 300))
PIPELINE = [Conv([[1, 0], [0, -1]], padding=1, bias=1), "relu", Pool("max", 2)]


@pytest.mark.parametrize("padding", [100_000, (0, 500_000), ((1, 2), (3, 10**9))])
@pytest.mark.parametrize("entry", [explain, backprop, compare])
def test_huge_padding_is_refused_before_allocating(entry, padding):
    with pytest.raises(ValueError, match=r"the padded input .* would hold [\d,]+ values; the limit is "
                                         r"1,000,000 \(MAX_VALUES\)"):
        entry([[1, 2], [3, 4]], [Conv([[1]], padding=padding)])


def test_huge_pool_padding_and_input_are_refused():
    with pytest.raises(ValueError, match="MAX_VALUES"):
        explain(np.zeros((10, 10)), [Pool("max", 2, padding=1_000_000)])
    with pytest.raises(ValueError, match=r"the input \(shape \(2000, 2000\)\) would hold 4,000,000 values"):
        explain(np.zeros((2000, 2000)), [Conv([[1]])])


def test_exact_fractions_have_their_own_work_limit():
    x = np.full((400, 400), Fraction(1, 3), dtype=object)
    with pytest.raises(ValueError, match=r"MAX_EXACT_WORK.*floating-point"):
        explain(x, [Conv([[1, 2], [3, 4]])])
    assert MAX_EXACT_WORK < 400 * 400 * 4


def test_matrix_view_refuses_a_huge_matrix():
    sol = explain(RNG.integers(0, 3, (100, 100)), [Conv([[1, 0], [0, 1]])])
    with pytest.raises(ValueError, match=r"the conv matrix M \(9801 x 10000\).*MAX_MATRIX_ENTRIES"):
        matrix_view(sol)


@pytest.mark.parametrize("entry", [explain, backprop])
def test_large_input_gets_the_whole_answer_and_a_few_worked_cells(entry):
    result = entry(BIG, PIPELINE)
    sol = result if entry is explain else result.forward
    conv = F.conv(BIG[None], np.array([[[[1, 0], [0, -1]]]]), np.array([1]), 1, 1)  # (1, 301, 301)
    expected = F.max_pool2d(np.maximum(conv, 0), 2)[0]
    np.testing.assert_array_equal(sol.output, expected)
    for st in sol.stages:
        assert len(st.cells) <= DEFAULT_CELLS
    assert sol.stages[0].left_out == sol.stages[0].output.size - DEFAULT_CELLS
    for fmt in ("text", "md", "latex", "html"):
        text = result.render(fmt)
        assert len(text) < 120_000, (fmt, len(text))
        assert "more cell(s) not shown" in text.replace("(\\allowbreak{}", "(")


def test_cells_chooses_how_many_cells_are_worked_out():
    sol = explain(BIG, PIPELINE, cells=2)
    assert [len(st.cells) for st in sol.stages][0::2] == [2, 2]
    assert sol.stages[0].cells[0].index == (0, 0, 0)
    assert sol.stages[0].cells[-1].index == (0, 300, 300)  # first and last window
    small = explain([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [Conv([[1, 0], [0, 1]])])
    assert len(small.stages[0].cells) == 4 and small.stages[0].left_out == 0
    with pytest.raises(ValueError, match="cells must be >= 0"):
        explain(BIG, PIPELINE, cells=-1)


def test_representative_and_elide():
    assert representative((2, 3), None) == list(np.ndindex(2, 3))
    assert representative((10,), 3) == [(0,), (4,), (9,)]
    values, (mask,) = elide(np.arange(400).reshape(20, 20), np.eye(20, dtype=bool))
    assert values.shape == (9, 9) and values[0, 0] == 0 and values[-1, -1] == 399
    assert mask[0, 0] and mask[-1, -1] and not mask[4, 4]
    small, _ = elide(np.arange(SHOW_SIDE ** 2).reshape(SHOW_SIDE, SHOW_SIDE))
    assert small.shape == (SHOW_SIDE, SHOW_SIDE)


def test_long_sums_are_elided():
    sol = explain(np.ones((20, 20), dtype=np.int64), [Conv(np.ones((10, 10), dtype=np.int64))], cells=1)
    line = next(line for line in sol.render().splitlines() if line.strip().startswith("Conv(I)[0,0] ="))
    assert "..." in line and line.endswith("= 100")


def test_nan_and_inf_give_no_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explain([[np.inf, 1.0], [2.0, 3.0]], [Conv([[1, -1]]), "gelu"]).render()
        backprop([[np.nan, 1.0], [2.0, 3.0]], [Conv([[1, -1]]), "sigmoid"]).render()
        matrix_view(explain([[np.inf, 1.0], [2.0, 3.0]], [Conv([[1, -1]])])).render()


def test_asking_for_every_cell_of_a_large_input_is_capped():
    from cnnlab.explain._limits import MAX_CELLS

    sol = explain(BIG, [Conv([[1, 0], [0, 1]])], cells=10**9)
    assert len(sol.stages[0].cells) == MAX_CELLS
    assert sol.stages[0].left_out == 299 * 299 - MAX_CELLS
    assert len(sol.render()) < 1_000_000


def test_the_average_of_integers_matches_the_loop_reference():
    from cnnlab.explain import _numbers as num
    from cnnlab.explain._engine import _average_of_integers, _plan
    from cnnlab.functional import _naive

    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 8, 2))
        k, s, d = (tuple(int(v) for v in rng.integers(1, hi, 2)) for hi in (4, 4, 3))
        spec = Pool("avg", k, stride=s, padding=int(rng.integers(0, 2)), dilation=d,
                    ceil_mode=bool(rng.integers(0, 2)), count_include_pad=bool(rng.integers(0, 2)),
                    divisor_override=[None, 3][int(rng.integers(0, 2))])
        x = rng.integers(-9, 10, (2, h, w))
        try:
            (plan,) = _plan(x.shape, [spec], num.INTEGER)
        except ValueError:
            continue
        ref = _naive.naive_avg_pool(num.to_exact(x)[None], plan.kernel, plan.stride, plan.pads, plan.dilation,
                                    plan.ceil_mode, plan.count_include_pad, plan.divisor_override)[0]
        fast = _average_of_integers(x, plan)
        assert fast.shape == ref.shape and all(a == b for a, b in zip(fast.ravel(), ref.ravel(), strict=True))
        checked += 1
    assert checked > 100
