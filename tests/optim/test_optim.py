"""Optimizers and learning-rate schedulers: parity with torch.optim, state dicts, errors."""

import copy
import math

import numpy as np
import pytest

from cnnlab.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    OneCycleLR,
    Optimizer,
    StepLR,
)

try:
    import torch
except ImportError:  # parity tests skip; everything else runs
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

SHAPES = [(4, 3), (6,), (2, 2, 3)]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-6, atol=1e-6)}


class FakeParam:
    """The duck-typed parameter contract: a .data array updated in place and a .grad."""

    def __init__(self, data):
        self.data = np.array(data)
        self.grad = None


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [FakeParam(rng.standard_normal(shape).astype(dtype)) for shape in SHAPES]


def grad_sequence(dtype, steps, seed=1):
    """Per step, one gradient per parameter (or None: parameter 1 misses every fourth step)."""
    rng = np.random.default_rng(seed)
    sequence = []
    for step in range(steps):
        scale = math.exp(rng.normal())  # varying magnitudes exercise AMSGrad's running max
        grads = [(scale * rng.standard_normal(shape)).astype(dtype) for shape in SHAPES]
        if step % 4 == 3:
            grads[1] = None
        sequence.append(grads)
    return sequence


def build_groups(params, groups):
    """``groups`` lists dicts whose "params" are indices into ``params``."""
    if groups is None:
        return list(params)
    return [{**g, "params": [params[i] for i in g["params"]]} for g in groups]


# -- parity with torch.optim --------------------------------------------------------------------

OPTIMIZER_CASES = [
    ("SGD", dict(lr=0.1), None),
    ("SGD", dict(lr=0.1, momentum=0.9), None),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.5), None),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True), None),
    ("SGD", dict(lr=0.1, weight_decay=0.1), None),
    ("SGD", dict(lr=0.1, momentum=0.8, weight_decay=0.05, nesterov=True, maximize=True), None),
    ("SGD", dict(lr=0.1, maximize=True), None),
    ("SGD", dict(lr=0.1, momentum=0.9), [{"params": [0, 1]}, {"params": [2], "lr": 0.01,
                                                            "momentum": 0.5, "weight_decay": 0.1}]),
    ("Adam", dict(lr=0.01), None),
    ("Adam", dict(lr=0.01, weight_decay=0.1), None),
    ("Adam", dict(lr=0.01, amsgrad=True), None),
    ("Adam", dict(lr=0.02, betas=(0.5, 0.9)), None),
    ("Adam", dict(lr=0.02, betas=(0.3, 0.99), eps=1e-6), None),
    ("Adam", dict(lr=0.01, maximize=True, amsgrad=True, weight_decay=0.01), None),
    ("Adam", dict(lr=0.01), [{"params": [0]}, {"params": [1, 2], "lr": 0.001,
                                               "betas": (0.8, 0.99), "weight_decay": 0.1}]),
    ("AdamW", dict(lr=0.01), None),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True), None),
    ("AdamW", dict(lr=0.01, maximize=True), None),
    ("AdamW", dict(lr=0.01), [{"params": [0, 2], "amsgrad": True}, {"params": [1], "lr": 0.1,
                                                                      "weight_decay": 0.5}]),
]  # fmt: skip
OURS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}


def case_id(case):
    name, kwargs, groups = case
    options = ",".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{name}({options}){'-groups' if groups else ''}"


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=[case_id(c) for c in OPTIMIZER_CASES])
def test_optimizer_matches_torch_for_20_steps(case, dtype):
    name, kwargs, groups = case
    params = make_params(dtype)
    tensors = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    ours = OURS[name](build_groups(params, groups), **kwargs)
    theirs = getattr(torch.optim, name)(build_groups(tensors, groups), **kwargs)
    for grads in grad_sequence(dtype, 20):
        for p, t, g in zip(params, tensors, grads, strict=True):
            p.grad = g
            t.grad = None if g is None else torch.tensor(g.copy())
        ours.step()
        theirs.step()
        for p, t in zip(params, tensors, strict=True):
            assert p.data.dtype == dtype
            np.testing.assert_allclose(p.data, t.detach().numpy(), **TOL[dtype])


