"""Checks on the shipped sample data (tasks/data) and on the generator that makes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.data.categories import CATEGORIES

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tasks" / "data"
GENERATOR = ROOT / "tools" / "make_sample_data.py"
BENCH = "ted6k_sample.jsonl"
PAIRS = "caption_pairs.jsonl"


def _load(name: str) -> list[dict[str, object]]:
    with (DATA / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _words(text: object) -> int:
    return len(str(text).split())


@pytest.fixture(scope="module")
def bench() -> list[dict[str, object]]:
    return _load(BENCH)


@pytest.fixture(scope="module")
def pairs() -> list[dict[str, object]]:
    return _load(PAIRS)


@pytest.mark.parametrize("category", CATEGORIES, ids=CATEGORIES)
def test_each_category_has_enough_instances(bench: list[dict[str, object]], category: str) -> None:
    n = sum(row["category"] == category for row in bench)
    assert n >= 20, f"category {category!r} has {n} instances, want >= 20"


def test_only_known_categories_and_fields(bench: list[dict[str, object]]) -> None:
    keys = {"id", "category", "caption", "positive", "negatives", "caption_type"}
    for row in bench:
        assert set(row) == keys, f"{row.get('id')!r} has fields {sorted(row)}"
        assert row["category"] in CATEGORIES, f"{row['id']!r}: unknown category"
        assert row["caption_type"] in ("image", "video"), f"{row['id']!r}: bad caption_type"
        assert str(row["id"]).startswith(f"sample-{row['category']}-"), f"bad id {row['id']!r}"
    assert len({row["id"] for row in bench}) == len(bench), "duplicate ids"


def test_every_instance_has_distinct_negatives(bench: list[dict[str, object]]) -> None:
    for row in bench:
        negatives = row["negatives"]
        assert isinstance(negatives, list) and len(negatives) >= 1, f"{row['id']!r}: no negative"
        candidates = [row["positive"], *negatives]
        assert len(set(candidates)) == len(candidates), f"{row['id']!r}: duplicate candidates"
        assert row["positive"] not in negatives, f"{row['id']!r}: positive among negatives"


def test_captions_are_long_and_statements_short(bench: list[dict[str, object]]) -> None:
    mean = sum(_words(row["caption"]) for row in bench) / len(bench)
    assert mean >= 70, f"mean caption length {mean:.1f} words, want >= 70"
    for row in bench:
        assert 8 <= _words(row["positive"]) <= 20, f"{row['id']!r}: positive length"


def test_temporal_captions_are_videos_and_mix_is_reasonable(bench: list[dict[str, object]]) -> None:
    assert all(row["caption_type"] == "video" for row in bench if row["category"] == "temporal")
    share = sum(row["caption_type"] == "video" for row in bench) / len(bench)
    assert 0.3 <= share <= 0.5, f"video share {share:.2f}, want about 0.4"


def test_pairs_are_plentiful_and_distinct(pairs: list[dict[str, object]]) -> None:
    assert len(pairs) >= 2000, f"only {len(pairs)} caption pairs"
    for pair in pairs:
        assert set(pair) == {"a", "b", "group", "caption_type"}, f"pair fields {sorted(pair)}"
        assert pair["caption_type"] in ("image", "video")
        assert pair["a"] != pair["b"], f"identical captions in {pair['group']!r}"
        assert str(pair["group"]).startswith("scene-"), f"bad group {pair['group']!r}"
        assert 40 <= _words(pair["a"]) <= 160 and 40 <= _words(pair["b"]) <= 160


def test_pairs_do_not_contain_benchmark_captions(bench: list[dict[str, object]],
                                                 pairs: list[dict[str, object]]) -> None:
    captions = {row["caption"] for row in bench}
    leaked = [p["group"] for p in pairs if p["a"] in captions or p["b"] in captions]
    assert not leaked, f"benchmark captions reused in pair groups {leaked[:5]}"


def test_generator_settings_cover_exactly_the_categories(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    from sample_data import bench as generator

    assert generator.CATEGORIES is CATEGORIES, "the generator must read harness.data.categories"
    for name in ("DRAFTERS", "VIDEO_COUNT"):
        keys = set(getattr(generator, name))
        assert keys == set(CATEGORIES), f"{name} keys {sorted(keys)} != CATEGORIES"


def test_shipped_sample_is_in_category_order(bench: list[dict[str, object]]) -> None:
    order = list(dict.fromkeys(str(row["category"]) for row in bench))
    assert order == list(CATEGORIES), "the generator writes categories in CATEGORIES order"


def test_generator_reproduces_shipped_files(tmp_path: Path) -> None:
    # A different hash seed proves no output depends on set or dict-of-str hash order.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, str(GENERATOR), "--out-dir", str(tmp_path)],
                   check=True, capture_output=True, env=env, timeout=120)
    for name in (BENCH, PAIRS):
        fresh, shipped = (tmp_path / name).read_bytes(), (DATA / name).read_bytes()
        assert fresh == shipped, f"{name} differs from a fresh run: regenerate with " \
                                 "python tools/make_sample_data.py --out-dir tasks/data"
