"""Import hygiene: no module under harness/ (or a plugin's hook module) pulls torch in at import time,
and the core never imports the first-party plugins.  The module list is discovered, not hand-kept."""

from __future__ import annotations

import importlib.metadata
import pkgutil
import subprocess
import sys

import pytest

import harness
import harness_plugins

HEAVY = ("torch", "transformers", "open_clip", "scipy", "matplotlib", "datasets", "openai")


def _modules(package: object) -> list[str]:
    return [package.__name__, *(m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."))]


CORE = _modules(harness)
# Plugin modules the entry points name: the hooks must stay light; their implementation modules
# (context.py, loading.py, ...) import torch by design and are only imported on demand.
ENTRY_POINTS = sorted({ep.value for ep in importlib.metadata.entry_points(group="harness.plugins")
                       if ep.value.startswith("harness_plugins")})


def test_discovery_sees_the_whole_core() -> None:
    for expected in ("harness.cli.main", "harness.evaluation.runner", "harness.features.extractors", "harness.features.views", "harness.features.store",
                     "harness.evaluation.checkpoints", "harness.evaluation.results", "harness.features.distributed", "harness.testing"):
        assert expected in CORE, f"{expected} missing: module discovery is broken"
    assert len(ENTRY_POINTS) >= 5, ENTRY_POINTS


@pytest.mark.parametrize("module", CORE + ENTRY_POINTS, ids=CORE + ENTRY_POINTS)
def test_import_leaves_torch_out(module: str) -> None:
    code = f"import sys, {module}; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"importing {module} imported {out}"


def test_core_does_not_import_first_party_plugins() -> None:
    code = ("import sys, importlib; [importlib.import_module(m) for m in " + repr(CORE) + "]; "
            "print([m for m in sys.modules if m.startswith('harness_plugins')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"core imported plugins: {out}"


def test_harness_list_plugins_needs_no_torch() -> None:
    code = ("import sys; from harness.cli.main import main; rc = main(['list', 'plugins']); "
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 False"


def _module_imports(module: str) -> set[str]:
    """Every harness module ``module`` imports, at import time or lazily inside a function (a lazy
    import still ties the two modules together), but not under TYPE_CHECKING; ``from harness.x import
    name`` counts as ``harness.x`` unless ``harness.x.name`` is itself a module."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module)
    assert spec and spec.origin
    tree = ast.parse(open(spec.origin).read())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("harness."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "harness":
            out.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in CORE else node.module
                       for a in node.names)
    return {m for m in out if m != module}


def test_core_has_no_import_cycles() -> None:
    """Every module under harness/, walked: the graph of what each imports at import time has no circle
    (a package imports its own __init__ first, so a package's __init__ importing its modules is left out)."""
    graph = {m: {d for d in _module_imports(m) if d in CORE and not m.startswith(d + ".")} for m in CORE}
    state: dict[str, int] = {}
    path: list[str] = []

    def walk(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                walk(d)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m)
    assert len(graph) > 50, "module discovery is broken"
    assert not {d for d in graph["harness.features.distributed"]}, "distributed takes the loss as an argument"


def test_plugins_import_only_the_public_api() -> None:
    """First-party plugins import from `harness` or `harness.api` only, so the core's internals can move."""
    import ast
    from pathlib import Path

    bad = []
    for path in sorted(Path(harness_plugins.__path__[0]).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            mods = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            bad += [f"{path.name}:{node.lineno} {m}" for m in mods
                    if m.split(".")[0] == "harness" and m not in ("harness", "harness.api")]
    assert not bad, "plugins import internal modules (use harness or harness.api): " + ", ".join(bad)


def test_public_api_is_importable_without_torch() -> None:
    code = "import sys, harness.api as a; print(len(a.__all__), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) > 60 and out[1] == "False"
