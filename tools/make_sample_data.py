#!/usr/bin/env python3
"""Generate the project's own sample data from procedural scene graphs.

Writes two files into --out-dir:
  ted6k_sample.jsonl   TED-format benchmark sample: 9 categories x 30 verified instances
  caption_pairs.jsonl  caption pairs (two realisations of one scene) for aggregator training

Same --seed, same bytes: every random draw comes from a string-seeded random.Random and
no output depends on set or hash order. Regenerate the shipped files with:

    python tools/make_sample_data.py --out-dir tasks/data

See tools/README_sample_data.md for how scenes, captions and negatives are built.
Standard library only, plus harness.data.categories for the category list (taken from
this checkout when harness is not installed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # harness from this checkout

from sample_data.bench import build_benchmark  # noqa: E402
from sample_data.pairs import build_pairs  # noqa: E402

DEFAULT_SEED = 1729
DEFAULT_SCENES = 2560
BENCH_FILE = "ted6k_sample.jsonl"
PAIRS_FILE = "caption_pairs.jsonl"


def write_jsonl(path: Path, rows: Sequence[dict[str, object]] | Sequence[dict[str, str]]) -> None:
    """One compact JSON object per line, LF line endings, UTF-8."""
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("tasks/data"),
                        help="folder for the two .jsonl files (default: tasks/data)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"master seed (default: {DEFAULT_SEED})")
    parser.add_argument("--scenes", type=int, default=DEFAULT_SCENES,
                        help=f"number of caption-pair scenes (default: {DEFAULT_SCENES})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = build_benchmark(args.seed)
    pairs = build_pairs(args.seed, args.scenes)
    bench_captions = {str(row["caption"]) for row in bench}
    leaked = [p["group"] for p in pairs if p["a"] in bench_captions or p["b"] in bench_captions]
    if leaked:
        raise SystemExit(f"Benchmark captions leaked into pairs (groups {leaked[:5]!r}); "
                         "pair scenes must use seeds disjoint from the benchmark.")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out_dir / BENCH_FILE, bench)
    write_jsonl(args.out_dir / PAIRS_FILE, pairs)
    counts = Counter(str(row["category"]) for row in bench)
    print(f"wrote {len(bench)} benchmark rows ({dict(counts)}) and {len(pairs)} pairs "
          f"to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
