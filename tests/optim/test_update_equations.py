"""Optimizers and schedulers without torch: a plain-Python reference of the published update
equations, and the schedules' closed forms, on the cases of the torch parity tests."""

import math

import numpy as np
import pytest

from .test_optim import (
    OPTIMIZER_CASES,
    OURS,
    SCHEDULER_CASES,
    SCHEDULERS,
    TOL,
    build_groups,
    case_id,
    grad_sequence,
    make_params,
    two_groups,
)

# -- the update equations --------------------------------------------------------
# A plain-Python reference written from the published update rules (PyTorch's documented
# algorithms for SGD, Adam with L2 penalty and AMSGrad, and AdamW's decoupled decay of
# Loshchilov & Hutter), one scalar at a time, in Python floats.  It shares nothing with
# cnnlab.optim and runs on the OPTIMIZER_CASES the torch parity test uses.

DEFAULTS = {
    "SGD": dict(momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False),
    "Adam": dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False),
    "AdamW": dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False),
}


def reference_step(name, h, w, g, state):
    """One update of the scalar weight ``w`` with gradient ``g``; ``h`` the options, ``state``
    a dict kept per scalar.  Returns the new weight."""
    lr = h["lr"]
    if h["maximize"]:
        g = -g
    if name == "SGD":
        g = g + h["weight_decay"] * w
        if h["momentum"] != 0:
            if "buf" not in state:
                state["buf"] = g  # the first step takes the gradient as it is, undamped
            else:
                state["buf"] = h["momentum"] * state["buf"] + (1 - h["dampening"]) * g
            g = g + h["momentum"] * state["buf"] if h["nesterov"] else state["buf"]
        return w - lr * g
    beta1, beta2 = h["betas"]
    if name == "AdamW":
        w = w * (1 - lr * h["weight_decay"])  # decoupled: shrink the weight, not the gradient
    else:
        g = g + h["weight_decay"] * w  # Adam: an L2 penalty added to the gradient
    t = state["t"] = state.get("t", 0) + 1
    m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * g
    v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * g * g
    if h["amsgrad"]:
        v = state["vmax"] = max(state.get("vmax", 0.0), v)
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return w - lr * m_hat / (math.sqrt(v_hat) + h["eps"])


def reference_run(name, kwargs, groups, params, grad_steps):
    """The weights after each step, as lists of Python floats, for the case's groups."""
    weights = [[float(v) for v in p.data.reshape(-1)] for p in params]
    options = [{**DEFAULTS[name], **kwargs}] * len(params)
    if groups is not None:
        for group in groups:
            for i in group["params"]:
                options[i] = {**DEFAULTS[name], **kwargs, **{k: v for k, v in group.items() if k != "params"}}
    states = [[{} for _ in w] for w in weights]
    history = []
    for grads in grad_steps:
        for i, g in enumerate(grads):
            if g is None:  # no gradient: the parameter and its state stay as they are
                continue
            flat = [float(v) for v in np.asarray(g, dtype=np.float64).reshape(-1)]
            weights[i] = [reference_step(name, options[i], w, gv, s)
                          for w, gv, s in zip(weights[i], flat, states[i], strict=True)]
        history.append([list(w) for w in weights])
    return history


def test_the_reference_reproduces_hand_worked_steps():
    """The reference itself, on numbers worked by hand."""
    h = {**DEFAULTS["SGD"], "lr": 0.1, "momentum": 0.5, "dampening": 0.5, "weight_decay": 0.1}
    state = {}
    w = reference_step("SGD", h, 1.0, 2.0, state)  # g = 2 + 0.1 = 2.1, buf = 2.1
    assert w == pytest.approx(1.0 - 0.21)
    w2 = reference_step("SGD", h, w, 1.0, state)  # g = 1 + 0.079, buf = 0.5*2.1 + 0.5*1.079
    assert w2 == pytest.approx(w - 0.1 * (1.05 + 0.5 * (1.0 + 0.1 * w)))
    h = {**DEFAULTS["Adam"], "lr": 0.1, "eps": 0.0}
    state = {}
    assert reference_step("Adam", h, 1.0, -3.0, state) == pytest.approx(1.1)  # first step: lr*sign
    h = {**DEFAULTS["AdamW"], "lr": 0.1, "weight_decay": 0.5, "eps": 0.0}
    assert reference_step("AdamW", h, 2.0, 5.0, {}) == pytest.approx(2.0 * 0.95 - 0.1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=[case_id(c) for c in OPTIMIZER_CASES])
def test_optimizer_matches_the_update_equations_for_20_steps(case, dtype):
    name, kwargs, groups = case
    params = make_params(dtype)
    ours = OURS[name](build_groups(params, groups), **kwargs)
    steps = grad_sequence(dtype, 20)
    expected = reference_run(name, kwargs, groups, make_params(dtype), steps)
    # float32: cnnlab rounds every intermediate to float32, the reference does not
    tol = TOL[np.float64] if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    for step, (grads, want) in enumerate(zip(steps, expected, strict=True)):
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        ours.step()
        for i, p in enumerate(params):
            assert p.data.dtype == dtype
            np.testing.assert_allclose(p.data.reshape(-1), want[i], **tol, err_msg=f"step {step}, param {i}")


def _per_group(value, count):
    return list(value) if isinstance(value, (list, tuple)) else [value] * count