@needs_torch
@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                          ("Adam", dict(lr=0.01, amsgrad=True)),
                                          ("AdamW", dict(lr=0.01, weight_decay=0.1))])  # fmt: skip
def test_state_dict_interoperates_with_torch(name, kwargs):
    """cnnlab's state dict loads into torch.optim (and back) and training continues in step."""
    grads = grad_sequence(np.float64, 15)
    params = make_params(np.float64)
    ours = OURS[name](params, **kwargs)
    for step_grads in grads[:5]:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g
        ours.step()
    tensors = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    theirs = getattr(torch.optim, name)(tensors, **kwargs)
    state = ours.state_dict()
    state["state"] = {
        i: {k: torch.tensor(float(v) if k == "step" else v) for k, v in entry.items()}
        for i, entry in state["state"].items()
    }
    theirs.load_state_dict(state)
    for step_grads in grads[5:10]:
        for p, t, g in zip(params, tensors, step_grads, strict=True):
            p.grad, t.grad = g, None if g is None else torch.tensor(g.copy())
        ours.step()
        theirs.step()
    for p, t in zip(params, tensors, strict=True):
        np.testing.assert_allclose(t.detach().numpy(), p.data, **TOL[np.float64])
    # and back: torch's state dict (tensors, float steps, extra torch options) into a new cnnlab
    back = OURS[name]([FakeParam(t.detach().numpy().copy()) for t in tensors], **kwargs)
    back.load_state_dict(theirs.state_dict())
    for step_grads in grads[10:]:
        for p, q, g in zip(params, back.param_groups[0]["params"], step_grads, strict=True):
            p.grad = q.grad = g
        ours.step()
        back.step()
    for p, q in zip(params, back.param_groups[0]["params"], strict=True):
        np.testing.assert_allclose(q.data, p.data, **TOL[np.float64])


# -- behaviour without torch ----------------------------------------------------------------------


def test_sgd_momentum_and_nesterov_follow_the_update_rule():
    lr, mu = 0.1, 0.9
    g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    plain, nesterov = FakeParam([1.0, 1.0]), FakeParam([1.0, 1.0])
    opts = [SGD([plain], lr=lr, momentum=mu), SGD([nesterov], lr=lr, momentum=mu, nesterov=True)]
    for g in (g1, g2):
        plain.grad, nesterov.grad = g, g
        for opt in opts:
            opt.step()
    buf2 = mu * g1 + g2
    np.testing.assert_allclose(plain.data, 1 - lr * g1 - lr * buf2, rtol=1e-15)
    np.testing.assert_allclose(
        nesterov.data, 1 - lr * (g1 + mu * g1) - lr * (g2 + mu * buf2), rtol=1e-15
    )


def test_adam_first_step_moves_each_weight_by_lr_against_the_gradient():
    p = FakeParam([1.0, -3.0, 0.5])
    opt = Adam([p], lr=0.01, eps=0.0)
    p.grad = np.array([4.0, -0.001, 2.0])
    opt.step()
    np.testing.assert_allclose(p.data, [0.99, -2.99, 0.49], rtol=1e-13)
    assert opt.state[p]["step"] == 1


def test_adamw_decays_weights_multiplicatively_and_adam_does_not():
    p, q = FakeParam([2.0, -4.0]), FakeParam([2.0, -4.0])
    opt_w, opt_a = AdamW([p], lr=0.1, weight_decay=0.5), Adam([q], lr=0.1, weight_decay=0.5)
    p.grad, q.grad = np.zeros(2), np.zeros(2)
    opt_w.step()
    opt_a.step()
    np.testing.assert_allclose(p.data, [2.0 * 0.95, -4.0 * 0.95], rtol=1e-15)
    assert not np.allclose(q.data, p.data)  # coupled decay goes through the normalised update


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda ps: Adam(ps, lr=0.1, amsgrad=True, maximize=True),
                                  lambda ps: AdamW(ps, lr=0.1)])  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_updates_in_place_keep_dtype_and_leave_grad_alone(make, dtype):
    params = make_params(dtype)
    arrays = [p.data for p in params]
    before = [a.copy() for a in arrays]
    opt = make(params)
    grads = [np.ones(shape, dtype=dtype) for shape in SHAPES]
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    opt.step()
    opt.step()
    for p, array, old, g in zip(params, arrays, before, grads, strict=True):
        assert p.data is array and p.data.dtype == dtype
        assert not np.array_equal(p.data, old)
        assert p.grad is g and np.all(g == 1)


