"""Shared fixtures: offline hub, a private cache, a fresh plugin manager with the test plugin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
TINY_PAIRS = "pkg:harness/testing_data/tiny_pairs.jsonl"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own checkpoint/feature cache so results never leak between tests."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def pm():
    from harness.plugins import get_plugin_manager

    return get_plugin_manager(["harness.testing"])


@pytest.fixture
def registry(pm):
    from harness.cli.main import _registry

    return _registry(pm, [])


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if an encoder is loaded (the fake encoder's hook is where every run loads one)."""
    import harness.testing

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an encoder was loaded before the refusal")

    monkeypatch.setattr(harness.testing.FakeEncoder, "__init__", refuse)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished fake-encoder run's results folder (tiny task, mean-pool), once per test module."""
    from cli_checks import FAKE, QUICK

    from harness.cli.main import main

    out = tmp_path_factory.mktemp("res") / "run"
    assert main([*FAKE, "run", *QUICK, "--tasks", "tiny", "--output", str(out)]) == 0
    return out
