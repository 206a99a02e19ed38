"""Plant known bugs one at a time and check that the test suite notices each (not run in CI).

Each plant is a one-line text edit of a source file.  For every plant the whole ``src/`` tree is
copied to a scratch folder, the edit applied there (the working tree is never touched), and the
chosen tests run against the copy.  A plant is *caught* when at least one test fails; the report
lists how many failed and the first few of them.

    PYTHONPATH=src python benchmarks/planted_bugs.py            # every plant
    PYTHONPATH=src python benchmarks/planted_bugs.py same-floor # one plant by name

Results are recorded in docs/TESTING.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/functional", "tests/explain", "tests/test_explain.py", "tests/test_pooling_size.py",
         "tests/test_backprop_explain.py"]


@dataclass
class Plant:
    name: str
    path: str  # relative to src/cnnlab
    old: str
    new: str
    count: int = 1  # how many occurrences the edit replaces (all must exist)


PLANTS = [
    Plant("same-floor", "functional/_args.py", "out = -(-size // s)", "out = size // s"),
    Plant("pad-lo-hi-swapped", "functional/_windows.py",
          "_pad_index(x.shape[lead + i], lo, hi, mode)", "_pad_index(x.shape[lead + i], hi, lo, mode)"),
    Plant("pad-lo-hi-swapped", "functional/_windows.py",
          "_pad_index(size, plo, phi, mode)", "_pad_index(size, phi, plo, mode)"),
    Plant("max-tie-last", "functional/_pool_kernels.py", "take = value > best", "take = value >= best"),
    Plant("avg-divisor", "functional/_avg_pool.py", "count = ((pos >= low) & (pos < high)).sum(axis=1)",
          "count = ((pos >= low) & (pos <= high)).sum(axis=1)"),
    Plant("ceil-mode-rule", "functional/_args.py", "if out > 0 and (out - 1) * stride >= size + lo:",
          "if out > 0 and (out - 1) * stride > size + lo:"),
    Plant("output-size", "functional/_args.py", "return max(span // stride + 1, 0)",
          "return max((span + 1) // stride + 1, 0)"),
    # a ValueError ("no input cell") on every ceil-mode window that hangs past the padded input
    Plant("pool-raises-on-valid-ceil", "functional/_pool.py",
          "empty = np.flatnonzero(~((pos >= 0) & (pos < size)).any(axis=1))",
          "empty = np.flatnonzero(~((pos >= 0) & (pos < size)).any(axis=1) | (ceil_mode & "
          "(np.arange(o) * s + d * (k - 1) + 1 > size + lo + hi)))"),
    Plant("explain-window-too-long", "explain/_document.py", 'return f"{positions[0]}-{positions[-1]}"',
          'return f"{positions[0]}-{positions[-1] + 1}"'),
    Plant("explain-max-location", "explain/_document.py", "r, col = cell.chosen[0] - rlo, cell.chosen[1] - clo",
          "r, col = cell.chosen[1] - clo, cell.chosen[0] - rlo"),
]


def _apply(src: Path, plants: list[Plant]) -> None:
    for p in plants:
        f = src / "cnnlab" / p.path
        text = f.read_text()
        if text.count(p.old) < p.count:
            raise SystemExit(f"plant {p.name}: {p.old!r} not found in {p.path} (source changed?)")
        f.write_text(text.replace(p.old, p.new, p.count))


def run_plant(name: str, plants: list[Plant], tests: list[str]) -> tuple[int, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
        _apply(src, plants)
        env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
        cmd = [sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:randomly", "-p", "no:cacheprovider",
               "--tb=no", "-rfE", *tests]
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True).stdout
    # a test module that no longer imports (an error at collection) counts as caught too
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    return len(failed), failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="plants to run (default: all)")
    parser.add_argument("--tests", nargs="*", default=TESTS)
    args = parser.parse_args()
    names = list(dict.fromkeys(p.name for p in PLANTS))
    for name in args.names or names:
        group = [p for p in PLANTS if p.name == name]
        if not group:
            raise SystemExit(f"unknown plant {name!r}; known: {names}")
        n, failed = run_plant(name, group, [t for t in args.tests if (ROOT / t).exists()])
        verdict = "CAUGHT" if n else "MISSED"
        print(f"{name:24s} {verdict}: {n} tests failed", flush=True)
        for f in failed[:6]:
            print(f"    {f}")


if __name__ == "__main__":
    main()