def test_params_without_grad_are_skipped_and_get_no_state():
    a, b = FakeParam([1.0]), FakeParam([2.0])
    opt = Adam([a, b], lr=0.1)
    a.grad = np.array([1.0])
    opt.step()
    assert b.data[0] == 2.0 and b not in opt.state and a in opt.state
    assert list(opt.state_dict()["state"]) == [0]


def test_zero_grad_sets_none_or_zeros_in_place():
    p = FakeParam([1.0, 2.0])
    opt = SGD([p], lr=0.1)
    grad = np.array([3.0, 4.0])
    p.grad = grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad and np.all(grad == 0)
    opt.zero_grad()
    assert p.grad is None


def test_step_returns_the_closure_result():
    p = FakeParam([1.0])

    def closure():
        p.grad = np.array([2.0])
        return 42.0

    assert SGD([p], lr=0.5).step(closure) == 42.0
    assert p.data[0] == 0.0


def run_steps(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g
        opt.step()


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
                                  lambda ps: Adam(ps, lr=0.01, amsgrad=True),
                                  lambda ps: AdamW([{"params": ps[:1]},
                                                    {"params": ps[1:], "lr": 0.1}], lr=0.01)])  # fmt: skip
def test_state_dict_round_trip_mid_training_continues_identically(make):
    grads = grad_sequence(np.float64, 16)
    params = make_params(np.float64)
    opt = make(params)
    run_steps(opt, params, grads[:7])
    state = opt.state_dict()
    clone = [FakeParam(p.data.copy()) for p in params]
    resumed = make(clone)
    resumed.load_state_dict(copy.deepcopy(state))
    run_steps(opt, params, grads[7:])
    run_steps(resumed, clone, grads[7:])
    for p, q in zip(params, clone, strict=True):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_layout_and_copies():
    params = make_params(np.float64)
    opt = SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], lr=0.1, momentum=0.9)
    run_steps(opt, params, grad_sequence(np.float64, 1))
    state = opt.state_dict()
    assert [g["params"] for g in state["param_groups"]] == [[0, 1], [2]]
    assert state["param_groups"][1]["lr"] == 0.5 and state["param_groups"][0]["lr"] == 0.1
    assert sorted(state["state"]) == [0, 1, 2]
    buffer = state["state"][2]["momentum_buffer"]
    assert isinstance(buffer, np.ndarray) and buffer.shape == SHAPES[2]
    buffer[...] = 123.0  # the state dict is a copy
    assert not np.any(opt.state[params[2]]["momentum_buffer"] == 123.0)


def test_load_state_dict_accepts_string_indices_from_json():
    params = make_params(np.float64)
    opt = Adam(params, lr=0.01)
    run_steps(opt, params, grad_sequence(np.float64, 2))
    state = opt.state_dict()
    state["state"] = {str(k): v for k, v in state["state"].items()}
    other = Adam([FakeParam(p.data) for p in params], lr=0.01)
    other.load_state_dict(state)
    assert len(other.state) == 3


def _sgd_state():
    params = make_params(np.float64)
    opt = SGD(params, lr=0.1, momentum=0.9)
    run_steps(opt, params, grad_sequence(np.float64, 2))
    return opt.state_dict()


def _adam_state(amsgrad=False):
    params = make_params(np.float64)
    opt = Adam(params, lr=0.1, amsgrad=amsgrad)
    run_steps(opt, params, grad_sequence(np.float64, 2))
    return opt.state_dict()


