"""MNIST-1D test accuracy and wall time of cnnlab's recipes, next to the paper's table.

Usage::

    PYTHONPATH=src python benchmarks/train_mnist1d.py [--seeds 0 1 2] [--only NAME ...] [--out DIR]

Each run calls :func:`cnnlab.training.run` with the settings of a ``cnnlab train`` command line
(printed with its result), so any row can be repeated by hand.  Runs (``--only`` picks some):

``paper``
    The paper's CNN with the paper's recipe: Adam, lr 1e-2, batch 100, 6,000 steps (150 epochs
    of 4,000 signals), no augmentation.
``default``
    What ``cnnlab train`` does with no arguments: the paper's CNN, 60 epochs, a cosine schedule, random
    shifts of up to 4 samples.
``best``
    ``cnnlab train --model mnist1d-cnn-bn``: the paper's layout with 64 channels, BatchNorm,
    dropout, a one-cycle schedule and random shifts, 40 epochs.
``mlp``, ``logreg``
    The paper's baselines with the paper's recipe (150 epochs).

The printed table reports, per run, the final model's test accuracy (the test set is used once,
at the end; the per-epoch validation numbers come from a split of the training data), its mean
and range over the seeds, and the mean wall time per run on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cnnlab.training import resolve_settings, run

PUBLISHED = {"logreg": 32, "mlp": 68, "paper": 94, "default": 94, "best": 94}
RUNS: dict[str, dict[str, object]] = {
    "paper": {"model": "mnist1d-cnn", "epochs": 150, "augment": 0, "scheduler": "none"},
    "default": {},
    "best": {"model": "mnist1d-cnn-bn"},
    "mlp": {"model": "mnist1d-mlp"},
    "logreg": {"model": "mnist1d-logreg"},
}


def command(name: str, seed: int | None = None) -> str:
    """The ``cnnlab train`` command line with the same settings."""
    options = dict(RUNS[name], **({} if seed is None else {"seed": seed}))
    return " ".join(["cnnlab train", *(f"--{k.replace('_', '-')} {v}" for k, v in options.items())])


def run_one(name: str, seed: int, out: Path) -> dict[str, float]:
    settings = resolve_settings(dict(RUNS[name], seed=seed))
    start = time.perf_counter()
    result = run(settings, out / f"{name}-seed{seed}", progress=False, log=None)
    seconds = time.perf_counter() - start
    print(f"  {command(name, seed)}\n    test accuracy {100 * result.test_accuracy:.1f}%, {seconds:.0f} s", flush=True)
    return {"accuracy": result.test_accuracy, "seconds": seconds}


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--out", default=None, help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        rows = []
        for name in args.only:
            print(f"{name}:", flush=True)
            results = [run_one(name, seed, out) for seed in args.seeds]
            accs = [100 * r["accuracy"] for r in results]
            rows.append((name, statistics.mean(accs), min(accs), max(accs),
                         statistics.mean(r["seconds"] for r in results)))
    print("\n| run | command | test accuracy, mean (min-max) | published | s / run |")
    print("|---|---|---|---|---|")
    for name, mean, low, high, seconds in rows:
        print(f"| {name} | `{command(name)}` | {mean:.1f}% ({low:.1f}-{high:.1f}) | {PUBLISHED[name]}% | "
              f"{seconds:.0f} |")
    print(f"\nseeds {args.seeds}; human accuracy (published) 96%")


if __name__ == "__main__":
    main_benchmark()
