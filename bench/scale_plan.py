"""The arithmetic behind docs/scale.md: TED-6K x {UMT5-XXL, Qwen3-VL-8B, Qwen3-VL-32B} on 1 and 8 H200s.

    python bench/scale_plan.py                        # the tables of docs/scale.md (markdown)
    python bench/scale_plan.py --mfu 0.5 --agg-mfu 0.35 --disk-gbps 3,12
    python bench/scale_plan.py --pairs 30000 --epochs 2 --batch 32   # your own pairs, the default preset

Every number is computed here from the assumptions printed with it (model shapes from the
public config.json files, token counts, an H200's dense bf16 rate times an assumed MFU,
disk and NCCL bandwidths), so a reader can change one and redo the tables.  Nothing is
measured here: every time is an estimate; the measured rates are in docs/scale.md ("Measured here").
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

PEAK_TFLOPS = 989.0  # H200 SXM dense bf16, datasheet (KINDS.md measured 769-798 on an 8192^3 product)


@dataclass(frozen=True)
class Model:
    name: str
    layers: int  # transformer layers
    stack: int  # layers in norm-avg / learned (T5: + embedding output; LLM wrappers: without)
    width: int
    attn: int  # heads x head dim (q and o)
    kv: int  # kv heads x head dim (k and v)
    ffn: int  # gated MLP hidden size (3 matrices)
    vocab: int
    total_b: float  # parameters the checkpoint loads (billions): text + embeddings + heads + vision tower

    @property
    def params(self) -> float:
        """Parameters outside the embeddings: the ones every token multiplies through."""
        per_layer = 2 * self.width * self.attn + 2 * self.width * self.kv + 3 * self.width * self.ffn
        return self.layers * per_layer

    def flops_per_token(self, t: float) -> float:
        """Forward: 2 x params + attention scores and values (4 x T x attn per layer)."""
        return 2 * self.params + 4 * t * self.attn * self.layers


MODELS = (
    # google/umt5-xxl: d_model 4096, 24 encoder layers, 64 heads x d_kv 64, d_ff 10240 (gated-gelu), vocab 256384
    Model("UMT5-XXL", 24, 25, 4096, 4096, 4096, 10240, 256384, 5.68),
    # Qwen3-VL-8B text_config: hidden 4096, 36 layers, 32 heads x 128, 8 kv heads, intermediate 12288, vocab 151936
    Model("Qwen3-VL-8B", 36, 36, 4096, 4096, 1024, 12288, 151936, 8.77),
    # Qwen3-VL-32B text_config: hidden 5120, 64 layers, 64 heads x 128, 8 kv heads, intermediate 25600
    Model("Qwen3-VL-32B", 64, 64, 5120, 8192, 1024, 25600, 151936, 33.4),
)


def agg_flops(width: int, t: float, n_layers_in: int = 1) -> float:
    """Context aggregator forward FLOPs per text (bench_train.context_flops, official shape)."""
    tt = t + 1
    per_block = 2 * tt * 12 * width**2 + 4 * tt * tt * width
    return 2 * per_block + 2 * width * 1024 + (2 * n_layers_in * t * width if n_layers_in > 1 else 0)


def agg_params(width: int) -> float:
    return 2 * (12 * width**2 + 13 * width) + width * 1024 + width


def fmt_s(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def fmt_b(b: float) -> str:
    for unit, k in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if b >= k:
            return f"{b / k:.1f} {unit}" if b < 100 * k else f"{b / k:.0f} {unit}"
    return f"{b:.0f} B"


def tables(a: argparse.Namespace) -> list[str]:
    rate = a.mfu * PEAK_TFLOPS * 1e12
    agg_rate = a.agg_mfu * PEAK_TFLOPS * 1e12
    disk1, disk8 = a.disk_gbps
    cap_t, st_t = a.caption_tokens, a.statement_tokens
    eval_tok = a.captions * cap_t + a.statements * st_t
    pair_texts = 2 * a.pairs * a.epochs
    pair_tok = pair_texts * a.pair_tokens
    steps = a.pairs * a.epochs // a.batch
    out = [
        "**Assumptions** (change them with `python bench/scale_plan.py --help`):",
        "",
        f"- TED-6K: {a.captions:,} captions x {cap_t} tokens + {a.statements:,} statements x {st_t} tokens = "
        f"**{eval_tok / 1e6:.3f}M tokens**",
        f"- training pairs: {a.pairs:,} pairs x 2 captions x {a.pair_tokens} tokens x {a.epochs} epoch(s) = "
        f"**{pair_tok / 1e6:.0f}M tokens**; global batch {a.batch} -> **{steps:,} steps**",
        f"- H200 dense bf16 {PEAK_TFLOPS:.0f} TFLOP/s; encoder forward at {a.mfu:.0%} MFU = {rate / 1e12:.0f} TFLOP/s; "
        f"aggregator training (bf16 autocast) at {a.agg_mfu:.0%} = {agg_rate / 1e12:.0f} TFLOP/s",
        f"- disk write/read {disk1:g} GB/s on 1 GPU (one NVMe), {disk8:g} GB/s shared by 8 GPUs (the node's "
        f"NVMe RAID); checkpoint read {a.load_gbps:g} GB/s; gradient all-reduce over NCCL (NVLink) at a bus "
        f"bandwidth of {a.nccl_gbps:g} GB/s, counted in full (DDP overlaps it with the backward)",
        "- features stored in bf16 (2 bytes); a view's bytes per token = layers in the view x width x 2",
        "",
        "**Models** (forward FLOPs per token = 2 x parameters outside the embeddings + 4 x T x attention "
        "width x layers):",
        "",
        "| model | layers (stack) | width | params outside embeddings | FLOPs/token at T=250 | at T=20 | "
        "bytes/token: one layer | stack | checkpoint (bf16) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in MODELS:
        out.append(f"| {m.name} | {m.layers} ({m.stack}) | {m.width} | {m.params / 1e9:.2f}B | "
                   f"{m.flops_per_token(250) / 1e9:.2f} G | {m.flops_per_token(20) / 1e9:.2f} G | "
                   f"{m.width * 2:,} B | {m.stack * m.width * 2 / 1e3:.0f} kB | {m.total_b * 2:.0f} GB |")
    out += ["", "**Encode TED-6K** (one forward per unique text computes every view; single/mean views cached "
            "in bf16):", "",
            "| model | FLOPs | forward 1 GPU | 8 GPUs | load weights | disk, last + norm-avg | "
            "disk, learned stack | stack write 1 GPU | 8 GPUs |",
            "|---|---|---|---|---|---|---|---|---|"]
    enc: dict[str, float] = {}
    for m in MODELS:
        fl = a.captions * cap_t * m.flops_per_token(cap_t) + a.statements * st_t * m.flops_per_token(st_t)
        t1 = fl / rate
        enc[m.name] = t1
        single = 2 * eval_tok * m.width * 2
        stack = eval_tok * m.stack * m.width * 2
        out.append(f"| {m.name} | {fl / 1e15:.1f} PFLOP | {fmt_s(t1)} | {fmt_s(t1 / 8)} | "
                   f"{fmt_s(m.total_b * 2e9 / (a.load_gbps * 1e9))} | {fmt_b(single)} | {fmt_b(stack)} | "
                   f"{fmt_s(stack / (disk1 * 1e9))} | {fmt_s(stack / (disk8 * 1e9))} |")
    out += ["", "**Train one extractor on the pairs** (encode the pairs once; the aggregator at the encoder's "
            "width, official shape: 2 blocks, MLP x4, projection to 1024):", "",
            "| model | encode pairs 1 GPU | 8 GPUs | disk per cached view | aggregator params | "
            "aggregator FLOPs | train 1 GPU | 8 GPUs: compute | + NCCL gradient all-reduce |",
            "|---|---|---|---|---|---|---|---|---|"]
    for m in MODELS:
        enc_p = pair_tok * m.flops_per_token(a.pair_tokens) / rate
        disk = pair_tok * m.width * 2
        afl = 3 * pair_texts * agg_flops(m.width, a.pair_tokens)
        t1 = afl / agg_rate
        grad_bytes = 4 * agg_params(m.width)
        ring = 2 * 7 / 8 * grad_bytes / (a.nccl_gbps * 1e9)
        out.append(f"| {m.name} | {fmt_s(enc_p)} | {fmt_s(enc_p / 8)} | {fmt_b(disk)} | "
                   f"{agg_params(m.width) / 1e6:.0f}M | {afl / 1e18:.2f} EFLOP | {fmt_s(t1)} | {fmt_s(t1 / 8)} | "
                   f"{fmt_s(steps * ring)} ({ring * 1e3:.0f} ms/step) |")
    out += ["", "**Evaluate** (embed every TED-6K text with the trained aggregator; forward only):", "",
            "| model | aggregator FLOPs | 1 GPU | read `last` from the cache | learned: re-encode, 1 GPU | "
            "8 GPUs |",
            "|---|---|---|---|---|---|"]
    for m in MODELS:
        texts = a.captions + a.statements
        fl = a.captions * agg_flops(m.width, cap_t) + a.statements * agg_flops(m.width, st_t)
        out.append(f"| {m.name} | {fl / 1e15:.2f} PFLOP | {fmt_s(fl / agg_rate)} | "
                   f"{fmt_s(eval_tok * m.width * 2 / (disk1 * 1e9))} | {fmt_s(enc[m.name])} | "
                   f"{fmt_s(enc[m.name] / 8)} |")
        del texts
    out += plan(a, rate, agg_rate, enc)
    return out


def plan(a: argparse.Namespace, rate: float, agg_rate: float, enc: dict[str, float]) -> list[str]:
    """Totals for --extract last,norm-avg,learned, one seed: single views cached, the stack never."""
    disk1, disk8 = a.disk_gbps
    eval_tok = a.captions * a.caption_tokens + a.statements * a.statement_tokens
    pair_texts = 2 * a.pairs * a.epochs
    pair_tok = pair_texts * a.pair_tokens
    steps = a.pairs * a.epochs // a.batch
    out = ["", "**Plan: `--extract last,norm-avg,learned`, one seed** (last and norm-avg cached in bf16; the "
           "learned stack never cached: its training and its evaluation run the encoder in the loop, one more "
           "pass over the pairs and over TED-6K; 8 GPUs: `torchrun --nproc_per_node 8`, strided encoding, "
           "DDP aggregator, its gradients all-reduced over NCCL; scoring on the CPU, seconds, "
           "not counted):", "",
           "| model | GPUs | load | encode TED-6K | encode pairs (cached) | pairs again (learned) | "
           "3 aggregators | gradient all-reduce | evaluate | total | disk |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in MODELS:
        pairs_enc = pair_tok * m.flops_per_token(a.pair_tokens) / rate
        agg = 3 * 3 * pair_texts * agg_flops(m.width, a.pair_tokens) / agg_rate
        disk = 2 * (eval_tok + pair_tok) * m.width * 2
        eval_agg = 3 * (a.captions * agg_flops(m.width, a.caption_tokens)
                        + a.statements * agg_flops(m.width, a.statement_tokens)) / agg_rate
        nccl = 3 * steps * 2 * 7 / 8 * 4 * agg_params(m.width) / (a.nccl_gbps * 1e9)
        for gpus, disk_bw, comm_name in ((1, disk1, ""), (8, disk8, "NCCL")):
            load = m.total_b * 2e9 / (a.load_gbps * 1e9)
            # cached views are written while the pairs are encoded: the slower of the two
            write = 2 * pair_tok * m.width * 2 / (disk_bw * 1e9)
            enc_p = max(pairs_enc / gpus, write)
            read = 2 * pair_tok * m.width * 2 / (disk_bw * 1e9)  # the two cached views, one epoch
            train = max(agg / gpus, read)
            comm = nccl if comm_name else 0.0
            evaluate = enc[m.name] / gpus + eval_agg  # the learned stack re-encoded; every rank embeds all texts
            total = load + enc[m.name] / gpus + enc_p + pairs_enc / gpus + train + comm + evaluate
            label = f"{gpus}" + (f" ({comm_name})" if comm_name else "")
            out.append(f"| {m.name} | {label} | {fmt_s(load)} | {fmt_s(enc[m.name] / gpus)} | {fmt_s(enc_p)} | "
                       f"{fmt_s(pairs_enc / gpus)} | {fmt_s(train)} | {fmt_s(comm) if comm else '-'} | "
                       f"{fmt_s(evaluate)} | **{fmt_s(total)}** | {fmt_b(disk)} |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--captions", type=int, default=1500)
    p.add_argument("--caption-tokens", type=int, default=250)
    p.add_argument("--statements", type=int, default=26564)
    p.add_argument("--statement-tokens", type=int, default=20)
    p.add_argument("--pairs", type=int, default=500_000, help="official trainer: ~500k pairs (METHOD.md)")
    p.add_argument("--pair-tokens", type=int, default=250, help="tokens per training caption (max length 1024)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=128, help="global batch (official: 16 per GPU x 8)")
    p.add_argument("--mfu", type=float, default=0.40)
    p.add_argument("--agg-mfu", type=float, default=0.30)
    p.add_argument("--disk-gbps", default="3,12", help="1 GPU, 8 GPUs (GB/s)")
    p.add_argument("--load-gbps", type=float, default=2.0)
    p.add_argument("--nccl-gbps", type=float, default=150.0, help="NCCL all-reduce bus bandwidth over NVLink")
    a = p.parse_args(argv)
    a.disk_gbps = tuple(float(x) for x in a.disk_gbps.split(","))
    print("\n".join(tables(a)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
