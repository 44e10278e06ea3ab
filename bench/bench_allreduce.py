"""Gradient averaging and the embedding all-gather across ranks: the hand-made way against torch's own.

    python bench/bench_allreduce.py                          # 2 CPU ranks (gloo), context aggregator at width 1024
    python bench/bench_allreduce.py --width 2048 --repeat 7 --threads 1
    python bench/bench_allreduce.py --ranks 8 --device cuda  # on an 8-GPU node: cpu:gloo,cuda:nccl, as the harness

Each rank joins the process group through `harness.features.distributed.init_from_env` (gloo
on the CPU; ``cpu:gloo,cuda:nccl`` with ``--device cuda``), builds the same context aggregator
(official shape: 2 blocks, MLP x4, projection to 1024; ``--width`` sets its size: ~24 width^2
parameters) and times one training step (forward of both sides of this rank's ``--batch`` pairs,
the embeddings gathered with gradient, NT-Xent over the global batch, backward, gradients
averaged), median of ``--repeat`` after one warm-up, three ways, interleaved:

  before   the harness's old path, kept here as the baseline: a hand-written autograd all-gather
           (``dist.all_gather`` forward, ``dist.all_reduce`` backward) and, after the backward, every
           gradient concatenated into one flat tensor, all-reduced, divided and copied back
  torch    the harness now: the model wrapped in ``DistributedDataParallel`` (`distributed.data_parallel`:
           bucketed all-reduces overlapped with the backward) and torch's all-gather with autograd
           (`distributed.gather_with_grad`)
  local    the same step with no gradient averaging at all (DDP's ``no_sync``): the floor, so that
           ``step - local`` is the communication the step waits for

It checks that ``before`` and ``torch`` leave the same averaged gradients (max difference
printed) and prints the all-gather alone (forward + backward of ``[batch, 1024]``: the hand-made
one, torch's functional one, and the deprecated ``torch.distributed.nn.functional.all_gather``),
and a raw ``dist.all_reduce`` of the gradients' size with its bus bandwidth 2 (W-1)/W x bytes /
seconds.  Ratios against the baseline measured in the same run; on a shared machine the spread
of the repeats is printed too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any


# ---- the baseline: the harness's gradient averaging and all-gather before torch's own -------------------
def hand_average_gradients(params: list[Any]) -> None:
    """Average ``.grad`` over ranks with one flat all-reduce after the backward (the old harness code)."""
    import torch
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def hand_gather() -> Any:
    """The old harness's autograd all-gather: all_gather forward, all_reduce of the whole gradient backward."""
    import torch
    import torch.distributed as dist

    class GatherWithGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            x = x.contiguous()
            parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, x)
            ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
            return torch.cat(parts)

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            grad = grad.contiguous().clone()
            dist.all_reduce(grad)
            return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]

    return GatherWithGrad.apply


