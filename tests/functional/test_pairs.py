"""Blocks of 8 filters at 2 positions (``functional/_numba_implicit.py``, ``span`` 2): where a
group has at most 8 filters (or, for the input gradient, 8 input channels), the implicit kernels'
16 lanes hold each filter at two adjacent positions, whose inputs one 8-byte broadcast fills.
Each output's sum runs over the same taps in the same order as with 16 filters a block, so the
forward and the input gradient give the same bits both ways; the weight gradient adds each
filter's even and odd positions apart, so it is checked against the loop reference.  Also: which
phases and segments pair (against the definition, position by position), the two vector
operations, and that both spans run where a layer has phases of each kind."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import _backend, _implicit, _implicit_grad_x, _naive
from tests.functional.test_implicit import _against_loop_reference, _args, _conv, _inputs

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")

PAIR_CASES = [
    # x shape, weight shape, stride, padding, dilation, groups
    ((2, 16, 7, 6), (16, 8, 3, 3), 1, 1, 1, 2),  # groups of 8 channels and 8 filters, padded: edges unpaired
    ((2, 32, 8, 8), (32, 8, 3, 3), 1, 0, 1, 4),  # no padding: one class, every position paired
    ((3, 24, 6, 10), (24, 8, 3, 3), 1, 1, 1, 3),  # 3 groups (an odd count), batch of 3
    ((2, 8, 9, 7), (6, 8, 3, 3), 1, 1, 1, 1),  # one group of 6 filters; an odd width (7): 3 pairs a row
    ((2, 16, 10, 12), (16, 4, 5, 3), 1, (2, 1), (1, 2), 4),  # 4 filters a group, dilated, asymmetric kernel
    ((2, 10, 8, 10), (10, 5, 3, 3), (2, 1), 1, 1, 2),  # strided along the height only: pairs along the width
    ((2, 16, 8, 8), (16, 8, 3, 3), 2, 1, 1, 2),  # strided along the width: the input gradient's cells alone pair
    ((2, 16, 9, 11), (16, 8, 3, 3), 2, 1, 1, 2),  # the same with phases of odd widths (6 and 5 cells a row)
    ((1, 16, 16, 32), (16, 8, 3, 3), 2, 1, 1, 2),  # input planes 2 KB apart: the input gradient's staged stores
    ((2, 8, 7, 14), (12, 8, 3, 3), (1, 3), 1, 1, 1),  # stride 3 along the width: cells paired 3 apart
    ((2, 12, 9, 12), (12, 6, 4, 4), 2, (1, 2), 1, 2),  # 6 channels a group, a 4x4 kernel: 2 taps a phase
    ((3, 16, 20), (16, 8, 3), 1, 1, 1, 2),  # 1-d
    ((2, 16, 3, 4, 6), (16, 8, 3, 3, 3), 1, 1, 1, 2),  # 3-d
    ((2, 48, 6, 8), (8, 48, 3, 3), 1, 1, 1, 1),  # 432 taps: the forward in chunks
    ((1, 16, 2, 8), (16, 8, 1, 3), 1, (3, 1), 1, 2),  # rows of padding alone (outputs without a tap)
]


@pytest.fixture
def compiled():
    previous = _backend.set_backend("numba")  # past the small-work threshold
    yield
    _backend.set_backend(previous)


def _bits(a):
    return np.ascontiguousarray(a).view(np.int32)


def _spans(monkeypatch):
    """The spans that the forward's, the input gradient's and the weight gradient's products run
    with, call by call."""
    from cnnlab.functional import _numba_implicit_grad_w as nw

    seen = {"_forward_call": [], "_grad_x_call": [], "taps_grad_w": []}
    for module, name in ((_implicit, "_forward_call"), (_implicit_grad_x, "_grad_x_call"), (nw, "taps_grad_w")):
        original = getattr(module, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            seen[_name].append(kwargs.get("span", args[-1] if _name != "taps_grad_w" else 1))
            return _original(*args, **kwargs)
        monkeypatch.setattr(module, name, spy)
    return seen


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", PAIR_CASES)
def test_pairs_give_the_same_bits_as_single_positions(compiled, monkeypatch, xs, ws, stride, padding, dilation,
                                                      groups):
    """Each case with pairs (the library's ``PAIR_LANES``) and without (0), every input gradient
    implicit (``MIN_LANES`` 1): the forward and the input gradient the same bits, the weight
    gradient close; all three against the loop reference."""
    monkeypatch.setattr(_implicit, "MIN_LANES", 1)
    monkeypatch.setattr(_implicit, "GRAD_X_MIN_LANES", 1)
    x, w, b = _inputs(xs, ws, seed=5 * sum(xs) + sum(ws))
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": "implicit"}
    conv = _conv(w.ndim - 2)
    g = np.random.default_rng(11).uniform(-1, 1, conv(x, w, b, **kw).shape).astype(np.float32)

    def run(pair_lanes):
        monkeypatch.setattr(_implicit, "PAIR_LANES", pair_lanes)
        return (conv(x, w, b, **kw), *F.conv_backward(g, x, w, b, **kw)[:2])

    seen = _spans(monkeypatch)
    lanes = _implicit.PAIR_LANES
    paired = run(lanes)
    spans = {name: list(calls) for name, calls in seen.items()}
    single = run(0)
    np.testing.assert_array_equal(_bits(paired[0]), _bits(single[0]))
    np.testing.assert_array_equal(_bits(paired[1]), _bits(single[1]))
    ry = _against_loop_reference(paired, x, w, b, g, stride, padding, dilation, groups)
    s = _args(w, stride, padding, dilation)[0]
    # which spans ran: pairs wherever the last axis has a unit stride and two positions or more
    # (the forward's and the weight gradient's outputs, the input gradient's cells; an odd row
    # leaves one position to the single kernels)
    if s[-1] == 1:
        assert (2 in spans["_forward_call"]) == (ry.shape[-1] >= 2)
        assert (2 in spans["taps_grad_w"]) == (ry.shape[-1] >= 2)
        assert (2 in spans["_grad_x_call"]) == (x.shape[-1] >= 2 and w.shape[1] <= lanes)
        if ry.shape[-1] % 2:
            assert 1 in spans["_forward_call"] and 1 in spans["taps_grad_w"]
    else:
        # strided along the width: a forward's (and the weight gradient's) neighbours read inputs a
        # stride apart, one position a row; an input gradient's cells of one phase read
        # neighbouring values of the upstream gradient and pair, their two cells a stride apart
        assert set(spans["_forward_call"] + spans["taps_grad_w"]) == {1}
        assert 2 in spans["_grad_x_call"]


def test_a_padded_layer_runs_both_spans(compiled, monkeypatch):
    """With the padding skipped by classes of positions, the interior and the top and bottom
    edges pair and the left and right edges (a column wide) do not: both kernels run, each on
    its own phases, with no padded copy of the input (``PAIRS_PADDED`` off: this even width would
    take the copy)."""
    monkeypatch.setattr(_implicit, "PACK_COST", 0.0)
    monkeypatch.setattr(_implicit, "SEGMENT_COST", 0.0)
    monkeypatch.setattr(_implicit, "RUN_BLOCKS", False)
    monkeypatch.setattr(_implicit, "PAIRS_PADDED", False)
    from tests.functional.spies import spied

    copies = spied(monkeypatch, _implicit, "_padded_input")
    seen = _spans(monkeypatch)
    x, w, b = _inputs((2, 16, 8, 10), (16, 8, 3, 3), seed=3)
    y = F.conv2d(x, w, b, padding=1, groups=2, method="implicit")
    g = np.random.default_rng(2).uniform(-1, 1, y.shape).astype(np.float32)
    gx, gw, _ = F.conv_backward(g, x, w, b, padding=1, groups=2, method="implicit")
    assert sorted(seen["_forward_call"][:2]) == [1, 2]  # (the forward's two calls)
    assert sorted(seen["_grad_x_call"]) == [1, 2] and sorted(seen["taps_grad_w"]) == [1, 2]
    assert copies["_padded_input"] == 0
    pads, one = ((1, 1), (1, 1)), (1, 1)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    np.testing.assert_allclose(y, _naive.naive_conv(x64, w64, b.astype(np.float64), one, pads, one, 2),
                               rtol=1e-5, atol=1e-4)
    rx, rw = _naive.naive_conv_backward(g.astype(np.float64), x64, w64, one, pads, one, 2)[:2]
    np.testing.assert_allclose(gx, rx, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gw, rw, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("width, filters, stride, padded", [
    (10, 8, 1, True),  # even rows of pairs: the padded copy, every position paired
    (9, 8, 1, False),  # odd rows: the classes (the cost model's choice here)
    (10, 16, 1, False),  # 16 filters a group: no pairs
    (10, 8, (1, 2), False),  # strided along the width: no pairs in the forward
])
def test_paired_forwards_of_even_rows_read_a_padded_copy(compiled, monkeypatch, width, filters, stride, padded):
    """Where every position of a paired forward would pair on a padded copy (even output rows),
    the forward reads the copy though the cost model would skip the padding by classes
    (``PACK_COST`` 0 makes the classes pay); elsewhere the model's choice stands.  Either way
    the result matches the loop reference."""
    monkeypatch.setattr(_implicit, "PACK_COST", 0.0)
    monkeypatch.setattr(_implicit, "SEGMENT_COST", 0.0)
    from tests.functional.spies import spied

    copies = spied(monkeypatch, _implicit, "_padded_input")
    seen = _spans(monkeypatch)
    x, w, b = _inputs((2, 16, 6, width), (2 * filters, 8, 3, 3), seed=width + filters)
    y = F.conv2d(x, w, b, stride=stride, padding=1, groups=2, method="implicit")
    assert (copies["_padded_input"] == 1) == padded
    if padded:
        assert seen["_forward_call"] == [2]  # (one call: every position in a pair)
    pads, one = ((1, 1), (1, 1)), (1, 1)
    s = (stride, stride) if isinstance(stride, int) else stride
    want = _naive.naive_conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), s, pads, one, 2)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-4)


def _tables(rng, phases):
    """Random forward tables: ``phases`` lists of ``(positions, offsets)`` runs, each phase padded
    to a multiple of 6 entries (a real position, offset -1) as the library pads them."""
    pos, yoff, delta, lengths, dlen = [], [], [], [], []
    for p, y in phases:
        extra = -len(p) % 6
        pos.append(np.concatenate([p, np.full(extra, p[0] if len(p) else 0)]))
        yoff.append(np.concatenate([y, np.full(extra, -1)]))
        taps = rng.integers(0, 50, rng.integers(1, 5))
        delta.append(taps)
        lengths.append(len(pos[-1]))
        dlen.append(len(taps))
    out = [np.concatenate(a).astype(np.int64) for a in (pos, yoff, delta)]
    for a in out:
        a.flags.writeable = False
    return out, lengths, dlen


def _pairs_in_order(p, y, out_step=1):
    """The check written pair by pair: walking the positions in order, a position and the next
    one pair where the next is one further on in ``p`` and ``out_step`` further on in ``y``;
    ``(firsts, singles)``."""
    firsts, singles, i = [], [], 0
    while i < len(p):
        if i + 1 < len(p) and p[i + 1] == p[i] + 1 and y[i + 1] == y[i] + out_step:
            firsts.append(i)
            i += 2
        else:
            singles.append(i)
            i += 1
    return firsts, singles


@pytest.mark.parametrize("step", [1, 2, 3])
def test_split_pairs_follows_the_definition(step):
    """Phases with an odd count, a gap in the input or in the output, and paired ones; each
    phase's paired positions (their first ones) and single ones against a check written pair by
    pair, a phase in both kinds where it has both.  ``step``: the output's distance between a
    pair's positions (an input gradient's cells of one phase, a stride apart), the outputs below
    scaled by it, and one phase whose outputs are 1 apart, which pairs only with step 1."""
    from cnnlab.functional import _numba_implicit as ni
    from cnnlab.functional import _pairs

    rng = np.random.default_rng(0)
    runs = [
        (np.arange(100, 112), np.arange(7, 19) * step),  # 12 adjacent: 6 pairs
        (np.arange(5, 10), np.arange(0, 5) * step),  # odd count: 2 pairs and the last single
        (np.array([0, 1, 3, 4]), np.array([0, 1, 2, 3]) * step),  # a gap in the input between pairs: 2 pairs
        (np.array([0, 2, 3, 4]), np.array([0, 1, 2, 3]) * step),  # the first not adjacent: single, pair, single
        (np.array([10, 11, 12, 13]), np.array([0, 1, 5, 7]) * step),  # the second pair not adjacent in the output
        (np.arange(40, 54), np.arange(200, 214) * step),  # 14: pairs, 7 of them padded to 12
        (np.array([3, 5, 7]), np.array([0, 1, 2]) * step),  # none adjacent: single only
        (np.arange(60, 64), np.arange(10, 14)),  # outputs 1 apart: pairs with step 1 only
    ]
    (pos, yoff, delta), lengths, dlen = _tables(rng, runs)
    pstart, dstart = ni.starts(lengths), ni.starts(dlen)
    paired, rest = _pairs.split_pairs(pos, pstart, yoff, delta, dstart, out_step=step)
    want = [_pairs_in_order(p, y, step) for p, y in runs]
    assert bool(want[-1][0]) == (step == 1)
    assert paired[0].tolist() == [f for f, (firsts, _) in enumerate(want) if firsts]
    assert rest[0].tolist() == [f for f, (_, singles) in enumerate(want) if singles]
    for kind, which in ((paired, 0), (rest, 1)):
        for j, f in enumerate(kind[0]):
            p, y = runs[f]
            at = want[f][which]
            got_p = kind[1][kind[2][j]:kind[2][j + 1]]
            got_y = kind[3][kind[2][j]:kind[2][j + 1]]
            assert len(got_p) % 6 == 0
            np.testing.assert_array_equal(got_p[:len(at)], p[at])
            np.testing.assert_array_equal(got_y[:len(at)], y[at])
            assert (got_y[len(at):] == -1).all()
            np.testing.assert_array_equal(kind[4][kind[5][j]:kind[5][j + 1]], delta[dstart[f]:dstart[f + 1]])


def test_split_segments_follows_the_definition(monkeypatch):
    from cnnlab.functional import _numba_implicit as ni
    from cnnlab.functional import _pairs

    monkeypatch.setattr(_pairs, "SMALL_SEGMENT", 0)  # (no segment joined to another: see below)

    segs = [
        (np.arange(0, 8), np.arange(30, 38), 0),  # pairs
        (np.arange(20, 23), np.arange(0, 3), 1),  # odd
        (np.array([50, 51, 60, 61]), np.array([3, 4, 9, 10]), 2),  # pairs with a gap between them
        (np.array([70, 72]), np.array([5, 6]), 0),  # not adjacent in the input
        (np.array([80, 81]), np.array([5, 7]), 1),  # not adjacent in the gradient
    ]
    pos = np.concatenate([s[0] for s in segs]).astype(np.int64)
    goff = np.concatenate([s[1] for s in segs]).astype(np.int64)
    seg = ni.starts([len(s[0]) for s in segs])
    segf = np.array([s[2] for s in segs], np.int64)
    for a in (pos, goff, segf):
        a.flags.writeable = False
    paired, rest = _pairs.split_segments(pos, goff, seg, segf)
    assert paired[3].tolist() == [0, 1, 2] and rest[3].tolist() == [1, 0, 1]
    np.testing.assert_array_equal(paired[0], [0, 2, 4, 6, 20, 50, 60])  # (the odd segment's first two pair)
    np.testing.assert_array_equal(paired[1], [30, 32, 34, 36, 0, 3, 9])
    np.testing.assert_array_equal(paired[2], [0, 4, 5, 7])
    np.testing.assert_array_equal(rest[0], [22, 70, 72, 80, 81])
    np.testing.assert_array_equal(rest[1], [2, 5, 6, 5, 7])
    np.testing.assert_array_equal(rest[2], [0, 1, 3, 5])


def test_split_segments_joins_short_segments_class_by_class(monkeypatch):
    """Segments shorter than ``SMALL_SEGMENT`` (pairs, where paired) are joined class by class,
    in their order, after the longer ones, which keep theirs; each kind on its own."""
    from cnnlab.functional import _numba_implicit as ni
    from cnnlab.functional import _pairs

    monkeypatch.setattr(_pairs, "SMALL_SEGMENT", 4)
    segs = [  # (positions, gradient offsets, class): two images' segments
        (np.arange(0, 10), np.arange(0, 10), 0),  # 5 pairs: kept
        (np.array([20, 22, 24]), np.array([10, 11, 12]), 1),  # odd, 3: joined
        (np.array([30, 31]), np.array([13, 14]), 2),  # 1 pair: joined
        (np.arange(40, 50), np.arange(15, 25), 0),  # 5 pairs: kept
        (np.array([60, 62, 64]), np.array([25, 26, 27]), 1),  # joined to the first odd one
        (np.array([70, 71]), np.array([28, 29]), 2),  # joined to the first single pair
        (np.array([80, 82, 84, 86, 88]), np.array([30, 31, 32, 33, 34]), 3),  # odd, 5: kept
    ]
    pos = np.concatenate([a for a, _, _ in segs]).astype(np.int64)
    goff = np.concatenate([b for _, b, _ in segs]).astype(np.int64)
    seg = ni.starts([len(a) for a, _, _ in segs])
    segf = np.array([f for _, _, f in segs], np.int64)
    for a in (pos, goff, segf):
        a.flags.writeable = False
    paired, rest = _pairs.split_segments(pos, goff, seg, segf)
    assert paired[3].tolist() == [0, 0, 2] and paired[2].tolist() == [0, 5, 10, 12]
    np.testing.assert_array_equal(paired[0], [0, 2, 4, 6, 8, 40, 42, 44, 46, 48, 30, 70])
    np.testing.assert_array_equal(paired[1], [0, 2, 4, 6, 8, 15, 17, 19, 21, 23, 13, 28])
    assert rest[3].tolist() == [3, 1] and rest[2].tolist() == [0, 5, 11]
    np.testing.assert_array_equal(rest[0], [80, 82, 84, 86, 88, 20, 22, 24, 60, 62, 64])
    np.testing.assert_array_equal(rest[1], [30, 31, 32, 33, 34, 10, 11, 12, 25, 26, 27])


def test_pair_vector_operations():
    """``wfma_pair_at``: ``acc + [a[i], a[i+1]] * 8 * v`` lane by lane, one rounding (integers
    here, so every value is exact); ``copy_pair``: two values' bits unchanged (a NaN's payload
    and a negative zero included)."""
    from cnnlab.functional._numba_simd import copy_pair, wfma_pair_at, wload, wstore

    @numba.njit
    def run(acc, a, i, v, out):
        wstore(out, 0, wfma_pair_at(wload(acc, 0), a, i, wload(v, 0)))

    @numba.njit
    def copy(dst, i, src, j):
        copy_pair(dst, i, src, j)

    rng = np.random.default_rng(1)
    a = rng.integers(-50, 50, 11).astype(np.float32)
    acc = rng.integers(-1000, 1000, 16).astype(np.float32)
    v = rng.integers(-50, 50, 16).astype(np.float32)
    for i in (0, 3, 9):
        out = np.empty(16, np.float32)
        run(acc, a, i, v, out)
        want = acc + np.tile(a[i:i + 2], 8) * v
        np.testing.assert_array_equal(out, want)
    src = np.array([1.5, np.nan, -0.0, 3.0], np.float32)
    src.view(np.int32)[1] = 0x7FC01234  # (a NaN with a payload)
    dst = np.zeros(5, np.float32)
    copy(dst, 1, src, 1)
    np.testing.assert_array_equal(dst.view(np.int32)[1:3], src.view(np.int32)[1:3])
    assert dst[0] == 0 and dst[3] == 0 and dst[4] == 0


# A grouped layer of 8 filters a group and a layer of 32 filters, forward and backward, then
# Numba's cache hits and misses of the four product kernels (both spans).
CACHED = """
import json
import numpy as np
import cnnlab.functional as F
from cnnlab.functional import _backend, _numba_implicit as ni, _numba_implicit_grad_w as nw

