"""Aggregator training throughput: steps/s with features in RAM vs read from the on-disk feature cache.

    python bench/bench_train.py                         # MiniLM, 64 shipped pairs, views last and learned
    python bench/bench_train.py --pairs 256 --max-length 128 --train-batch-size 0 --repeat 3   # preset's batch
    python bench/bench_train.py --widths 256,512,1024   # also: random features, steps/s against width
    python bench/bench_train.py -p harness.testing --encoder fake --preset baby --pairs 32   # seconds (tests)
    python bench/bench_train.py --device cuda --precision bf16 --preset official --widths 4096,5120

The encoder (registry name or ``FAMILY:PATH``; default ``minilm``, the pip-shipped
all-MiniLM-L6-v2) encodes the pairs' texts once through the harness's `FeatureStore`
into a cold `FeatureCache`.  Then, per view (``last``: one layer; ``learned``: the stack
of every normalised layer), the aggregator is trained through ``Aggregator.fit`` (the
call ``harness run`` makes) on the same pairs and seed, two ways, interleaved:

  ram    every text's view already in RAM as a float32 tensor; batches padded as
         ``FeatureStore.batch`` pads them (the features cost nothing but the padding)
  cache  ``FeatureStore.batch`` over the `FeatureCache` on disk (the path training uses;
         the OS page cache is warm, the files were just written)

Both go through the trainer's feed: the next batches are fetched on a background thread
while a step computes (``harness_plugins.aggregators.prefetch``).  ``--sync`` adds
``ram-sync`` and ``cache-sync``: the same with the prefetch off (each batch fetched in the
loop, as before the prefetch existed), for the before/after comparison in one run.

Defaults (64 pairs of 64 tokens, batch 16, 4 steps per run) take 1-2 minutes on 2 busy CPU
cores (twice that with ``--sync``).  Steps/s excludes the first step (allocator and kernel
warm-up); the fastest of ``--repeat`` runs is kept.  Printed: steps/s of each, the
aggregator's model FLOP/s and ``cache/ram`` (time per step, 1.00 = reading from the cache is
free) twice: from the fastest runs, and from the time each step *waited* for its features
(``train/feed_wait_ms``: the fetch itself without prefetch, what the thread had not finished
with it) added to the rest of a step taken from the faster run, which is the steadier number on
a busy machine.  The time spent inside the batch function is printed too (with the prefetch
it runs beside the step, off its critical path).

``--host-feed 2560,4096``: the host work a CUDA trainer's feed thread does per batch side, before
(`FeatureStore.batch`, float32, then the copy into pinned memory) and now (`FeatureStore.padded`:
the stored dtype padded straight into pinned memory, widened on the GPU), and the bytes each moves.

``--widths``: random features of ``--tokens`` tokens already on the aggregator's device
(no encoder, no store) at each width, one layer and, with ``--layers L``, a stack of L:
the aggregator's compute ceiling, and how its time grows with the width (compared with
the FLOP count).  This is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


# ---- FLOPs -------------------------------------------------------------------------------
def context_flops(width: int, tokens: float, *, blocks: int = 2, mlp_ratio: float = 4.0, dim_out: int = 1024,
                  n_layers_in: int = 1) -> float:
    """Forward FLOPs of the context aggregator on one text of ``tokens`` tokens (matmuls only).

    Per block and token: q, k, v, o (4 D^2) and the MLP (2 r D^2) multiply-adds, plus
    attention scores and values (2 T D); then the projection of the context token, and
    the softmax layer fusion of a ``learned`` stack (L T D).  Training is ~3x this.
    """
    t = tokens + 1  # the context token
    per_block = 2 * t * (4 + 2 * mlp_ratio) * width**2 + 4 * t * t * width
    fusion = 2 * n_layers_in * tokens * width if n_layers_in > 1 else 0
    return blocks * per_block + 2 * width * dim_out + fusion


# ---- timing one training run ----------------------------------------------------------------
class FeedWaits:
    """Stands in for the `harness.TrainingLog` a fit writes to: keeps ``train/feed_wait_ms`` per step."""

    def __init__(self) -> None:
        self.ms: list[float] = []

    def scalar(self, tag: str, value: float, step: int) -> None:
        if tag == "train/feed_wait_ms":
            self.ms.append(value)

    def step(self, step: int, loss: float) -> None:
        pass

    def layer_weights(self, step: int, weights: Sequence[float]) -> None:
        pass


def timed_fit(agg: Any, features: Callable[[Sequence[str]], tuple[Any, Any]], pairs: Sequence[Any], *,
              sync: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Train ``agg`` once: steps/s over steps 2..n (the first warms up), the texts and tokens they saw,
    and per timed step the time inside the batch function and the time the step waited for it."""
    marks: list[float] = []
    waits = FeedWaits()
    calls: list[tuple[int, int, float]] = []  # (texts, tokens, seconds) per features call: two per step

    def counted(texts: Sequence[str]) -> tuple[Any, Any]:
        t = time.perf_counter()
        x, mask = features(texts)
        calls.append((len(texts), int(mask.sum()), time.perf_counter() - t))
        return x, mask

    def on_step(step: int, loss: float) -> None:
        sync()
        marks.append(time.perf_counter())

    t0 = time.perf_counter()
    report = agg.fit(counted, pairs, seed=0, on_step=on_step, log=waits)
    steps, timed = len(marks), len(marks) - 1
    seconds = marks[-1] - marks[0] if timed > 0 else math.nan
    per_step = len(calls) // steps if steps else 0
    seen = calls[per_step:] if per_step else []
    texts, tokens, fetch = sum(c[0] for c in seen), sum(c[1] for c in seen), sum(c[2] for c in seen)
    return {"steps": steps, "steps_per_s": timed / seconds if timed > 0 else math.nan, "timed_seconds": seconds,
            "seconds": time.perf_counter() - t0, "timed_texts": texts, "fetch_s_per_step": fetch / timed if timed > 0
            else math.nan, "wait_s_per_step": sum(waits.ms[1:]) / 1e3 / timed if timed > 0 and waits.ms else math.nan,
            "tokens_per_text": tokens / texts if texts else math.nan, "final_loss": report.final_loss}


