"""Generic operator tests: every registry entry against its loop reference, PyTorch and SciPy,
dtype rules, float64 gradient checks of its backward, and its list of bad inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.functional import ops_activation, ops_conv, ops_loss, ops_pool
from tests.functional.opinfo import OpInfo, Sample, rng, scipy_signal, torch

REGISTRY: list[OpInfo] = [*ops_conv.OPS, *ops_pool.OPS, *ops_activation.OPS, *ops_loss.OPS]

FLOAT_TOL = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-10), np.dtype(np.float32): dict(rtol=1e-5, atol=1e-5)}


def _ids(ops):
    return [op.name for op in ops]


def _samples(info: OpInfo, dtype) -> list[Sample]:
    return list(info.samples(np.dtype(dtype)))


def test_oracles_present_in_ci():
    """CI installs torch and SciPy: the oracle tests must never be skipped there."""
    if os.environ.get("CI"):
        assert torch is not None, "torch is not installed in CI"
        assert scipy_signal is not None, "scipy is not installed in CI"


@pytest.mark.parametrize("info", REGISTRY, ids=_ids(REGISTRY))
def test_matches_loop_reference_float64(info: OpInfo):
    samples = _samples(info, np.float64)
    assert samples
    for s in samples:
        out = info.op(*s.args, **s.kwargs)
        out = out[0] if isinstance(out, tuple) else out
        ref = info.reference(*s.args, **s.kwargs)
        assert out.shape == np.shape(ref), s
        expected = np.asarray(ref, dtype=np.float64)
        np.testing.assert_allclose(out, expected, err_msg=repr(s), **FLOAT_TOL[np.dtype(np.float64)])


@pytest.mark.parametrize("info", REGISTRY, ids=_ids(REGISTRY))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtype_is_kept(info: OpInfo, dtype):
    for s in _samples(info, dtype)[:6]:
        out = info.op(*s.args, **s.kwargs)
        out = out[0] if isinstance(out, tuple) else out
        assert out.dtype == np.dtype(dtype), s
        grads = info.grads(np.ones_like(out), s)
        for a, g in zip(s.args, grads, strict=True):
            if a is not None and g is not None:
                assert g.dtype == np.dtype(dtype) and g.shape == np.shape(a), s


EXACT = [info for info in REGISTRY if info.exact_int]


@pytest.mark.parametrize("info", EXACT, ids=_ids(EXACT))
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_integer_inputs_give_exact_int64(info: OpInfo, dtype):
    for s in _samples(info, dtype):
        out = info.op(*s.args, **s.kwargs)
        out = out[0] if isinstance(out, tuple) else out
        assert out.dtype == np.int64, s
        args = tuple(None if a is None else np.asarray(a).astype(object) for a in s.args)
        ref = info.reference(*args, **s.kwargs)  # python ints: no overflow, no rounding
        assert out.tolist() == np.asarray(ref).tolist(), s


@pytest.mark.skipif(torch is None, reason="torch not installed")
@pytest.mark.parametrize("info", [i for i in REGISTRY if i.torch_ref], ids=_ids([i for i in REGISTRY if i.torch_ref]))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch(info: OpInfo, dtype):
    compared = 0
    for s in _samples(info, dtype):
        expected = info.torch_ref(*s.args, **s.kwargs)
        if expected is None:
            continue
        out = info.op(*s.args, **s.kwargs)
        out = out[0] if isinstance(out, tuple) else out
        assert out.shape == expected.shape, s
        np.testing.assert_allclose(out, expected, err_msg=repr(s), **FLOAT_TOL[np.dtype(dtype)])
        compared += 1
    assert compared > 0


@pytest.mark.skipif(scipy_signal is None, reason="scipy not installed")
@pytest.mark.parametrize("info", [i for i in REGISTRY if i.scipy_ref], ids=_ids([i for i in REGISTRY if i.scipy_ref]))
@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_matches_scipy(info: OpInfo, dtype):
    compared = 0
    for s in _samples(info, dtype):
        if not info.scipy_ok(s):
            continue
        out = info.op(*s.args, **s.kwargs)
        expected = info.scipy_ref(*s.args, **s.kwargs)
        assert out.shape == expected.shape, s
        if np.dtype(dtype).kind == "i":
            assert out.tolist() == expected.tolist(), s
        else:
            np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12, err_msg=repr(s))
        compared += 1
    assert compared > 0


def _numeric_grad(info: OpInfo, s: Sample, i: int, g: np.ndarray, picks: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of <op(args), g> with respect to the picked entries of args[i]."""
    base = np.array(s.args[i], dtype=np.float64)
    out = np.empty(len(picks))
    for j, flat in enumerate(picks):
        vals = []
        for sign in (1, -1):
            arr = base.copy()
            arr.flat[flat] += sign * eps
            args = list(s.args)
            args[i] = arr
            y = info.op(*args, **s.kwargs)
            y = y[0] if isinstance(y, tuple) else y
            vals.append(float(np.sum(y * g)))
        out[j] = (vals[0] - vals[1]) / (2 * eps)
    return out


@pytest.mark.parametrize("info", REGISTRY, ids=_ids(REGISTRY))
def test_backward_matches_central_differences(info: OpInfo):
    r = rng(1)
    for s in _samples(info, np.float64)[::2]:
        y = info.op(*s.args, **s.kwargs)
        y = y[0] if isinstance(y, tuple) else y
        g = r.standard_normal(y.shape)
        grads = info.grads(g, s)
        assert len(grads) == len(s.args)
        for i, (a, analytic) in enumerate(zip(s.args, grads, strict=True)):
            if a is None:
                assert analytic is None, s
                continue
            size = np.size(a)
            picks = np.arange(size) if size <= 24 else r.choice(size, 24, replace=False)
            numeric = _numeric_grad(info, s, i, g, picks)
            np.testing.assert_allclose(np.ravel(analytic)[picks], numeric, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{s} input {i}")


@pytest.mark.parametrize("info", REGISTRY, ids=_ids(REGISTRY))
def test_bad_inputs_raise_clear_errors(info: OpInfo):
    cases = list(info.errors())
    assert cases
    for case in cases:
        with pytest.raises(case.exc, match=case.match):
            info.op(*case.args, **case.kwargs)
