"""Gloo all-reduce bandwidth: what averaging the aggregator's gradients costs per step under torchrun.

    python bench/bench_allreduce.py                  # 2 ranks on this machine, 400 MB (fp32 grads of ~100M params)
    python bench/bench_allreduce.py --ranks 4 --mb 1600 --device cuda   # CUDA tensors (gloo stages them on the host)

``harness.features.distributed`` joins a gloo process group and `average_gradients` all-reduces
every gradient as one flat float32 tensor per step.  This times that call
(`harness.features.distributed.average_gradients`) on ``--mb`` megabytes, median of ``--repeat``
after one warm-up, and prints the bus bandwidth 2 (W-1)/W x bytes / seconds (the ring
algorithm's traffic) that bench/scale_plan.py takes as ``--gloo-gbps``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _rank(rank: int, args: argparse.Namespace, port: int) -> None:
    import torch
    import torch.distributed as dist

    from harness.features import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    param = torch.nn.Parameter(torch.zeros(args.mb * (1 << 20) // 4, device=args.device))
    param.grad = torch.ones_like(param)
    times = []
    for _ in range(args.repeat + 1):
        dist.barrier()
        t0 = time.perf_counter()
        distributed.average_gradients([param])
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if rank == 0:
        s = statistics.median(times[1:])
        nbytes = param.numel() * 4
        bus = 2 * (args.ranks - 1) / args.ranks * nbytes / s / 1e9
        print(f"{args.ranks} ranks, {nbytes / 1e6:.0f} MB float32 on {args.device}: {s:.3f} s per all-reduce "
              f"(median of {args.repeat}), bus bandwidth {bus:.2f} GB/s")
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    import random

    import torch.multiprocessing as mp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--mb", type=int, default=400)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    mp.spawn(_rank, args=(args, random.randint(20000, 40000)), nprocs=args.ranks, join=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