def pad_batch(seqs: Sequence[Any]) -> tuple[Any, Any]:
    """Right-padded float32 ``[B, (L,) T, D]`` and ``[B, T]`` bool mask, as ``FeatureStore.batch``."""
    import torch

    t_max = max(s.shape[-2] for s in seqs)
    x = torch.zeros(len(seqs), *seqs[0].shape[:-2], t_max, seqs[0].shape[-1])
    mask = torch.zeros(len(seqs), t_max, dtype=torch.bool)
    for i, s in enumerate(seqs):
        x[i, ..., : s.shape[-2], :] = s
        mask[i, : s.shape[-2]] = True
    return x, mask


# ---- encoder-backed runs ------------------------------------------------------------------
def load_pairs(n: int, data_dir: Path) -> list[Any]:
    from harness import CaptionPair

    path = data_dir / "caption_pairs.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:n]
    return [CaptionPair(a=r["a"], b=r["b"], group=r.get("group")) for r in rows]


def make_cache(root: str | Path, fingerprint: dict[str, Any], *, dtype: str, fsync: str) -> Any:
    """A `FeatureCache` with fsync policy ``shard``/``group``/``none``; None if this cache cannot do ``fsync``.

    Works with both cache APIs: ``fsync`` a policy string, or (older) a bool (per shard or never).
    """
    import inspect

    from harness.features.cache import FeatureCache

    default = inspect.signature(FeatureCache).parameters["fsync"].default
    if isinstance(default, bool):
        if fsync == "group":
            return None
        return FeatureCache(root, fingerprint, dtype=dtype, fsync=fsync == "shard")
    return FeatureCache(root, fingerprint, dtype=dtype, fsync=fsync)


def _agg_options(args: argparse.Namespace) -> Any:
    from harness import AggregatorOptions

    return AggregatorOptions(preset=args.preset, epochs=1, device=args.device, batch_size=args.train_batch_size)


def _precision_cfg(agg: Any, args: argparse.Namespace) -> None:
    """``--precision`` (not an `AggregatorOptions` field): set on the resolved config, as a preset would."""
    import dataclasses

    if args.precision and hasattr(agg, "cfg") and agg.cfg.precision != args.precision:
        agg.cfg = dataclasses.replace(agg.cfg, precision=args.precision)


def _sync(device: str) -> Callable[[], None]:
    if not device.startswith("cuda"):
        return lambda: None
    import torch

    return torch.cuda.synchronize


def load_encoder(args: argparse.Namespace) -> tuple[Any, Any]:
    """The plugin manager and ``--encoder`` loaded with ``--encoder-device`` / ``--encoder-dtype``."""
    import dataclasses

    from harness.cli.main import _registry
    from harness.plugins import get_plugin_manager

    pm = get_plugin_manager(args.plugin)
    spec = _registry(pm, []).encoder(args.encoder)
    opts = {"device": args.encoder_device or ("cuda" if args.device == "cuda" else "cpu")}
    if args.encoder_dtype:
        opts["dtype"] = args.encoder_dtype
    spec = dataclasses.replace(spec, options=dataclasses.replace(spec.options, **opts))
    return pm, pm.hook.harness_load_encoder(spec=spec)


