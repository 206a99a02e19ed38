"""Mutation testing: do the tests notice small changes to the code?  (Slow; not run in CI.)

A small AST mutator of our own (mutmut and cosmic-ray rewrite the package in place and fight
with the src/ layout and the doctests): each *mutant* changes one spot of one source file, by

- ``cmp``:    flipping a comparison (``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``);
- ``int``:    adding or subtracting 1 from an integer constant (not in docstrings or messages);
- ``minmax``: calling ``max`` instead of ``min`` and back;
- ``bool``:   ``and`` <-> ``or``;
- ``arith``:  ``+`` <-> ``-``.

For each mutant, ``src/`` is copied to a scratch folder, the one file rewritten there (the working
tree is never touched) and the chosen tests run against the copy with ``-x``.  A mutant is
*killed* when a test fails (or the run times out), *survives* when every test passes.  The score
is killed / (killed + survived).

    PYTHONPATH=src python benchmarks/mutation.py --sample 60 --seed 0
    PYTHONPATH=src python benchmarks/mutation.py --files functional/_args.py --list

Results are recorded in docs/TESTING.md.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "cnnlab"
TARGETS = ["functional", "explain", "checkpoint"]
SKIP = {"functional/_naive.py"}  # the oracle itself

# which tests run against a mutant of which part (fast ones, with -x: a kill stops early)
TESTS = {
    "functional": ["tests/functional/test_registry.py", "tests/functional/test_conv_properties.py",
                   "tests/functional/test_pool.py", "tests/functional/test_activation.py",
                   "tests/functional/test_loss.py", "tests/functional/test_matrix.py",
                   "tests/functional/test_public_defaults.py", "tests/nn/test_functional_ops.py"],
    "explain": ["tests/explain", "tests/test_explain.py", "tests/test_backprop_explain.py",
                "tests/test_pooling_size.py", "tests/test_matrix_view.py", "tests/test_problems.py"],
    "checkpoint": ["tests/test_checkpoint.py", "tests/faults/test_hostile_inputs.py"],
}

# --fast: smaller subsets, for a larger sample on a busy machine (by file where one file has
# its own tests, else by part)
FAST = {
    "functional": ["tests/functional/test_registry.py", "tests/functional/test_conv_properties.py",
                   "tests/functional/test_pool.py", "tests/functional/test_activation.py",
                   "tests/functional/test_loss.py", "tests/functional/test_public_defaults.py"],
    "explain": ["tests/explain/test_solution_text.py", "tests/explain/test_convolve_multichannel.py",
                "tests/explain/test_defining_sum_text.py", "tests/explain/test_document_outline.py",
                "tests/explain/test_text_layout.py", "tests/explain/test_shape_solutions.py",
                "tests/explain/test_pooling_defaults.py",
                "tests/explain/test_explain.py", "tests/explain/test_backprop_explain.py",
                "tests/explain/test_pooling_size.py", "tests/explain/test_problems.py",
                "tests/explain/test_matrix_view.py"],
    "functional/_adaptive.py": ["tests/nn/test_functional_ops.py", "tests/functional/test_registry.py"],
    "functional/_linear.py": ["tests/nn/test_functional_ops.py", "tests/functional/test_registry.py"],
    "functional/_dropout.py": ["tests/nn/test_functional_ops.py", "tests/functional/test_registry.py"],
    "functional/_norm.py": ["tests/nn/test_batchnorm.py", "tests/nn/test_gradcheck.py"],
    "explain/_piecewise.py": ["tests/explain/test_continuous.py"],
    "explain/continuous.py": ["tests/explain/test_continuous.py"],
    "explain/pooling_size.py": ["tests/explain/test_pooling_size.py"],
    "explain/problems.py": ["tests/explain/test_problems.py"],
    "explain/_matrix_view.py": ["tests/explain/test_matrix_view.py"],
    "checkpoint": ["tests/test_checkpoint.py", "tests/faults/test_hostile_inputs.py"],
}

CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq}


@dataclass(frozen=True)
class Mutant:
    path: str  # relative to src/cnnlab
    index: int  # position of the node in ast.walk order
    kind: str
    line: int
    detail: str


def _docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of constants that are docstrings, or sit inside f-strings / messages."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))
        if isinstance(node, ast.JoinedStr):
            skip |= {id(n) for n in ast.walk(node)}
    return skip


def _candidates(rel: str) -> list[Mutant]:
    tree = ast.parse((PKG / rel).read_text())
    skip = _docstring_nodes(tree)
    found = []
    for i, node in enumerate(ast.walk(tree)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in CMP_SWAP:
            found.append(Mutant(rel, i, "cmp", line, f"{type(node.ops[0]).__name__} -> "
                                                       f"{CMP_SWAP[type(node.ops[0])].__name__}"))
        elif (isinstance(node, ast.Constant) and type(node.value) is int and id(node) not in skip):
            found.append(Mutant(rel, i, "int+", line, f"{node.value} -> {node.value + 1}"))
            found.append(Mutant(rel, i, "int-", line, f"{node.value} -> {node.value - 1}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
            found.append(Mutant(rel, i, "minmax", line, f"{node.func.id} -> "
                                                        f"{'max' if node.func.id == 'min' else 'min'}"))
        elif isinstance(node, ast.BoolOp):
            found.append(Mutant(rel, i, "bool", line, f"{type(node.op).__name__} swapped"))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            found.append(Mutant(rel, i, "arith", line, f"{type(node.op).__name__} swapped"))
    return found


def _mutate(source: str, m: Mutant) -> str:
    tree = ast.parse(source)
    node = list(ast.walk(tree))[m.index]
    if m.kind == "cmp":
        node.ops = [CMP_SWAP[type(node.ops[0])]()]
    elif m.kind == "int+":
        node.value += 1
    elif m.kind == "int-":
        node.value -= 1
    elif m.kind == "minmax":
        node.func.id = "max" if node.func.id == "min" else "min"
    elif m.kind == "bool":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif m.kind == "arith":
        node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
    return ast.unparse(tree)


def _tests_for(rel: str, fast: bool = False) -> list[str]:
    key = rel if fast and rel in FAST else rel.split("/")[0]
    return [t for t in (FAST if fast else TESTS)[key] if (ROOT / t).exists()]


def run_mutant(m: Mutant, timeout: float, fast: bool = False) -> tuple[str, float]:
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
        target = src / "cnnlab" / m.path
        target.write_text(_mutate(target.read_text(), m))
        env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-o", "addopts=", "-p", "no:randomly",
               "-p", "no:cacheprovider", "--tb=no", *_tests_for(m.path, fast)]
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return "killed (timeout)", time.time() - start
    if rc == 0:
        return "SURVIVED", time.time() - start
    if rc == 1:
        return "killed", time.time() - start
    return f"killed (pytest exit {rc})", time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="*", help="files under src/cnnlab (default: functional/, explain/, "
                                                   "checkpoint/)")
    parser.add_argument("--sample", type=int, default=0, help="run a random sample of this many mutants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--fast", action="store_true", help="run the smaller FAST test subsets")
    parser.add_argument("--list", action="store_true", help="only list the mutants")
    args = parser.parse_args()
    files = args.files or sorted(
        str(p.relative_to(PKG)) for t in TARGETS for p in ([PKG / t] if t.endswith(".py") else (PKG / t).glob("*.py"))
    )
    mutants = [m for f in files if f not in SKIP for m in _candidates(f)]
    print(f"{len(mutants)} mutants in {len(files)} files", flush=True)
    if args.sample:
        mutants = random.Random(args.seed).sample(mutants, min(args.sample, len(mutants)))
    if args.list:
        for m in mutants:
            print(f"{m.path}:{m.line} {m.kind} {m.detail}")
        return
    killed = survived = 0
    for m in mutants:
        verdict, secs = run_mutant(m, args.timeout, args.fast)
        if verdict == "SURVIVED":
            survived += 1
        else:
            killed += 1
        print(f"{verdict:22s} {secs:6.1f}s  {m.path}:{m.line} {m.kind} {m.detail}", flush=True)
    total = killed + survived
    print(f"score: {killed}/{total} killed = {killed / max(total, 1):.1%}")


if __name__ == "__main__":
    main()
