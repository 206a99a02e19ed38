"""Every compiled kernel gives the NumPy paths' results when its jobs are shared among threads.

The registry's samples are small, so their kernels normally run on the calling thread only
(``_backend.PARALLEL_MIN_WORK``).  Here that threshold is 0 and two threads are used, so every
kernel the samples reach splits its jobs, and each thread works in its own scratch buffers and
rows of partial sums: a kernel that shared a buffer between threads, or dropped or repeated a
job at the split, gives wrong values or gradients.  The oracle is the NumPy backend (other code:
no compiled kernel runs there), forward and backward.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.functional import _backend
from tests.functional.opinfo import OpInfo
from tests.functional.test_registry import REGISTRY

TOL = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-10), np.dtype(np.float32): dict(rtol=2e-5, atol=2e-5)}


@pytest.fixture
def two_threads(monkeypatch):
    numba = pytest.importorskip("numba")
    if not _backend.numba_available() or numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs Numba with 2 threads or more")
    monkeypatch.setattr(_backend, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setitem(_backend._state, "threads", 2)


def _run(info: OpInfo, sample, backend: str):
    previous = _backend.set_backend(backend)
    try:
        out = info.op(*sample.args, **sample.kwargs)
        out = out[0] if isinstance(out, tuple) else out
        g = np.random.default_rng(3).uniform(-1, 1, np.shape(out)).astype(out.dtype)
        return out, info.grads(g, sample)
    finally:
        _backend.set_backend(previous)


@pytest.mark.parametrize("info", REGISTRY, ids=[op.name for op in REGISTRY])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_kernels_match_the_numpy_paths(two_threads, info: OpInfo, dtype):
    for sample in list(info.samples(np.dtype(dtype)))[:8]:
        out, grads = _run(info, sample, "numba")
        want, want_grads = _run(info, sample, "numpy")
        tol = TOL[np.dtype(dtype)]
        scale = max(1.0, float(np.nanmax(np.abs(want), initial=0.0)))
        np.testing.assert_allclose(out, want, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=repr(sample))
        for got, ref in zip(grads, want_grads, strict=True):
            if ref is None:
                assert got is None, sample
                continue
            scale = max(1.0, float(np.nanmax(np.abs(ref), initial=0.0)))
            np.testing.assert_allclose(got, ref, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=repr(sample))


# Calls large enough that both threads' runs last milliseconds and overlap (the registry's
# samples finish on the calling thread before a helper thread wakes): a scratch buffer shared
# between the threads would be overwritten while in use.  (On a machine whose other core is busy
# the runs may not overlap, and such a bug may pass; a correct kernel passes either way.)  Each
# case: a function of (cnnlab.functional, rng) returning the arrays to compare.
def _conv(x_shape, w_shape, **kw):
    def case(F, rng):
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        y = F.conv2d(x, w, **kw)
        g = rng.standard_normal(y.shape).astype(np.float32)
        return (y, *F.conv_backward(g, x, w, None, **kw)[:2])
    return case


def _pool_bn(F, rng):
    x = rng.standard_normal((32, 32, 32, 32)).astype(np.float32)
    g = rng.standard_normal((32, 32, 16, 16)).astype(np.float32)
    outs = []
    for pool in (F.max_pool2d, F.avg_pool2d):
        outs.append(pool(x, 2, 2))
        outs.append(pool(x, 3, 2, 1))
    outs.append(F.max_pool_backward(g, x, 2, 2))
    outs.append(F.avg_pool_backward(g, x, 2, 2))
    outs.append(F.batch_norm(x, None, None, training=True))
    outs.append(F.batch_norm_backward(g, x[:, :, :16, :16].copy(), training=True)[0])
    return tuple(outs)


CONCURRENT = {
    "direct depthwise, buffered": _conv((16, 32, 48, 48), (32, 1, 3, 3), padding=1, groups=32, method="direct"),
    "direct depthwise, small planes": _conv((64, 64, 14, 14), (64, 1, 3, 3), padding=1, groups=64, method="direct"),
    "direct depthwise, 9-wide kernel": _conv((8, 16, 40, 40), (16, 1, 9, 9), padding=4, groups=16, method="direct"),
    "direct first layer": _conv((32, 3, 48, 48), (16, 3, 5, 5), padding=2, method="direct"),
    "blocked backward": _conv((32, 4, 40, 40), (16, 4, 3, 3), padding=1, method="direct"),
    "implicit": _conv((32, 32, 24, 24), (64, 32, 3, 3), padding=1, method="implicit"),
    "implicit, stride 2": _conv((32, 32, 24, 24), (64, 32, 3, 3), padding=1, stride=2, method="implicit"),
    "gemm (im2col, col2im)": _conv((16, 8, 32, 32), (8, 8, 3, 3), padding=1, method="gemm"),
    "pooling and batch norm": _pool_bn,
}


@pytest.mark.parametrize("name", list(CONCURRENT))
def test_kernels_running_on_both_threads_at_once_match_the_numpy_paths(two_threads, name):
    import cnnlab.functional as F

    results = {}
    for backend in ("numba", "numpy"):
        previous = _backend.set_backend(backend)
        try:
            results[backend] = CONCURRENT[name](F, np.random.default_rng(11))
        finally:
            _backend.set_backend(previous)
    for got, want in zip(results["numba"], results["numpy"], strict=True):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * scale)