def run_store(args: argparse.Namespace, *, pm: Any = None, encoder: Any = None) -> list[dict[str, Any]]:
    """Encode the pairs once into a disk cache; train per view from RAM and from the cache, interleaved."""
    from harness.features.cache import encoder_fingerprint
    from harness.features.extractors import parse_extractors, view_for
    from harness.features.store import FeatureStore
    from harness.evaluation.runner import make_aggregator

    if encoder is None:
        pm, encoder = load_encoder(args)
    pairs = load_pairs(args.pairs, args.data_dir)
    texts = sorted({t for p in pairs for t in (p.a, p.b)})
    extractors = parse_extractors(pm, args.views.split(","))
    views = {s.name: view_for(s, encoder.info) for s in extractors}
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        cache = make_cache(tmp, encoder_fingerprint(encoder.info), dtype=args.feature_dtype, fsync="none")
        store = FeatureStore(encoder, views.values(), batch_size=args.batch_size, dtype=args.feature_dtype,
                             cache=cache, max_length=args.max_length)
        t0 = time.perf_counter()
        store.ensure(texts)
        print(f"encoded {len(texts)} texts of {len(pairs)} pairs in {time.perf_counter() - t0:.1f}s "
              f"({encoder.info.name}, width {encoder.info.width}, features {args.feature_dtype})", flush=True)
        sync = _sync(args.device)
        for name, view in views.items():
            ram = {t: store.get(view, t).float().clone() for t in texts}
            fns: dict[str, Callable[[Sequence[str]], tuple[Any, Any]]] = {
                "ram": lambda ts, ram=ram: pad_batch([ram[t] for t in ts]),
                "cache": lambda ts, view=view: store.batch(view, ts),
            }
            modes = [*fns, *([f"{m}-sync" for m in fns] if getattr(args, "sync", False) else [])]
            best: dict[str, dict[str, float]] = {}
            rates: dict[str, list[float]] = {}
            n_in = len(view.layers) if view.op == "stack" else 1
            for _ in range(args.repeat):
                for mode in modes:
                    agg = make_aggregator(pm, args.aggregator, width=encoder.info.width, n_layers_in=n_in,
                                          options=_agg_options(args))
                    _precision_cfg(agg, args)
                    if mode.endswith("-sync"):
                        agg.prefetch = 0  # the trainer's feed without its thread: each batch fetched in the loop
                    r = timed_fit(agg, fns[mode.removesuffix("-sync")], pairs, sync=sync)
                    print(f"  {name:<8} {mode:<10} {r['steps_per_s']:.3f} steps/s ({r['steps']} steps, waited "
                          f"{r['wait_s_per_step'] * 1e3:.0f} ms/step for features)", flush=True)
                    rates.setdefault(mode, []).append(r["steps_per_s"])
                    if mode not in best or r["steps_per_s"] > best[mode]["steps_per_s"]:
                        best[mode] = r
            for mode, r in best.items():
                r["median_steps_per_s"] = statistics.median(rates[mode])
                out.append({"view": name, "op": view.op, "layers": n_in, "width": encoder.info.width, "mode": mode,
                            **r, "flops": _train_flops(r, encoder.info.width, n_in, agg)})
            del ram
        cache.close()
    return out


def _train_flops(r: dict[str, float], width: int, n_layers_in: int, agg: Any) -> float:
    """Model FLOP/s of the timed steps: 3 x forward FLOPs of the texts they saw, at their mean length."""
    cfg = getattr(agg, "cfg", None)
    if cfg is None or not r["timed_texts"]:
        return math.nan
    fwd = context_flops(width, r["tokens_per_text"], blocks=cfg.blocks, mlp_ratio=cfg.mlp_ratio,
                        dim_out=cfg.dim_out, n_layers_in=n_layers_in)
    return 3 * r["timed_texts"] * fwd / r["timed_seconds"]


