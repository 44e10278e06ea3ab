"""Plugins load through the entry-point group, can be blocked like pytest's, and third parties run."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import textwrap
from pathlib import Path

import pytest

from harness import PluginError
from harness.cli.main import main
from harness.plugins import ENTRY_POINT_GROUP, get_plugin_manager

BUILTINS = {"builtin-data", "builtin-extractors", "builtin-aggregators", "builtin-scorers", "hf", "open-clip"}

THIRD_PARTY = '''
from harness import hookimpl, ExtractorSpec

@hookimpl
def harness_extractor_names():
    return ["first-token-free-mid"]

@hookimpl
def harness_make_extractor(name, arg):
    if name != "mid":
        return None
    return ExtractorSpec(name="mid", layers=(2,))
'''


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A plugin package written to disk and advertised through a faked entry point."""
    pkg = tmp_path / "acme_harness_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(THIRD_PARTY))
    monkeypatch.syspath_prepend(str(tmp_path))
    real = importlib.metadata.entry_points

    def fake_entry_points(**kw):  # type: ignore[no-untyped-def]
        eps = list(real(**kw))
        if kw.get("group") == ENTRY_POINT_GROUP:
            eps.append(importlib.metadata.EntryPoint("acme", "acme_harness_plugin", ENTRY_POINT_GROUP))
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    yield "acme"
    sys.modules.pop("acme_harness_plugin", None)


def test_builtins_register_through_entry_points() -> None:
    names = {n for n, p in get_plugin_manager().list_name_plugin() if p is not None}
    assert BUILTINS <= names, f"missing built-ins: {BUILTINS - names}"


def test_block_with_no_prefix() -> None:
    pm = get_plugin_manager(["no:builtin-extractors"])
    assert pm.get_plugin("builtin-extractors") is None
    assert pm.hook.harness_make_extractor(name="last", arg=None) is None


def test_disable_autoload_then_load_with_p(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = get_plugin_manager(["harness_plugins.extractors"])
    names = {n for n, p in pm.list_name_plugin() if p is not None}
    assert names == {"harness_plugins.extractors"}


def test_unimportable_p_plugin_is_a_plugin_error() -> None:
    with pytest.raises(PluginError, match="no_such_module_xyz"):
        get_plugin_manager(["no_such_module_xyz"])


def test_third_party_plugin_listed_and_runs(third_party: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "plugins"]) == 0
    assert "acme_harness_plugin" in capsys.readouterr().out
    assert main(["list", "extractors"]) == 0
    assert "first-token-free-mid" in capsys.readouterr().out
    out = tmp_path / "out"
    rc = main(["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--extract", "mid",
               "--aggregator", "mean-pool", "--output", str(out)])
    assert rc == 0
    scores = json.loads((out / "results.json").read_text())["scores"]
    assert {s["extractor"] for s in scores} == {"mid"}
    extractor = json.loads((out / "results.json").read_text())["provenance"]["encoders"]["fake"]["extractors"]["mid"]
    assert extractor["view"] == "single:none:2", "third-party extractor's layer choice not honoured"


def test_third_party_plugin_blocked_by_name(third_party: str) -> None:
    pm = get_plugin_manager(["no:acme"])
    assert pm.hook.harness_make_extractor(name="mid", arg=None) is None


def test_p_on_a_module_already_loaded_by_entry_point_is_harmless() -> None:
    pm = get_plugin_manager(["harness_plugins.extractors"])
    assert [n for n, p in pm.list_name_plugin() if p is not None].count("builtin-extractors") == 1
