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
    for expected in ("harness.cli", "harness.runner", "harness.extractors", "harness.views", "harness.feature_store",
                     "harness.checkpoints", "harness.results", "harness.distributed", "harness.testing"):
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
    code = ("import sys; from harness.cli import main; rc = main(['list', 'plugins']); "
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 False"


def test_core_has_no_import_cycles() -> None:
    """harness.distributed takes the loss as an argument: it imports no other harness module."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(harness.__file__).with_name("distributed.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.startswith("harness")}, imported