# ---- synthetic features: steps/s against width ----------------------------------------------
def run_widths(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from harness import CaptionPair
    from harness.plugins import get_plugin_manager
    from harness.evaluation.runner import make_aggregator

    pm = get_plugin_manager(args.plugin)
    device = args.device
    sync = _sync(device)
    out: list[dict[str, Any]] = []
    for width in args.widths:
        for n_in in ([args.layers] if getattr(args, "only_stack", False) else sorted({1, args.layers})):
            probe = make_aggregator(pm, args.aggregator, width=width, n_layers_in=n_in, options=_agg_options(args))
            _precision_cfg(probe, args)
            batch = probe.cfg.batch_size
            pairs = [CaptionPair(a=f"a{i}", b=f"b{i}") for i in range(batch * args.width_steps)]
            torch.manual_seed(0)
            lead = (n_in,) if n_in > 1 else ()
            x = torch.randn(batch, *lead, args.tokens, width, device=device)
            mask = torch.ones(batch, args.tokens, dtype=torch.bool, device=device)

            def feats(texts: Sequence[str], x: Any = x, mask: Any = mask) -> tuple[Any, Any]:
                return x[: len(texts)], mask[: len(texts)]

            r = timed_fit(probe, feats, pairs, sync=sync)
            r["flops"] = _train_flops(r, width, n_in, probe)
            out.append({"view": f"random x{n_in}", "op": "stack" if n_in > 1 else "single", "layers": n_in,
                        "width": width, "mode": f"{device}-resident", **r})
            print(f"  width {width:>5} layers {n_in:>3}: {r['steps_per_s']:.3f} steps/s, "
                  f"{r['flops'] / 1e12:.3f} TFLOP/s", flush=True)
            del x, mask, probe
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return out


# ---- report -------------------------------------------------------------------------------
def host_feed(widths: Sequence[int], *, texts: int = 128, tokens: int = 256, repeat: int = 5) -> list[str]:
    """The host's work per batch side that a CUDA trainer's feed thread does, at each width (bf16 stored
    features in RAM, ``texts`` texts of ``tokens - i % 40`` tokens): before, `FeatureStore.batch` (pad,
    widen to float32) and the copy into pinned memory (timed as a clone: the CPU has no pinned memory);
    now, `FeatureStore.padded` (pad into one tensor in the stored dtype; pinned on CUDA, nothing more).
    Fastest of ``repeat``; plus the bytes each moves over the bus."""
    import torch

    from harness.features.store import FeatureStore
    from harness.features.views import View
    from harness.testing import FakeEncoder

    def fastest(fn: Callable[[], Any]) -> tuple[float, Any]:
        best, out = math.inf, None
        for _ in range(repeat):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
        return best, out

    lines = [f"host feed per batch side ({texts} texts of {tokens - 39}-{tokens} tokens, bf16 stored, RAM):",
             "| width | batch + pin copy (before) | padded (now) | now / before | bytes over the bus, now / before |",
             "|---|---|---|---|---|"]
    for width in widths:
        view = View("single", (1,), "none")
        store = FeatureStore(FakeEncoder(width=8, num_layers=1), [view], dtype="bfloat16")
        names = [f"text {i}" for i in range(texts)]
        g = torch.Generator().manual_seed(0)
        for i, name in enumerate(names):  # features as a store holds them after `ensure` (no encoder at this width)
            store._data[(view.key, name)] = torch.randn(tokens - i % 40, width, generator=g).to(torch.bfloat16)
        t_batch, (x, _) = fastest(lambda: store.batch(view, names))
        t_pin, _ = fastest(lambda: x.clone())
        t_padded, (px, _) = fastest(lambda: store.padded(view, names))
        before = t_batch + t_pin
        lines.append(f"| {width} | {before * 1e3:.0f} ms ({x.nbytes / 1e6:.0f} MB) | {t_padded * 1e3:.0f} ms "
                     f"({px.nbytes / 1e6:.0f} MB) | {t_padded / before:.2f} | {px.nbytes / x.nbytes:.2f} |")
    return lines


def report(rows: list[dict[str, Any]], *, peak_tflops: float | None = None) -> list[str]:
    lines = [f"{'view':<12} {'layers':>6} {'width':>6} {'features':<16} {'steps/s':>9} {'TFLOP/s':>9}"
             + (f" {'MFU':>6}" if peak_tflops else "")]
    for r in rows:
        tf = r["flops"] / 1e12
        lines.append(f"{r['view']:<12} {r['layers']:>6} {r['width']:>6} {r['mode']:<16} {r['steps_per_s']:>9.3f} "
                     f"{tf:>9.4f}" + (f" {tf / peak_tflops:>6.1%}" if peak_tflops else ""))
    by_view: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_view.setdefault(r["view"], {})[r["mode"]] = r
    for view, modes in by_view.items():
        for suffix, how in (("-sync", "prefetch off (before)"), ("", "prefetched (the trainer's default)")):
            ram, cache = modes.get("ram" + suffix), modes.get("cache" + suffix)
            if ram is None or cache is None:
                continue
            ratio = ram["steps_per_s"] / cache["steps_per_s"]
            # The rest of a step (aggregator compute) is the same work in both: pooling it from both runs
            # takes out the run-to-run noise of a busy machine, leaving the difference in what the step waited
            # for its features (the whole fetch without prefetch; what the thread had not done yet with it).
            key = "wait_s_per_step" if not math.isnan(ram.get("wait_s_per_step", math.nan)) else "fetch_s_per_step"
            rest = min(1 / r["steps_per_s"] - r[key] for r in (ram, cache))
            waited = (rest + cache[key]) / (rest + ram[key])
            took = f"{ram['fetch_s_per_step'] * 1e3:.0f} and {cache['fetch_s_per_step'] * 1e3:.0f} ms"
            median = ram.get("median_steps_per_s", math.nan) / cache.get("median_steps_per_s", math.nan)
            lines.append(f"{view}, {how}: cache/ram = {ratio:.2f} (time per step, fastest runs; {median:.2f} from the "
                         f"medians); from the wait "
                         f"times {waited:.2f}: the step waited {ram[key] * 1e3:.0f} ms for features from RAM, "
                         f"{cache[key] * 1e3:.0f} ms from the disk cache (fetching took {took}), the rest "
                         f"{rest:.2f} s  (1.00 = reading the cache is free)")
    first: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r["view"].startswith("random"):
            b = first.setdefault(r["layers"], r)
            if r is not b:
                fl = (context_flops(r["width"], r["tokens_per_text"], n_layers_in=r["layers"])
                      / context_flops(b["width"], b["tokens_per_text"], n_layers_in=b["layers"]))
                lines.append(f"width {r['width']} / {b['width']} ({r['layers']} layer(s)): time per step "
                             f"x{b['steps_per_s'] / r['steps_per_s']:.2f}, FLOPs x{fl:.2f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    from harness.cli.argtypes import positive_int_list

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", default="minilm", help="registry name or FAMILY:PATH (default minilm)")
    p.add_argument("-p", dest="plugin", action="append", default=[], help="extra plugin module (e.g. harness.testing)")
    p.add_argument("--views", default="last,learned", help="extractors to train (default last,learned)")
    p.add_argument("--aggregator", default="context")
    p.add_argument("--preset", default="default")
    p.add_argument("--train-batch-size", type=int, default=16,
                   help="global batch (default 16; 0: the preset's, e.g. 32 for default, 128 for official)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None, help="override the preset's precision")
    p.add_argument("--pairs", type=int, default=64, help="the first N shipped caption pairs (steps = N / batch)")
    p.add_argument("--max-length", type=int, default=64, help="truncate the pairs' texts (tokens)")
    p.add_argument("--batch-size", type=int, default=64, help="encoder batch size")
    p.add_argument("--feature-dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--encoder-dtype", default=None, help="encoder weights dtype (default: the registry's)")
    p.add_argument("--encoder-device", default=None, help="default: cuda when --device cuda, else cpu")
    p.add_argument("--device", default="cpu", help="where the aggregator trains (cpu, cuda)")
    p.add_argument("--repeat", type=int, default=2, help="runs per (view, features); the fastest is kept")
    p.add_argument("--sync", action="store_true", help="also train with the prefetch off (the path before it)")
    p.add_argument("--widths", type=positive_int_list, default=(), help="also train on random features at these widths (comma-separated)")
    p.add_argument("--layers", type=int, default=1, help="--widths: also a stack of this many layers")
    p.add_argument("--tokens", type=int, default=64, help="--widths: tokens per text")
    p.add_argument("--width-steps", type=int, default=4, help="--widths: steps per width")
    p.add_argument("--no-store", action="store_true", help="only the --widths runs (no encoder)")
    p.add_argument("--peak-tflops", type=float, default=None, help="print MFU against this peak")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--data-dir", type=Path, default=REPO / "tasks" / "data")
    p.add_argument("--tmp-dir", default=None, help="where the cold feature cache goes")
    p.add_argument("--host-feed", type=positive_int_list, default=(), help="also time the CUDA feed's host work per batch side at these "
                   "widths (comma-separated; e.g. 2560,4096): before (batch + pin copy) and now (padded)")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    args.train_batch_size = args.train_batch_size or None
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, aggregator on {args.device}, preset "
          f"{args.preset}{', ' + args.precision if args.precision else ''}", flush=True)
    rows: list[dict[str, Any]] = []
    if not args.no_store:
        rows += run_store(args)
    if args.widths:
        rows += run_widths(args)
    for line in report(rows, peak_tflops=args.peak_tflops) if rows else []:
        print(line)
    if args.host_feed:
        for line in host_feed(args.host_feed):
            print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
