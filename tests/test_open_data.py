"""The shipped open set (ted-open) and pairs: counts match the data card, the rules of the build hold,
and the build script reproduces the files byte for byte from the pinned snapshots when they are here."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from harness.data.loaders import load_instances_file, load_pairs_file
from harness.registry import resolve_path

ROOT = Path(__file__).resolve().parents[1]
OPEN = ROOT / "tasks" / "data" / "open"
CARD = (OPEN / "README.md").read_text()
MIRROR = Path(os.environ.get("HARNESS_SOURCE_MIRROR", "/work/.mirror"))


def _records(name: str) -> list[dict]:  # type: ignore[type-arg]
    with gzip.open(OPEN / name, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _builder():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("build_open_data", ROOT / "tools" / "build_open_data.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


def test_counts_match_the_data_card_and_counts_json() -> None:
    inst, pairs = _records("ted_open.jsonl.gz"), _records("pairs_open.jsonl.gz")
    counts = json.loads((OPEN / "counts.json").read_text())
    by = Counter(f"{r['category']}/{r['origin']['aspect']}" for r in inst)
    assert dict(by) == counts["by_category_aspect"] and len(inst) == counts["instances"] == 2431
    for key, n in by.items():
        cat, aspect = key.split("/")
        assert f"| {cat} | {aspect} | {n} |" in CARD, f"data card row for {key} is not {n}"
    assert f"**{len(inst):,}**" in CARD
    video = [p for p in pairs if p["group"].startswith("vatex-")]
    image = [p for p in pairs if p["group"].startswith("coco-")]
    assert len(video) + len(image) == len(pairs) == counts["pairs"]
    line = (f"**{len(pairs):,}** = {len(video):,} pairs of {len({p['group'] for p in video}):,} VATEX videos + "
            f"{len(image):,} pairs of {len({p['group'] for p in image}):,} COCO images")
    assert line in CARD, line
    assert len(pairs) >= 20_000, "the issue asks for at least 20,000 real pairs"
    videos = {r["origin"]["video"] for r in inst}
    assert f"{len(videos)} videos" in CARD
    negs = Counter(len(r["negatives"]) for r in inst)
    assert f"{negs[1]:,} instances have one negative and {negs[2]} have two" in CARD


def test_the_loaders_read_the_shipped_files() -> None:
    inst = load_instances_file(resolve_path("pkg:harness_tasks/data/open/ted_open.jsonl.gz"))
    assert len(inst) == 2431 and {i.caption_type for i in inst} == {"video"}
    assert {i.category for i in inst} == {"action", "spatial", "coreference", "adverb", "temporal"}
    pairs = load_pairs_file(resolve_path("pkg:harness_tasks/data/open/pairs_open.jsonl.gz"))
    assert len(pairs) == 54569 and all(p.group for p in pairs)


def test_construction_rules_hold() -> None:
    inst, pairs = _records("ted_open.jsonl.gz"), _records("pairs_open.jsonl.gz")
    assert len({r["id"] for r in inst}) == len(inst)
    for r in inst:
        lines = r["caption"].split("\n")
        keys = [_norm(x) for x in lines]
        assert len(lines) >= 2 and len(set(keys)) == len(keys), r["id"]
        assert _norm(r["positive"]) not in keys, f"{r['id']}: the positive is in its own caption"
        assert not {_norm(n) for n in r["negatives"]} & {*keys, _norm(r["positive"])}, r["id"]
        assert all(t == t.strip() and t for t in (*lines, r["positive"], *r["negatives"])), "trimmed, non-empty"
    used = {f"vatex-{r['origin']['video']}" for r in inst}
    assert not used & {p["group"] for p in pairs}, "a video both in an instance and in the pairs"
    inst_texts = {_norm(t) for r in inst for t in (r["positive"], *r["negatives"], *r["caption"].split("\n"))}
    assert not inst_texts & {_norm(t) for p in pairs for t in (p["a"], p["b"])}, "pair text equal to an instance text"
    assert all(_norm(p["a"]) != _norm(p["b"]) for p in pairs)
    drop = set((ROOT / "tools" / "open_data" / "heldout_drop.txt").read_text().split())
    shipped = inst_texts | {_norm(t) for p in pairs for t in (p["a"], p["b"])}
    assert len(drop) == 380 and not drop & shipped, "a text on the held-out drop list is shipped"


def test_task_group_and_default_pairs() -> None:
    from harness.cli.main import _registry
    from harness.plugins import get_plugin_manager

    reg = _registry(get_plugin_manager(), ())
    tasks = reg.resolve_tasks(["ted-open"])
    assert sorted(t.name for t in tasks) == [f"ted-open-{c}" for c in
                                             ("action", "adverb", "coreference", "spatial", "temporal")]
    assert {t.train_pairs for t in tasks} == {"open"}
    assert reg.pairs["open"].default_max == 4096


@pytest.mark.skipif(not (MIRROR / "lscpku+VITATECS").is_dir(), reason="pinned snapshots not here (HARNESS_SOURCE_MIRROR)")
def test_build_reproduces_the_shipped_files_byte_for_byte() -> None:
    built = _builder().build(MIRROR)
    for name, data in built.items():
        assert data == (OPEN / name).read_bytes(), f"{name}: rebuilt from the snapshots, it differs"
