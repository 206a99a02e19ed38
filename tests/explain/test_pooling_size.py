"""Pooling and size: max-pool from ReLUs and average pooling as a conv (vs torch), translation
before and after pooling, receptive fields (formula vs a torch measurement), object size, docs."""

from __future__ import annotations

import doctest
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from cnnlab.explain import Activation, Conv, Pool
from cnnlab.explain.pooling_size import (
    ReceptiveField,
    avg_pool_conv,
    max_pool_relu,
    object_size,
    receptive_field,
    translation,
)

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - the torch oracle is optional
    torch = None

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _f(a) -> np.ndarray:
    a = np.asarray(a)
    return np.array([float(v) for v in a.ravel()]).reshape(a.shape)


def _windows(x, k, s):
    """Each window's cells in row-major order, written out with loops."""
    x = np.asarray(x, dtype=object)
    out = []
    for i in range(0, x.shape[0] - k[0] + 1, s[0]):
        out.append([[x[i + a, j + b] for a in range(k[0]) for b in range(k[1])]
                    for j in range(0, x.shape[1] - k[1] + 1, s[1])])
    return out


@pytest.mark.parametrize("kind", ["int", "float", "fraction"])
def test_max_pool_from_relus(kind):
    rng = np.random.default_rng(["int", "float", "fraction"].index(kind))
    for _ in range(20):
        h, w = (int(v) for v in rng.integers(2, 7, 2))
        k = (int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1)))
        s = tuple(int(v) for v in rng.integers(1, 3, 2))
        x = rng.integers(-5, 6, (h, w)).astype(object if kind == "fraction" else np.int64)
        if kind == "float":
            x = x + rng.random(x.shape)
        if kind == "fraction":
            x[0, 0] = Fraction(int(rng.integers(-9, 10)), 4)
        ex = max_pool_relu(x, k, s)
        wins = _windows(x, k, s)
        assert ex.verified
        # the running value after t + 1 cells is the maximum of those cells (exactly, except that
        # in floating point m + (v - m) may round v's last bit), and every ReLU is >= 0
        for t, m in enumerate(ex.running):
            want = [[max(cells[: t + 1]) for cells in row] for row in wins]
            if kind == "float":
                np.testing.assert_allclose(m, np.array(want, dtype=float), rtol=1e-14)
            else:
                assert m.tolist() == want
        assert all((r >= 0).all() for r in ex.relus)
        if torch is not None:
            want = TF.max_pool2d(torch.tensor(_f(x))[None], k, s)[0].numpy()
            np.testing.assert_allclose(_f(ex.output), want)


@pytest.mark.parametrize("kind", ["int", "float"])
def test_average_pooling_as_a_conv(kind):
    rng = np.random.default_rng(10 + (kind == "float"))
    for _ in range(20):
        h, w = (int(v) for v in rng.integers(2, 7, 2))
        k = (int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1)))
        s = tuple(int(v) for v in rng.integers(1, 3, 2))
        x = rng.integers(-5, 6, (h, w))
        if kind == "float":
            x = x + rng.random(x.shape)
        ex = avg_pool_conv(x, k, s)
        assert ex.verified
        wins = _windows(x, k, s)
        if kind == "int":
            assert all(isinstance(v, Fraction) for v in ex.output.ravel())
            assert ex.output.tolist() == [[Fraction(int(sum(c)), k[0] * k[1]) for c in row] for row in wins]
            assert set(ex.kernel.ravel()) == {Fraction(1, k[0] * k[1])}
        if torch is not None:
            want = TF.avg_pool2d(torch.tensor(_f(x))[None], k, s)[0].numpy()
            np.testing.assert_allclose(_f(ex.output), want, rtol=1e-12)


def test_translation_default_example():
    t = translation()
    assert [r.shift for r in t.rows] == [0, 1, 2]
    one, two = t.rows[1], t.rows[2]
    assert (one.moved_before, one.moved_after, one.unchanged) == (1, 0, True)
    assert (two.moved_before, two.moved_after, two.unchanged) == (2, 1, False)
    assert all(r.equivariant for r in t.rows)
    assert "pooled map unchanged: yes" in t.to_text()


@pytest.mark.parametrize("axis", [0, 1])
def test_translation_random_objects(axis):
    rng = np.random.default_rng(40 + axis)
    for _ in range(8):
        x = np.zeros((9, 9), dtype=np.int64)
        r, c = (int(v) for v in rng.integers(1, 4, 2))
        x[r:r + 2, c:c + 3] = rng.integers(1, 4, (2, 3))
        stages = [Conv(rng.integers(0, 3, (2, 2))), Activation("relu"), Pool("max", 2)]
        t = translation(x, stages, shifts=(1, 2, 3), axis=axis)
        base_pool = None
        for row in t.rows:
            # nothing reaches the border, so the map before pooling moves by exactly the shift
            assert row.equivariant and row.moved_before == row.shift
            if torch is None:
                continue
            shifted = torch.roll(torch.tensor(_f(x)), row.shift, dims=axis)  # no wrap-around: border is zero
            w = torch.tensor(_f(stages[0].filters))[None, None]
            pooled = TF.max_pool2d(torch.relu(TF.conv2d(shifted[None, None], w)), 2)[0].numpy()
            np.testing.assert_allclose(_f(row.after), pooled)
            base_pool = pooled if row.shift == 0 else base_pool
            assert row.unchanged == bool(np.array_equal(pooled, base_pool))


