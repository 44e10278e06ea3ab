"""Checkpoint store: atomic saves under unique temp names, verified loads, unreadable = missing."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from harness.evaluation.checkpoints import CheckpointStore, content_key


class _Blob:
    """A minimal aggregator whose state is a byte string."""

    name, trainable = "blob", True

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def save(self, path: str) -> None:
        Path(path).write_bytes(self.data)

    def load(self, path: str) -> None:
        self.data = Path(path).read_bytes()
        if not self.data.startswith(b"ok"):
            raise ValueError("not a blob")


def test_save_then_load_verifies(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store, key = CheckpointStore(tmp_path), content_key({"a": 1})
    saved = store.save(key, _Blob(b"ok-weights"), {"steps": 3})
    assert saved.meta["steps"] == 3 and len(saved.sha256) == 64
    got = _Blob()
    loaded = store.load(key, got)
    assert loaded is not None and got.data == b"ok-weights" and loaded.sha256 == saved.sha256
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "temp files left behind"
    store.path(key).write_bytes(b"ok-altered")  # same size class, other content
    with caplog.at_level(logging.WARNING, logger="harness"):
        assert store.load(key, _Blob()) is None
    assert "does not match its recorded sha256" in caplog.text


@pytest.mark.parametrize("meta", ["", "{trunc", "[]"], ids=["empty", "truncated", "not-object"])
def test_unreadable_metadata_is_missing(tmp_path: Path, meta: str) -> None:
    store, key = CheckpointStore(tmp_path), content_key("k")
    store.save(key, _Blob(b"ok"), {})
    store.path(key).with_suffix(".json").write_text(meta)
    assert store.load(key, _Blob()) is None


def test_file_that_does_not_fit_is_missing(tmp_path: Path) -> None:
    store, key = CheckpointStore(tmp_path), content_key("k")
    store.save(key, _Blob(b"garbage"), {})  # checksum fine, load() raises
    assert store.load(key, _Blob()) is None


def test_concurrent_saves_of_one_key_never_collide(tmp_path: Path) -> None:
    store, key = CheckpointStore(tmp_path), content_key("shared")
    errors: list[BaseException] = []

    def save(i: int) -> None:
        try:
            for _ in range(20):
                store.save(key, _Blob(b"ok" + bytes([i]) * 1000), {"writer": i})
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    got = _Blob()
    loaded = store.load(key, got)  # interleaved writers may leave one's .pt with another's .json: never mixed up
    if loaded is not None:
        assert got.data == b"ok" + bytes([loaded.meta["writer"]]) * 1000, "weights and metadata of different writers"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_planted_symlink_at_a_temp_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    store, key = CheckpointStore(tmp_path / "ck"), content_key("k")
    (tmp_path / "ck").mkdir()
    old_tmp = store.path(key).with_suffix(".tmp")  # the name the old code always used
    old_tmp.symlink_to(victim)
    store.save(key, _Blob(b"ok"), {})
    assert victim.read_text() == "precious"