def reference_schedule(name, kwargs, base_lrs, base_momenta, steps):
    """Per step, each group's (lr, momentum) from the schedules' closed forms: StepLR
    ``lr0 * gamma**(t // step_size)``; cosine annealing ``eta_min + (lr0 - eta_min)(1 +
    cos(pi t / T_max)) / 2``; the one-cycle policy (Smith & Topin 2018, as PyTorch documents it)
    as phases between fixed points, each annealed by cosine or linearly."""
    rows = []
    count = len(base_lrs)
    for t in range(steps):
        if name == "StepLR":
            lrs = [lr0 * kwargs.get("gamma", 0.1) ** (t // kwargs["step_size"]) for lr0 in base_lrs]
            rows.append((lrs, list(base_momenta)))
            continue
        if name == "CosineAnnealingLR":
            eta_min = kwargs.get("eta_min", 0.0)
            lrs = [eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * t / kwargs["T_max"])) / 2
                   for lr0 in base_lrs]
            rows.append((lrs, list(base_momenta)))
            continue
        total = kwargs.get("total_steps") or kwargs["epochs"] * kwargs["steps_per_epoch"]
        pct_start = kwargs.get("pct_start", 0.3)
        peak = _per_group(kwargs["max_lr"], count)
        start = [p / kwargs.get("div_factor", 25.0) for p in peak]
        low = [s / kwargs.get("final_div_factor", 1e4) for s in start]
        m_hi = _per_group(kwargs.get("max_momentum", 0.95), count)
        m_lo = _per_group(kwargs.get("base_momentum", 0.85), count)
        # (last step of the phase, lr from -> to, momentum from -> to), per group
        if kwargs.get("three_phase", False):
            phases = [(pct_start * total - 1, start, peak, m_hi, m_lo),
                      (2 * pct_start * total - 2, peak, start, m_lo, m_hi),
                      (total - 1, start, low, m_hi, m_hi)]
        else:
            phases = [(pct_start * total - 1, start, peak, m_hi, m_lo),
                      (total - 1, peak, low, m_lo, m_hi)]
        begin, index = 0.0, 0
        while t > phases[index][0] and index < len(phases) - 1:
            begin = phases[index][0]
            index += 1
        end, lr_a, lr_b, mom_a, mom_b = phases[index]
        frac = (t - begin) / (end - begin)
        cosine = kwargs.get("anneal_strategy", "cos") == "cos"

        def anneal(a, b, frac=frac, cosine=cosine):
            if cosine:
                return b + (a - b) * (1 + math.cos(math.pi * frac)) / 2
            return a + (b - a) * frac

        lrs = [anneal(a, b) for a, b in zip(lr_a, lr_b, strict=True)]
        if kwargs.get("cycle_momentum", True):
            momenta = [anneal(a, b) for a, b in zip(mom_a, mom_b, strict=True)]
        else:
            momenta = list(base_momenta)
        rows.append((lrs, momenta))
    return rows


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", SCHEDULER_CASES, ids=[f"{c[0]}-{c[1]}" for c in SCHEDULER_CASES])
def test_scheduler_follows_its_closed_form_for_30_steps(case):
    name, kwargs, opt_name, opt_kwargs = case
    opt = two_groups(lambda groups: OURS[opt_name](groups, **opt_kwargs))
    momentum_of = (lambda g: g["betas"][0]) if opt_name == "Adam" else (lambda g: g["momentum"])
    base_momenta = [momentum_of(g) for g in opt.param_groups]
    base_lrs = [g["lr"] for g in opt.param_groups]
    scheduler = SCHEDULERS[name](opt, **kwargs)
    expected = reference_schedule(name, kwargs, base_lrs, base_momenta, 30)
    for t, (lrs, momenta) in enumerate(expected):
        np.testing.assert_allclose(scheduler.get_last_lr(), lrs, rtol=1e-12, atol=1e-15, err_msg=f"lr, step {t}")
        np.testing.assert_allclose([g["lr"] for g in opt.param_groups], lrs, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose([momentum_of(g) for g in opt.param_groups], momenta, rtol=1e-12,
                                   err_msg=f"momentum, step {t}")
        if opt_name == "Adam":  # beta2 is never scheduled
            assert [g["betas"][1] for g in opt.param_groups] == [opt_kwargs.get("betas", (0.9, 0.999))[1]] * 2
        opt.step()
        scheduler.step()


def test_one_cycle_reference_on_hand_worked_points():
    """The reference itself: two-phase cosine, 10 steps, peak at step 2 (pct_start 0.3)."""
    rows = reference_schedule("OneCycleLR", dict(max_lr=1.0, total_steps=10), [0.1], [0.9], 10)
    assert rows[0][0][0] == pytest.approx(1.0 / 25) and rows[0][1][0] == pytest.approx(0.95)
    assert rows[2][0][0] == pytest.approx(1.0) and rows[2][1][0] == pytest.approx(0.85)
    assert rows[9][0][0] == pytest.approx(1.0 / 25 / 1e4) and rows[9][1][0] == pytest.approx(0.95)
    # linear, 11 steps: the peak falls at step 0.2*11 - 1 = 1.2, the second phase ends at 10, so
    # step 5 is (5 - 1.2) / 8.8 of the way from the peak down to 1/25/1e4
    linear = reference_schedule("OneCycleLR", dict(max_lr=1.0, total_steps=11, pct_start=0.2,
                                                   anneal_strategy="linear"), [0.1], [0.9], 11)
    assert linear[5][0][0] == pytest.approx(1.0 + (0.04e-4 - 1.0) * (5 - 1.2) / 8.8)