_backend.set_backend("numba")
x = np.random.default_rng(0).standard_normal((2, 16, 8, 8)).astype(np.float32)
for w, groups in ((np.ones((16, 8, 3, 3), np.float32), 2), (np.ones((32, 16, 3, 3), np.float32), 1)):
    y = F.conv2d(x, w, padding=1, groups=groups, method="implicit")
    F.conv_backward(np.ones_like(y), x, w, None, padding=1, groups=groups, method="implicit")
kernels = (ni._taps_forward, ni._taps_forward_pairs(), nw._taps_grad_w, nw._taps_grad_w_pairs())
print(json.dumps({k.py_func.__name__: [sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values())]
                  for k in kernels}))
"""


def test_the_kernels_of_both_spans_load_from_numbas_disk_cache(tmp_path):
    """The two spans are closures of one source, compiled under names of their own: a second
    process finds all four in the disk cache (a closure that held a function object was
    compiled anew by every process, its cache key never the same)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[2] / "src")
    path = src + os.pathsep + os.environ.get("PYTHONPATH", "")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=path)
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", CACHED], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert set(first) == {"_taps_forward", "_taps_forward_pairs", "_taps_grad_w", "_taps_grad_w_pairs"}
    assert all(misses for _, misses in first.values())  # (a fresh cache: compiled)
    assert all(hits and not misses for hits, misses in second.values()), second


