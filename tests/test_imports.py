"""Import hygiene: the core never pulls torch in, and never imports the first-party plugins."""

from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = ["harness", "harness.cli", "harness.registry", "harness.runner", "harness.data", "harness.features",
           "harness.plugins", "harness.report", "harness.results", "harness.evaluate", "harness.stats",
           "harness.testing", "harness_plugins.extractors", "harness_plugins.aggregators", "harness_plugins.data",
           "harness_plugins.hf"]


@pytest.mark.parametrize("module", MODULES, ids=MODULES)
def test_import_leaves_torch_out(module: str) -> None:
    code = f"import sys, {module}; heavy = [m for m in ('torch', 'transformers', 'open_clip') if m in sys.modules]; print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"importing {module} imported {out}"


def test_core_does_not_import_first_party_plugins() -> None:
    code = "import sys, harness, harness.runner, harness.cli; print([m for m in sys.modules if m.startswith('harness_plugins')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"core imported plugins: {out}"


def test_harness_list_plugins_needs_no_torch() -> None:
    code = ("import sys; from harness.cli import main; rc = main(['list', 'plugins']); "
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 False"
