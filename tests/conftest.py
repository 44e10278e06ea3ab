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