@pytest.mark.parametrize("ws, groups", [((32, 8, 3, 3), 4), ((32, 16, 3, 3), 2)])
def test_grouped_weight_gradient_repeats_bit_for_bit(compiled, monkeypatch, ws, groups):
    """Every group's runs of positions in one call, the last ones (of the last groups) shared out
    to whichever thread is free, each into sums of its own: repeated calls give the same bits,
    and agree with the loop reference (8 filters a group: pairs; 16: one position a row)."""
    from cnnlab.functional import _numba_implicit_grad_w as nw

    monkeypatch.setattr(nw, "GRAD_W_TAIL", 8)
    x, w, b = _inputs((8, 32, 24, 24), ws, seed=21)
    g = np.random.default_rng(8).uniform(-1, 1, (8, 32, 24, 24)).astype(np.float32)
    kw = {"padding": 1, "groups": groups, "method": "implicit"}
    first = F.conv_backward(g, x, w, b, **kw)[1]
    for _ in range(5):
        np.testing.assert_array_equal(_bits(F.conv_backward(g, x, w, b, **kw)[1]), _bits(first))
    one = (1, 1)
    rw = _naive.naive_conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), one,
                                    ((1, 1), (1, 1)), one, groups)[1]
    np.testing.assert_allclose(first, rw, rtol=1e-5, atol=1e-5 * np.abs(rw).max())


