"""Every hook is documented: its docstring says when it is called, with what, and what to return, and
docs/extending.md names it (as datasette's test fails on an undocumented plugin hook)."""

from __future__ import annotations

import inspect
import re

import pytest

from conftest import REPO
from harness import hookspecs

HOOKS = sorted(n for n, f in vars(hookspecs).items()
               if n.startswith("harness_") and getattr(f, f"{hookspecs.PROJECT}_spec", None) is not None)


def test_the_hooks_are_found() -> None:
    assert len(HOOKS) >= 20 and "harness_load_encoder" in HOOKS and "harness_make_scorer" in HOOKS


@pytest.mark.parametrize("name", HOOKS)
def test_hook_docstring_says_when_with_what_and_what_to_return(name: str) -> None:
    hook = getattr(hookspecs, name)
    doc = inspect.getdoc(hook) or ""
    where = f"harness/hookspecs.py: {name}'s docstring"
    assert re.search(r"\bCalled\b", doc), f"{where} must say when it is called (a sentence starting 'Called ...')"
    assert re.search(r"\b(return|returns|result)\b", doc, re.I), f"{where} must say what to return"
    for param in inspect.signature(hook).parameters:
        assert re.search(rf"\b{param}\b", doc), f"{where} must say what its argument {param!r} holds"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_in_the_plugin_guide(name: str) -> None:
    guide = (REPO / "docs" / "extending.md").read_text(encoding="utf-8")
    assert f"`{name}`" in guide, f"docs/extending.md does not name hook {name} (add it to the 'Every hook' table)"