@pytest.mark.parametrize("kwargs, match", [
    ({"x": [[1, 2], [3, 4]]}, "give both x and stages"),
    ({"x": np.eye(4), "stages": [Conv([[1]])]}, "needs a Pool stage"),
    ({"shifts": (9,)}, r"shifts must be ints in \[1, 9\)"),
    ({"axis": 2}, "axis must be 0"),
])
def test_translation_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        translation(**kwargs)


def _field_by_formula(layers):
    r, j = 1, 1
    for k, s, d in layers:
        r, j = r + (k - 1) * d * j, j * s
    return r, j


def test_receptive_field_formula_and_torch_measurement():
    rng = np.random.default_rng(5)
    for _ in range(12):
        layers = [(int(rng.integers(1, 5)), int(rng.integers(1, 3)), int(rng.integers(1, 3)))
                  for _ in range(int(rng.integers(1, 5)))]
        rf = receptive_field([("layer", k, s, d) for k, s, d in layers])
        r, j = _field_by_formula(layers)
        assert rf.field == (r, r) and rf.jump == (j, j) and rf.verified
        prefixes = [layers[:n] for n in range(1, len(layers) + 1)]
        assert [row.r_out[0] for row in rf.rows] == [_field_by_formula(p)[0] for p in prefixes]
        if torch is None:
            continue
        x = torch.zeros((1, 1, r, r), requires_grad=True)
        y = x
        for k, s, d in layers:
            y = TF.conv2d(y, torch.ones((1, 1, k, k)), stride=s, dilation=d)  # float32 throughout
        y[0, 0, 0, 0].backward()
        rows, cols = np.nonzero(x.grad[0, 0].numpy())
        assert rows.max() - rows.min() + 1 == r and cols.max() - cols.min() + 1 == r


def test_receptive_field_of_specs_and_rectangles():
    rf = receptive_field([Conv(np.ones((3, 5))), "relu", Pool("max", 2), Conv(np.ones((1, 3)), dilation=2)])
    # rows: 1 + 2 = 3, + 1*1 = 4 (j 2), + 0 = 4; cols: 1 + 4 = 5, + 1 = 6 (j 2), + 2*2*2 = 14
    assert rf.field == (4, 14) and rf.jump == (2, 2) and rf.verified
    assert len(rf.rows) == 3 and "(cols)" in rf.to_text()
    with pytest.raises(TypeError, match="layer 1 must be"):
        receptive_field([3])


def test_object_size_numbers():
    ex = object_size(sizes=(1, 2, 3, 4, 5), canvas=12)
    for o in ex.objects:
        # a 3x3 filter of ones counts the object cells under it: at most min(s, 3)^2, reached at
        # (|s - 3| + 1)^2 positions, and any window touching the object responds
        assert o.peak == min(o.size, 3) ** 2
        assert o.at_peak == (abs(o.size - 3) + 1) ** 2
        assert o.responding == (o.size + 2) ** 2
        assert o.pooled_peak == o.peak
        if torch is not None:
            ones = torch.ones((1, 1, 3, 3), dtype=torch.float64)
            want = TF.conv2d(torch.tensor(_f(o.image))[None, None], ones)[0, 0].numpy()
            np.testing.assert_allclose(_f(o.response), want)
    custom = object_size(sizes=(2,), canvas=6, filter=[[1, -1]])
    assert custom.objects[0].peak == 1
    with pytest.raises(ValueError, match="sizes must be ints"):
        object_size(sizes=(20,))
    with pytest.raises(ValueError, match="2-D matrix"):
        object_size(filter=[1, 2, 3])


@pytest.mark.parametrize("fmt", ["text", "md", "latex", "html"])
def test_every_explanation_renders(fmt):
    for ex, needle in [(max_pool_relu([[1, 2], [3, 4]]), "relu"), (avg_pool_conv([[1, 2], [3, 4]]), "conv"),
                       (translation(), "pooled"), (receptive_field([("c", 3)]), "receptive field"),
                       (object_size(sizes=(1, 4)), "object")]:
        out = ex.render(fmt)
        assert needle in out.lower()
        if fmt == "latex":
            assert ("bmatrix" in out) == (not isinstance(ex, ReceptiveField))  # it has no matrices


def test_docs_doctest():
    result = doctest.testfile(str(DOCS / "pooling-and-size.md"), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