# ---- one rank ---------------------------------------------------------------------------------------
def _timed(fn: Callable[[], None], sync: Callable[[], None]) -> float:
    import torch.distributed as dist

    dist.barrier()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def _rank(rank: int, args: argparse.Namespace, port: int) -> None:
    import torch
    import torch.distributed as dist

    from harness.features import distributed
    from harness_plugins.aggregators.context import ContextModel
    from harness_plugins.aggregators.training import TrainConfig, _Pair, nt_xent

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(args.ranks), RANK=str(rank),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(args.ranks))
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    distributed.init_from_env(cuda=cuda)
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    cfg = TrainConfig(loss="ntxent", center_logits=True)
    torch.manual_seed(0)
    model = ContextModel(args.width, cfg).to(device)
    pair = _Pair(model)
    ddp = distributed.data_parallel(pair)
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    g = torch.Generator().manual_seed(1 + rank)  # each rank its own slice of the global batch
    xa, xb = (torch.randn(args.batch, args.tokens, args.width, generator=g).to(device) for _ in range(2))
    mask = torch.ones(args.batch, args.tokens, dtype=torch.bool, device=device)
    groups = [str(i) for i in range(args.batch * args.ranks)]
    old_gather = hand_gather()

    def step(way: str) -> None:
        for p in params:
            p.grad = None
        if way == "before":
            za, zb = pair(xa, mask, xb, mask)
            loss = nt_xent(old_gather(za), old_gather(zb), groups, cfg)
            loss.backward()
            hand_average_gradients(params)
            return
        gather = distributed.gather_with_grad
        if way == "torch":
            za, zb = ddp(xa, mask, xb, mask)
            nt_xent(gather(za), gather(zb), groups, cfg).backward()
            return
        with ddp.no_sync():  # type: ignore[operator]
            za, zb = ddp(xa, mask, xb, mask)
            nt_xent(gather(za), gather(zb), groups, cfg).backward()

    grads: dict[str, list[Any]] = {}
    times: dict[str, list[float]] = {w: [] for w in ("before", "torch", "local")}
    for i in range(args.repeat + 1):
        for way in times:
            t = _timed(lambda: step(way), sync)
            if i:
                times[way].append(t)
            if i == 0 and way != "local":
                grads[way] = [p.grad.detach().clone() for p in params]
    diff = max(float((a - b).abs().max()) for a, b in zip(grads["before"], grads["torch"], strict=True))

    # the all-gather alone: forward + backward of this rank's [batch, 1024] embeddings
    from torch.distributed import nn as dist_nn

    emb = torch.randn(args.batch, cfg.dim_out, device=device, requires_grad=True)
    weight = torch.randn(args.batch * args.ranks, cfg.dim_out, device=device)
    gathers: dict[str, Callable[[Any], Any]] = {
        "hand-made": old_gather, "torch functional": distributed.gather_with_grad,
        "torch.distributed.nn": lambda x: torch.cat(dist_nn.functional.all_gather(x)),
    }
    gtimes: dict[str, list[float]] = {k: [] for k in gathers}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.distributed.nn.functional is deprecated in 2.14
        for i in range(args.repeat * 4 + 1):
            for name, fn in gathers.items():
                t = _timed(lambda: (fn(emb) * weight).sum().backward(), sync)
                if i:
                    gtimes[name].append(t)

    flat = torch.ones(n_params, device=device)
    raw = []
    for i in range(args.repeat + 1):
        t = _timed(lambda: dist.all_reduce(flat), sync)
        if i:
            raw.append(t)
    if rank == 0:
        _report(args, n_params, times, gtimes, raw, diff, distributed.backend())
    dist.destroy_process_group()


def _report(args: argparse.Namespace, n_params: int, times: dict[str, list[float]], gtimes: dict[str, list[float]],
            raw: list[float], diff: float, backend: str | None) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    mb = n_params * 4 / 1e6
    print(f"{args.ranks} ranks, backend {backend}, {args.device}, {torch_threads()} threads: context aggregator width "
          f"{args.width}, {n_params / 1e6:.1f}M parameters ({mb:.0f} MB of fp32 gradients), {args.batch} pairs of "
          f"{args.tokens} tokens per rank; median of {args.repeat} (min-max)")
    for way, label in (("before", "hand all-gather + flat all-reduce after the backward (before)"),
                       ("torch", "DDP + torch all-gather (now)"), ("local", "no gradient averaging (floor)")):
        v = times[way]
        print(f"  {label:<62} {med[way]:.3f} s/step ({min(v):.3f}-{max(v):.3f})")
    print(f"  now / before = {med['torch'] / med['before']:.2f}; communication the step waits for: before "
          f"{med['before'] - med['local']:.3f} s, now {med['torch'] - med['local']:.3f} s; max |grad difference| "
          f"{diff:.1e}")
    gmed = {k: statistics.median(v) for k, v in gtimes.items()}
    print(f"  all-gather with gradient of [{args.batch}, 1024] (forward + backward, median of "
          f"{len(gtimes['hand-made'])}): "
          + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in gmed.items())
          + f"; torch functional / hand-made = {gmed['torch functional'] / gmed['hand-made']:.2f}")
    s = statistics.median(raw)
    bus = 2 * (args.ranks - 1) / args.ranks * n_params * 4 / s / 1e9
    print(f"  raw all-reduce of {mb:.0f} MB: {s:.3f} s (median of {len(raw)}), bus bandwidth {bus:.2f} GB/s")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main(argv: list[str] | None = None) -> int:
    import random

    import torch.multiprocessing as mp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--width", type=int, default=1024, help="aggregator width (multiple of 16)")
    p.add_argument("--batch", type=int, default=4, help="pairs per rank and step")
    p.add_argument("--tokens", type=int, default=16, help="tokens per text")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args(argv)
    if args.ranks < 2 or args.width % 16 or min(args.batch, args.tokens, args.repeat) < 1:
        print(f"error: need --ranks >= 2, --width a multiple of 16, --batch/--tokens/--repeat >= 1; got {args.ranks}, "
              f"{args.width}, {args.batch}/{args.tokens}/{args.repeat}", file=sys.stderr)
        return 2
    mp.spawn(_rank, args=(args, random.randint(20000, 40000)), nprocs=args.ranks, join=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