def _edited(state, edit):
    state = copy.deepcopy(state)
    edit(state)
    return state


def _set_amsgrad(state):
    state["param_groups"][0]["amsgrad"] = True


BAD_STATE_DICTS = [
    ("not a dict", lambda: Adam, lambda: [1, 2], TypeError, "must be a dict"),
    ("no state key", lambda: Adam, lambda: {"param_groups": []}, ValueError, "no 'state'"),
    ("other optimizer", lambda: Adam, _sgd_state, ValueError,
     r"param_groups\[0\] has no 'betas'.*different optimizer than Adam"),
    ("group count", lambda: SGD,
     lambda: _edited(_sgd_state(), lambda s: s["param_groups"].append({"params": []})),
     ValueError, "2 parameter groups but this optimizer has 1"),
    ("param count", lambda: SGD,
     lambda: _edited(_sgd_state(), lambda s: s["param_groups"][0]["params"].pop()),
     ValueError, r"param_groups\[0\] has 2 parameters in the state dict but 3"),
    ("unknown index", lambda: SGD,
     lambda: _edited(_sgd_state(), lambda s: s["state"].update({7: s["state"][0]})),
     ValueError, "state for parameter 7 but this optimizer's parameters are numbered 0..2"),
    ("buffer shape", lambda: SGD,
     lambda: _edited(_sgd_state(),
                     lambda s: s["state"][1].update(momentum_buffer=np.zeros((2, 2)))),
     ValueError, r"'momentum_buffer' of parameter 1 has shape \(2, 2\) but .* shape \(6,\)"),
    ("missing buffer", lambda: Adam, lambda: _edited(_adam_state(), _set_amsgrad),
     ValueError, r"state for parameter 0 has missing \['max_exp_avg_sq'\]"),
    ("bad option", lambda: Adam,
     lambda: _edited(_adam_state(), lambda s: s["param_groups"][0].update(lr=-1.0)),
     ValueError, r"Adam: lr must be >= 0 \(param_groups\[0\]\)"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_STATE_DICTS, ids=[c[0] for c in BAD_STATE_DICTS])
def test_mismatched_state_dict_raises_and_changes_nothing(case):
    _, cls, make_state, exc, pattern = case
    params = make_params(np.float64)
    opt = cls()(params, lr=0.1)
    run_steps(opt, params, grad_sequence(np.float64, 1))
    before = opt.state_dict()
    with pytest.raises(exc, match=pattern):
        opt.load_state_dict(make_state())
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for key, entry in before["state"].items():
        for name, value in entry.items():
            np.testing.assert_array_equal(after["state"][key][name], value)


def _p(value=1.0):
    return FakeParam([value])


SHARED = _p()
CONSTRUCTOR_ERRORS = [
    (lambda: SGD([_p()], lr=-0.1), ValueError, "SGD: lr must be >= 0, got -0.1"),
    (lambda: SGD([_p()], lr=float("nan")), ValueError, "SGD: lr must be >= 0"),
    (lambda: SGD([_p()], lr="0.1"), TypeError, "SGD: lr must be a real number"),
    (lambda: SGD([_p()], momentum=-0.5), ValueError, "SGD: momentum must be >= 0"),
    (lambda: SGD([_p()], weight_decay=-1), ValueError, "SGD: weight_decay must be >= 0"),
    (lambda: SGD([_p()], nesterov=True), ValueError,
     r"SGD: nesterov=True requires momentum > 0 and dampening == 0, got momentum=0"),
    (lambda: SGD([_p()], momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "SGD: nesterov=True requires .* dampening=0.1"),
    (lambda: SGD([_p()], nesterov=1), TypeError, "SGD: nesterov must be a bool"),
    (lambda: SGD([{"params": [_p()]}, {"params": [_p()], "lr": -1}]), ValueError,
     r"SGD: lr must be >= 0 \(param_groups\[1\]\)"),
    (lambda: Adam([_p()], betas=(1.0, 0.999)), ValueError,
     r"Adam: betas\[0\] must be in \[0, 1\), got 1.0"),
    (lambda: Adam([_p()], betas=(0.9, -0.1)), ValueError, r"Adam: betas\[1\] must be in \[0, 1\)"),
    (lambda: Adam([_p()], betas=0.9), TypeError, "Adam: betas must be a pair"),
    (lambda: Adam([_p()], eps=-1e-8), ValueError, "Adam: eps must be >= 0"),
    (lambda: Adam([_p()], lr=-1), ValueError, "Adam: lr must be >= 0"),
    (lambda: Adam([_p()], amsgrad="yes"), TypeError, "Adam: amsgrad must be a bool"),
    (lambda: AdamW([_p()], weight_decay=-0.01), ValueError, "AdamW: weight_decay must be >= 0"),
    (lambda: AdamW([_p()], betas=(0.9, 1.0)), ValueError, r"AdamW: betas\[1\]"),
    (lambda: SGD([]), ValueError, "SGD: params is an empty list"),
    (lambda: SGD(_p()), TypeError, "SGD: params must be an iterable .* got FakeParam"),
    (lambda: SGD(np.zeros(3)), TypeError, "SGD: params must be an iterable .* got ndarray"),
    (lambda: SGD(5), TypeError, "SGD: params must be an iterable"),
    (lambda: SGD([np.zeros(3)]), TypeError, r"SGD: param_groups\[0\]\['params'\]\[0\] must be a"),
    (lambda: SGD([FakeParam(np.arange(3))]), TypeError, "floating-point array .* got dtype int64"),
    (lambda: SGD([_p(), {"params": [_p()]}]), TypeError, "mixes parameters and dicts"),
    (lambda: SGD([{"lr": 0.1}]), ValueError, r"param_groups\[0\] has no 'params' entry"),
    (lambda: SGD([SHARED, SHARED]), ValueError, "lists a parameter twice"),
    (lambda: SGD([{"params": [SHARED]}, {"params": [SHARED]}]), ValueError,
     "may appear in only one group"),
    (lambda: SGD([{"params": {_p()}}]), TypeError, "got a set"),
]  # fmt: skip


@pytest.mark.parametrize("make, exc, pattern", CONSTRUCTOR_ERRORS)
def test_invalid_arguments_raise_clear_errors(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_gradient_of_the_wrong_shape_is_rejected():
    p = _p()
    p.grad = np.zeros(2)
    with pytest.raises(ValueError, match=r"SGD.step: a gradient has shape \(2,\) but its "
                                         r"parameter has shape \(1,\)"):  # fmt: skip
        SGD([p]).step()


# -- schedulers ---------------------------------------------------------------------------------


def lr_sequence(optimizer, scheduler, steps, key="lr"):
    """Each group's ``key`` entry (or entries, for a tuple of keys) before each step."""
    values = []
    for _ in range(steps):
        if isinstance(key, tuple):
            values.append([[group[k] for k in key] for group in optimizer.param_groups])
        else:
            values.append([group[key] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return values


def two_groups(make_opt, tensors=False):
    def param():
        return torch.zeros(2, requires_grad=True) if tensors else FakeParam(np.zeros(2))

    return make_opt([{"params": [param()]}, {"params": [param()], "lr": 0.05}])


SCHEDULER_CASES = [
    ("StepLR", dict(step_size=3, gamma=0.5), "SGD", dict(lr=0.1)),
    ("StepLR", dict(step_size=1, gamma=0.9), "Adam", dict(lr=0.1)),
    ("CosineAnnealingLR", dict(T_max=10), "SGD", dict(lr=0.1)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001), "Adam", dict(lr=0.1)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=30), "SGD", dict(lr=0.1, momentum=0.9)),
    ("OneCycleLR", dict(max_lr=[1.0, 0.3], total_steps=30, anneal_strategy="linear"),
     "SGD", dict(lr=0.1, momentum=0.9)),
    ("OneCycleLR", dict(max_lr=0.5, epochs=3, steps_per_epoch=10, three_phase=True),
     "Adam", dict(lr=0.1)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=30, pct_start=0.25, div_factor=10.0,
                        final_div_factor=100.0, base_momentum=0.8, max_momentum=[0.9, 0.99]),
     "Adam", dict(lr=0.1)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=30, cycle_momentum=False), "SGD", dict(lr=0.1)),
]  # fmt: skip
SCHEDULERS = {"StepLR": StepLR, "CosineAnnealingLR": CosineAnnealingLR, "OneCycleLR": OneCycleLR}


@needs_torch
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", SCHEDULER_CASES, ids=[f"{c[0]}-{c[1]}" for c in SCHEDULER_CASES])
def test_scheduler_matches_torch_for_30_steps(case):
    name, kwargs, opt_name, opt_kwargs = case
    ours_opt = two_groups(lambda groups: OURS[opt_name](groups, **opt_kwargs))
    theirs_opt = two_groups(lambda g: getattr(torch.optim, opt_name)(g, **opt_kwargs), True)
    ours = SCHEDULERS[name](ours_opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(theirs_opt, **kwargs)
    momentum_key = "betas" if opt_name == "Adam" else "momentum"
    for _ in range(30):
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12, atol=0)
        for group, their_group in zip(ours_opt.param_groups, theirs_opt.param_groups, strict=True):
            assert group["lr"] == pytest.approx(their_group["lr"], rel=1e-12, abs=0)
            np.testing.assert_allclose(group[momentum_key], their_group[momentum_key], rtol=1e-12)
        ours_opt.step()
        theirs_opt.step()
        ours.step()
        theirs.step()


def test_step_lr_follows_its_closed_form():
    opt = two_groups(lambda g: SGD(g, lr=0.1))
    values = lr_sequence(opt, StepLR(opt, step_size=4, gamma=0.3), 20)
    for t, lrs in enumerate(values):
        np.testing.assert_allclose(lrs, [0.1 * 0.3 ** (t // 4), 0.05 * 0.3 ** (t // 4)], rtol=1e-13)


def test_cosine_annealing_follows_its_closed_form():
    opt = two_groups(lambda g: SGD(g, lr=0.1))
    values = lr_sequence(opt, CosineAnnealingLR(opt, T_max=12, eta_min=0.01), 25)
    for t, lrs in enumerate(values):
        closed = [0.01 + (base - 0.01) * (1 + math.cos(math.pi * t / 12)) / 2 for base in (0.1, 0.05)]
        np.testing.assert_allclose(lrs, closed, rtol=1e-12, atol=1e-15)


def test_one_cycle_warms_up_peaks_and_ends_low():
    opt = SGD([_p()], lr=0.1, momentum=0.9)
    sched = OneCycleLR(opt, max_lr=2.0, total_steps=20, pct_start=0.25)
    lrs, momenta = np.array([v[0] for v in lr_sequence(opt, sched, 20, ("lr", "momentum"))]).T
    assert lrs[0] == pytest.approx(2.0 / 25) and lrs[4] == pytest.approx(2.0)
    assert lrs[-1] == pytest.approx(2.0 / 25 / 1e4)
    assert np.all(np.diff(lrs[:5]) > 0) and np.all(np.diff(lrs[4:]) < 0)
    assert momenta[0] == pytest.approx(0.95) and momenta[4] == pytest.approx(0.85)
    assert momenta[-1] == pytest.approx(0.95)
    assert np.all(np.diff(momenta[:5]) < 0) and np.all(np.diff(momenta[4:]) > 0)
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 21 times, but total_steps is 20"):
        sched.step()


def test_one_cycle_zero_length_warmup_does_not_divide_by_zero():
    opt = SGD([_p()], lr=0.1, momentum=0.9)
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.1)  # warm-up ends at step 0
    assert sched.get_last_lr() == [pytest.approx(1.0)]


@pytest.mark.parametrize("make", [lambda o: StepLR(o, step_size=3),
                                  lambda o: CosineAnnealingLR(o, T_max=6, eta_min=0.01),
                                  lambda o: OneCycleLR(o, max_lr=1.0, total_steps=20)])  # fmt: skip
def test_scheduler_state_dict_round_trip_continues_identically(make):
    params = make_params(np.float64)
    opt = SGD(params, lr=0.1, momentum=0.9)
    sched = make(opt)
    lr_sequence(opt, sched, 8)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    opt2 = SGD([FakeParam(p.data) for p in params], lr=0.7)
    sched2 = make(opt2)  # as in PyTorch: build the scheduler, then load both states
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    opt_copy, sched_copy = copy.deepcopy((opt, sched))
    expected = lr_sequence(opt_copy, sched_copy, 10, ("lr", "momentum"))
    assert lr_sequence(opt2, sched2, 10, ("lr", "momentum")) == expected
    assert lr_sequence(opt, sched, 10, ("lr", "momentum")) == expected  # the copy was faithful
    assert sched2.get_last_lr() == [opt2.param_groups[0]["lr"]]


class PlainOptimizer(Optimizer):
    """An optimizer with neither momentum nor betas."""

    def __init__(self, params):
        super().__init__(params, {"lr": 0.1})


SCHEDULER_ERRORS = [
    (lambda o: StepLR(o, step_size=0), ValueError, "StepLR: step_size must be a positive int"),
    (lambda o: StepLR(o, step_size=2.5), TypeError, "StepLR: step_size must be a positive int"),
    (lambda o: StepLR(o, 2, gamma="x"), TypeError, "StepLR: gamma must be a real number"),
    (lambda o: CosineAnnealingLR(o, T_max=0), ValueError, "CosineAnnealingLR: T_max must be"),
    (lambda o: StepLR("sgd", 2), TypeError, "StepLR: optimizer must be a cnnlab.optim.Optimizer"),
    (lambda o: OneCycleLR(o, 1.0), ValueError, "give total_steps, or both epochs"),
    (lambda o: OneCycleLR(o, 1.0, epochs=2), ValueError, "give total_steps"),
    (lambda o: OneCycleLR(o, 1.0, total_steps=-3), ValueError, "total_steps must be a positive"),
    (lambda o: OneCycleLR(o, 1.0, 10, pct_start=1.5), ValueError, r"pct_start must be in \[0, 1\]"),
    (lambda o: OneCycleLR(o, 1.0, 10, anneal_strategy="exp"), ValueError, "anneal_strategy"),
    (lambda o: OneCycleLR(o, [1.0, 2.0], 10), ValueError,
     "max_lr has 2 values but the optimizer has 1 parameter groups"),
    (lambda o: OneCycleLR(PlainOptimizer([_p()]), 1.0, 10), ValueError,
     "cycle_momentum=True needs an optimizer with 'momentum' or 'betas'"),
    (lambda o: StepLR(o, 2).load_state_dict(CosineAnnealingLR(o, 5).state_dict()), ValueError,
     r"does not fit StepLR: missing keys \['gamma', 'step_size'\]"),
]  # fmt: skip


@pytest.mark.parametrize("make, exc, pattern", SCHEDULER_ERRORS)
def test_scheduler_errors(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make(SGD([_p()], lr=0.1, momentum=0.9))


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
                                  lambda ps: Adam(ps, lr=0.1),
                                  lambda ps: AdamW(ps, lr=0.1, weight_decay=0.0)])  # fmt: skip
def test_optimizers_train_autograd_tensors(make):
    """With cnnlab's Tensor and its backward, each optimizer fits a small least-squares problem."""
    from cnnlab.autograd import Tensor

    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3))
    true_w = np.array([1.5, -2.0, 0.5])
    y = Tensor(x @ true_w)
    w = Tensor(np.zeros(3), requires_grad=True)
    data = w.data
    opt = make([w])
    for _ in range(400):
        opt.zero_grad()
        loss = ((Tensor(x) @ w - y) ** 2).mean()
        loss.backward()
        opt.step()
    assert w.data is data
    np.testing.assert_allclose(w.data, true_w, atol=1e-3)
