"""Problem sets: the same seed gives the same set, every answer is an integer and is right (checked
with cnnlab.autograd and with torch), rendering with and without answers, errors, the CLI."""

from __future__ import annotations

import re

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.autograd import Tensor
from cnnlab.cli import main
from cnnlab.explain import Conv, Pool
from cnnlab.explain.problems import KINDS, ProblemSet, generate

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - the torch oracle is optional
    torch = None

SETS = [(kind, d) for kind in KINDS for d in (1, 2, 3)]


def _f(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# determinism


@pytest.mark.parametrize("kind, difficulty", SETS)
def test_same_seed_same_set_different_seed_different_set(kind, difficulty):
    a = generate(12, kind, difficulty, count=3).render(answers=True)
    b = generate(12, kind, difficulty, count=3).render(answers=True)
    assert a == b
    c = generate(13, kind, difficulty, count=3).render()
    assert c != generate(12, kind, difficulty, count=3).render()


# ---------------------------------------------------------------------------------------------
# every answer, checked two ways


def _chain(lib, x, stages, loss_target=None):
    """Run the problem's pipeline with ``lib`` ('autograd' or 'torch'); returns (output, leaves)."""
    if lib == "torch":
        tensor = lambda a, g=False: torch.tensor(_f(a), requires_grad=g)  # noqa: E731
        conv, relu = TF.conv2d, torch.relu
    else:
        tensor = lambda a, g=False: Tensor(_f(a), requires_grad=g)  # noqa: E731
        conv, relu = F.conv2d, F.relu
    xt = tensor(x, True)
    y, leaves = (xt[None] if xt.ndim == 2 else xt), {"I": xt}
    for s in stages:
        if isinstance(s, Conv):
            w = _f(s.filters)
            w = w.reshape((1, 1, *w.shape)) if w.ndim == 2 else w
            wt = tensor(w, True)
            leaves["F"] = wt
            b = None if s.bias is None else tensor(s.bias)
            y = conv(y[None], wt, b, s.stride, s.padding)[0]
        elif isinstance(s, Pool):
            if lib == "torch":
                pool = TF.max_pool2d if s.kind == "max" else TF.avg_pool2d
            else:
                pool = F.max_pool2d if s.kind == "max" else F.avg_pool2d
            y = pool(y, s.kernel_size, s.stride, s.padding)
        else:
            y = relu(y)
    return y, leaves


def _check_matrix_answer(answer, want):
    if isinstance(answer, int):
        assert want.size == 1 and answer == want.item()
    else:
        assert answer.dtype == np.int64
        assert np.array_equal(answer, want.reshape(answer.shape))


@pytest.mark.parametrize("lib", ["autograd", "torch"])
@pytest.mark.parametrize("kind, difficulty", [s for s in SETS if s[0] != "shape"])
def test_every_answer_is_right(lib, kind, difficulty):
    if lib == "torch" and torch is None:
        pytest.skip("torch not installed")
    for seed in (1, 2):
        for p in generate(seed, kind, difficulty, count=4).problems:
            if kind != "backprop":
                y, _ = _chain(lib, p.data["I"], p.stages)
                want = (y.detach() if lib == "torch" else y).numpy()
                _check_matrix_answer(p.answer, np.rint(want).astype(np.int64))
                np.testing.assert_allclose(want.ravel(), np.ravel(p.answer), atol=1e-9)
                continue
            y, leaves = _chain(lib, p.data["I"], p.stages)
            if "T" in p.data:
                diff = y - (torch.tensor(_f(p.data["T"])) if lib == "torch" else Tensor(_f(p.data["T"])))
                loss = (diff * diff).sum()
            else:
                loss = y.sum()
            loss.backward()
            grad_w = leaves["F"].grad.numpy() if lib == "torch" else leaves["F"].grad
            grad_i = leaves["I"].grad.numpy() if lib == "torch" else leaves["I"].grad
            names = sorted(k for k in p.answer if k.startswith("dL/dF"))
            got_w = [p.answer[n] for n in names]
            np.testing.assert_allclose(np.stack(got_w).reshape(grad_w.shape), grad_w, atol=1e-9)
            if difficulty > 1:
                np.testing.assert_allclose(p.answer["dL/dI"], grad_i.reshape(p.answer["dL/dI"].shape), atol=1e-9)
            assert all(a.dtype == np.int64 for a in p.answer.values())


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_shape_answers_are_right(difficulty):
    for p in generate(4, "shape", difficulty, count=6).problems:
        q = p.params
        c, h, w = q["input"]
        size = lambda n, k, s, pad, d: (n + 2 * pad - d * (k - 1) - 1) // s + 1  # noqa: E731
        conv_hw = [size(n, q["kernel"], q["stride"], q["padding"], q["dilation"]) for n in (h, w)]
        assert p.answer["after the conv"] == (q["out_channels"], *conv_hw)
        if torch is not None:
            x = torch.zeros((1, c, h, w))
            y = TF.conv2d(x, torch.zeros((q["out_channels"], c, q["kernel"], q["kernel"])), None, q["stride"],
                          q["padding"], q["dilation"])
            assert tuple(y.shape[1:]) == p.answer["after the conv"]
            z = TF.max_pool2d(y, q["pool"], q["pool_stride"], ceil_mode=q["ceil_mode"])
            assert tuple(z.shape[1:]) == p.answer["after the pooling"]
        else:  # pragma: no cover
            z = F.max_pool2d(np.zeros((q["out_channels"], *conv_hw)), q["pool"], q["pool_stride"], 0, 1,
                             q["ceil_mode"])
            assert (q["out_channels"], *z.shape[1:]) == p.answer["after the pooling"]


def test_difficulty_raises_sizes_and_options():
    easy = generate(3, "conv", 1, count=10).problems
    hard = generate(3, "conv", 3, count=10).problems
    assert all(p.data["I"].ndim == 2 and p.stages[0].stride == 1 for p in easy)
    assert all(p.data["I"].ndim == 3 and "F1" in p.data and p.stages[0].bias is not None for p in hard)
    assert max(p.data["I"].shape[-1] for p in easy) < max(p.data["I"].shape[-1] for p in hard)
    first = generate(3, "pipeline", 1, count=5).problems
    assert all(p.data["I"].shape == (3, 3) or p.data["I"].shape == (4, 4) for p in first)


# ---------------------------------------------------------------------------------------------
# rendering and errors


@pytest.mark.parametrize("fmt", ["text", "md", "latex", "html"])
def test_questions_then_answers_and_worked_solutions(fmt):
    ps = generate(5, "pipeline", 1, count=2)
    questions = ps.render(fmt)
    full = ps.render(fmt, answers=True)
    assert "Answer key" not in questions and "Worked solution" not in questions
    assert full.startswith(questions[: len(questions) // 2])
    assert "Answer key" in full and "Problem 2: worked solution" in full
    if fmt == "latex":
        assert "\\begin{bmatrix}" in questions
    if fmt == "text":
        key = full.split("Answer key")[1].split("Worked solutions")[0]
        for p in ps.problems:
            if isinstance(p.answer, int):
                # a number is laid out like a matrix answer: the problem's number, then the answer
                assert f"{p.number}.\n\n  Pool(ReLU(Conv(I))) = {p.answer}\n" in key
            else:
                assert f"{p.number}." in key and all(str(v) in key for v in p.answer.ravel())


def test_backprop_and_shape_sets_render_their_solutions():
    text = generate(2, "backprop", 2, count=1).render(answers=True, cells=1)
    assert "Backprop by hand" not in text.split("Worked solutions")[0]
    assert "The filter gradient" in text and "dL/dI" in text
    text = generate(2, "shape", 3, count=1).render("md", answers=True)
    assert "floor(" in text or "ceil(" in text


@pytest.mark.parametrize("args, exc, match", [
    ((-1,), ValueError, "seed must be >= 0"),
    ((1.5,), TypeError, "seed must be an int"),
    ((1, "loops"), ValueError, "kind must be one of"),
    ((1, "conv", 4), ValueError, "difficulty must be 1, 2 or 3"),
    ((1, "conv", True), TypeError, "difficulty must be an int"),
    ((1, "conv", 1, 0), ValueError, "count must be in"),
])
def test_generate_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        generate(*args)


def test_render_errors():
    ps = generate(1, count=1)
    with pytest.raises(ValueError, match="format must be one of"):
        ps.render("pdf")
    with pytest.raises(TypeError, match="answers must be a bool"):
        ps.render(answers="yes")


# ---------------------------------------------------------------------------------------------
# the CLI


def run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_problem_is_deterministic_and_matches_the_library(capsys):
    argv = ["problem", "--seed", "9", "--kind", "pool", "--difficulty", "2", "--count", "3"]
    code, out, err = run(capsys, argv)
    assert code == 0 and err == ""
    assert out == generate(9, "pool", 2, 3).render()
    assert run(capsys, argv)[1] == out
    code, with_answers, _ = run(capsys, [*argv, "--answers", "--format", "md"])
    assert code == 0 and "Answer key" in with_answers and "Answer key" not in out


def test_cli_problem_without_seed_prints_its_seed(capsys):
    code, out, _ = run(capsys, ["problem", "--count", "1"])
    seed = int(re.search(r"\(seed (\d+)\)", out).group(1))
    assert code == 0 and out == generate(seed, "conv", 1, 1).render()


@pytest.mark.parametrize("argv, message", [
    (["--difficulty", "7"], "argument --difficulty: expected 1, 2 or 3, got '7'"),
    (["--difficulty", "zero"], "argument --difficulty"),
    (["--count", "0"], "argument --count"),
    (["--count", "500"], "count must be in [1, 100]"),
    (["--kind", "loops"], "argument --kind: invalid choice"),
    (["--format", "pdf"], "argument --format"),
    (["--seed", "-1"], "argument --seed"),
])
def test_cli_problem_bad_input_one_line_exit_2(capsys, argv, message):
    code, out, err = run(capsys, ["problem", *argv])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("cnnlab problem")
    assert message in err


def test_problem_set_type():
    ps = generate(0)
    assert isinstance(ps, ProblemSet) and len(ps.problems) == 5 and "seed 0" in repr(ps)
