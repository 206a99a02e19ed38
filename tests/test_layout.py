"""The package's architecture: every module imports in a fresh interpreter, dependencies point one way
(cli/web -> training/explain/viz -> nn -> autograd -> functional -> numpy), no two modules import each
other, no private module sits at the package root, and every built-in model loads with nothing
imported but ``cnnlab``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "cnnlab"

# layer -> the cnnlab layers it must never import (directly or in a function body)
FORBIDDEN = {
    "functional": {"autograd", "nn", "optim", "data", "training", "explain", "viz", "web", "cli", "checkpoint"},
    "autograd": {"nn", "optim", "data", "training", "explain", "viz", "web", "cli", "checkpoint"},
    "nn": {"optim", "data", "training", "explain", "viz", "web", "cli"},
    "optim": {"nn", "data", "training", "explain", "viz", "web", "cli"},
    "data": {"nn", "optim", "training", "explain", "viz", "web", "cli"},
    "training": {"explain", "viz", "web", "cli"},
    "explain": {"training", "viz", "web", "cli", "optim", "data"},
    "checkpoint": {"training", "explain", "viz", "web", "cli", "optim", "data"},
    "random": {"functional", "autograd", "nn", "optim", "data", "training", "explain", "viz", "web", "cli"},
    "viz": {"web", "cli"},
    "web": {"cli"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks (imports for annotations only)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def imported(name: str, path: Path) -> set[str]:
    """The cnnlab modules ``name`` imports anywhere in its file at run time (top level or in a function).

    ``from pkg import mod`` counts as importing ``pkg.mod`` (and ``pkg`` only when a name that is
    not a submodule is taken from it); a module's own parent packages, which Python imports before
    it anyway, are not counted.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & set(MODULES)
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(target)
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return {m for m in found if m in MODULES and m != name and m not in ancestors}


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_imports_in_a_fresh_interpreter():
    names = [n for n in MODULES if not n.endswith("__main__")]
    code = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:  # an optional dependency that is absent is fine\n"
        "        if 'cnnlab' in str(exc): failed.append((name, repr(exc)))\n"
        "    except Exception as exc:\n"
        "        failed.append((name, repr(exc)))\n"
        "print(failed)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_dependencies_point_one_way(name):
    own = layer(name)
    bad = sorted(m for m in GRAPH[name] if layer(m) in FORBIDDEN.get(own, set()) and layer(m) != own)
    assert not bad, f"{name} ({own}) imports {bad}"


def test_no_two_modules_import_each_other():
    pairs = sorted((a, b) for a, deps in GRAPH.items() for b in deps
                   if a in GRAPH.get(b, ()) and a < b and not (a == "cnnlab" or b == "cnnlab"))
    assert pairs == []


def test_the_import_graph_has_no_cycle_below_the_package_root():
    # the package __init__ re-exports from its subpackages; below it every import is acyclic
    graph = {a: {b for b in deps if b != "cnnlab"} for a, deps in GRAPH.items() if a != "cnnlab"}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            parent = node.startswith(nxt + ".")  # a module importing its own package's __init__
            if parent:
                continue
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, path + [node]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if state.get(start) is None and visit(start, []):
            break
    assert cycle == []


def test_no_private_module_at_the_package_root():
    private = sorted(p.name for p in PACKAGE.glob("_*.py") if p.name not in ("__init__.py", "__main__.py",
                                                                           "_version.py"))
    assert private == []


def test_no_public_function_hides_a_module_of_the_same_name():
    import importlib

    hidden = []
    for name in MODULES:
        package, _, leaf = name.rpartition(".")
        if not package or leaf.startswith("_"):
            continue
        try:
            parent = importlib.import_module(package)
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(parent, leaf, module) is not module:
            hidden.append(name)
    assert hidden == []


def test_cli_uses_only_the_public_library():
    """The command line is a thin layer: it reaches the library through public names only (and the
    one home of the argument checks, which its argparse types apply)."""
    allowed = {"cnnlab._version", "cnnlab.functional._args"}
    private = sorted((name, m) for name, deps in GRAPH.items() if layer(name) == "cli" for m in deps
                     if layer(m) != "cli" and m not in allowed and any(p.startswith("_") for p in m.split(".")))
    assert private == []


def test_every_built_in_model_loads_with_load_model_in_a_fresh_process(tmp_path):
    pytest.importorskip("safetensors")
    import numpy as np

    import cnnlab
    from cnnlab.training.models import MODELS, build_model

    expected = {}
    for name in MODELS:
        cnnlab.manual_seed(0)
        model = build_model(name)
        path = tmp_path / f"{name}.safetensors"
        cnnlab.save(model, path)
        expected[name] = {k: float(np.asarray(v, dtype=np.float64).sum()) for k, v in model.state_dict().items()}
    code = (
        "import json, sys, cnnlab, numpy as np\n"
        "out = {}\n"
        f"for name in {sorted(MODELS)!r}:\n"
        f"    m = cnnlab.load_model({str(tmp_path)!r} + '/' + name + '.safetensors')\n"
        "    out[name] = {k: float(np.asarray(v, dtype=np.float64).sum()) for k, v in m.state_dict().items()}\n"
        "    assert 'cnnlab.training' not in sys.modules, name\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert sorted(loaded) == sorted(expected)
    for name in expected:
        assert loaded[name] == pytest.approx(expected[name], rel=1e-12), name
    assert "mnist1d-mlp" in expected  # the one with a Residual block