def _aligned_by_hand(p, y):
    """The check of :func:`_pairs.aligned_runs` for one phase's real positions, written row by
    row: rows are the chains of positions one after another in ``p``; a row of ``L >= 6`` gives
    blocks from ``min(6j, L - 6)``, a place already in block ``j - 1`` written nowhere; the
    shorter rows' positions follow in order, padded to a multiple of 6."""
    rows, row = [], [0]
    for i in range(1, len(p)):
        if p[i] == p[i - 1] + 1:
            row.append(i)
        else:
            rows.append(row)
            row = [i]
    rows.append(row)
    got_p, got_y, rest = [], [], []
    for row in rows:
        if len(row) < 6:
            rest += row
            continue
        for j in range(-(-len(row) // 6)):
            first = min(6 * j, len(row) - 6)
            for k in range(first, first + 6):
                got_p.append(p[row[k]])
                got_y.append(y[row[k]] if k >= 6 * j else -1)
    got_p += [p[i] for i in rest] + [p[0]] * (-len(rest) % 6)
    got_y += [y[i] for i in rest] + [-1] * (-len(rest) % 6)
    return got_p, got_y


def test_aligned_runs_follow_the_definition():
    """Rows of 10, 6, 14, 3 and 2 positions, a gap in the input, padding entries: each phase's
    re-tiled positions and offsets against the check written row by row; every block of a long
    row a run; every real position written once; None where the rows fill whole blocks already
    or the positions would grow by more than allowed."""
    from cnnlab.functional import _numba_implicit as ni
    from cnnlab.functional import _pairs

    rng = np.random.default_rng(3)
    phases = [
        (np.r_[100:110, 200:206, 300:314], np.arange(30)),  # rows of 10, 6, 14
        (np.r_[7:10, 20:22, 40:52, 60:61], np.arange(50, 68)),  # 3, 2 (short), 12, 1
        (np.r_[0:8], np.arange(8) * 3),  # the offsets need not follow the positions
    ]
    (pos, yoff, _), lengths, _ = _tables(rng, phases)
    pstart = ni.starts(lengths)
    got = _pairs.aligned_runs(pos, pstart, yoff, 1.0)
    assert got is not None
    got_pos, got_start, got_y = got
    assert len(got_start) == len(phases) + 1
    for f, (p, y) in enumerate(phases):
        a, b = got_start[f], got_start[f + 1]
        want_p, want_y = _aligned_by_hand(list(p), list(y))
        assert got_pos[a:b].tolist() == want_p
        assert got_y[a:b].tolist() == want_y
        kept = got_y[a:b] >= 0
        written = sorted(zip(got_pos[a:b][kept].tolist(), got_y[a:b][kept].tolist(), strict=True))
        assert written == sorted(zip(p.tolist(), y.tolist(), strict=True))
    # the first phase: rows of 10, 6 and 14 in 2 + 1 + 3 blocks, each one after another in the input
    blocks = got_pos[got_start[0]:got_start[1]].reshape(-1, 6)
    assert blocks.shape[0] == 6 and (np.diff(blocks, axis=1) == 1).all()
    assert _pairs.aligned_runs(pos, pstart, yoff, 0.05) is None  # (6 positions more than 60)
    whole = [(np.r_[0:12, 50:56], np.arange(18))]  # rows of 12 and 6: whole blocks already
    (pos, yoff, _), lengths, _ = _tables(rng, whole)
    assert _pairs.aligned_runs(pos, ni.starts(lengths), yoff, 1.0) is None
