"""Multi-process runs under ``torchrun`` (or ``accelerate launch``, which sets the same variables).

    torchrun --nproc_per_node 8 -m harness.cli.main run --encoders qwen3-8b --device cuda ...

Every rank runs the whole pipeline; three places cooperate:

* Encoding (`FeatureStore.ensure` with a feature cache): rank 0's list of missing
  texts is broadcast, rank ``r`` encodes texts ``r, r + W, ...`` and writes its own
  shards into the shared cache directory; after a barrier every rank indexes all
  shards.  The cache directory must be visible to every rank (one node: the
  default is).  Without a cache (``--no-cache``) every rank encodes everything.
* Aggregator training (the trainer of a plugin, e.g. ``harness_plugins.aggregators.context``,
  calls `global_batch_loss` with its loss function): every global batch is
  split into ``W`` equal slices (the last padded with a dummy row, dropped after
  the gather); embeddings are all-gathered *with gradient*, each rank computes the
  loss (symmetric InfoNCE for the context aggregator) over the global batch
  (negatives from all ranks, as the
  official GRAN-TED trainer), and gradients are averaged across ranks.  The
  gather's backward sums the identical losses of ``W`` ranks, so averaging gives
  exactly the single-process gradient of the same global batch.  (Dropout > 0
  draws different masks per rank, so only dropout 0 matches bit for bit.)
* Writing: only rank 0 writes aggregator checkpoints and results; rank 0 decides
  whether a checkpoint is reused.

The process group uses gloo: features travel through the disk cache, and what is
exchanged here (text lists, embeddings and gradients of the small aggregator,
which trains on CPU) is small.  torch is imported inside functions only.
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

__all__ = [
    "agree",
    "all_sum",
    "average_gradients",
    "barrier",
    "broadcast_object",
    "broadcast_parameters",
    "gather_with_grad",
    "global_batch_loss",
    "init_from_env",
    "PairLoss",
    "is_main",
    "world",
]

T = TypeVar("T")


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` unless a process group is initialised."""
    if "torch" not in sys.modules:  # never import torch just to learn we are alone
        return 0, 1
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """True on rank 0 (and in single-process runs): the rank that writes files."""
    return world()[0] == 0


def init_from_env() -> bool:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1).

    Returns True when running with more than one rank.  Each rank's CUDA device is
    ``LOCAL_RANK``, so ``--device cuda`` lands on a different GPU per rank.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        timeout = timedelta(seconds=float(os.environ.get("HARNESS_DIST_TIMEOUT_S", "3600")))
        dist.init_process_group("gloo", timeout=timeout)
        atexit.register(_shutdown)
    return dist.get_world_size() > 1


def _shutdown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world()[1] > 1:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (picklable objects)."""
    if world()[1] <= 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(flag: bool) -> bool:
    """Rank 0's decision, so that all ranks take the same branch around collectives."""
    return bool(broadcast_object(flag))


def all_sum(n: int) -> int:
    """Sum of ``n`` over ranks."""
    if world()[1] <= 1:
        return n
    import torch
    import torch.distributed as dist

    t = torch.tensor([n], dtype=torch.int64)
    dist.all_reduce(t)
    return int(t.item())


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (same start everywhere)."""
    import torch
    import torch.distributed as dist

    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)


PairLoss = Callable[["torch.Tensor", "torch.Tensor", Sequence[Any]], "torch.Tensor"]
"""(embeddings of the a sides ``[n, D]``, of the b sides ``[n, D]``, groups) -> scalar loss."""


def global_batch_loss(model: Callable[..., torch.Tensor], batch_fn: Callable[[Sequence[str]], Any],
                      batch: Sequence[Any], loss: PairLoss) -> torch.Tensor:
    """``loss`` over the *global* ``batch`` (same on every rank), computing only this rank's slice.

    Slices are equal-sized for the gather: slice ``r`` is ``batch[r*k:(r+1)*k]`` with
    ``k = ceil(n / W)``, padded with copies of ``batch[0]``.  Concatenated in rank order
    the first ``n`` rows are exactly ``batch``'s rows in order, so ``loss`` sees the
    whole batch's embeddings (negatives from every rank).
    """
    rank, size = world()
    n = len(batch)
    k = -(-n // size)
    mine = list(batch[rank * k:(rank + 1) * k])
    mine += [batch[0]] * (k - len(mine))
    za = model(*batch_fn([p.a for p in mine]))
    zb = model(*batch_fn([p.b for p in mine]))
    za_all = gather_with_grad(za)[:n]
    zb_all = gather_with_grad(zb)[:n]
    return loss(za_all, zb_all, [p.group for p in batch])


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``[W * B, ...]``: every rank's ``x`` concatenated in rank order; gradients flow back to each rank.

    Same contract as ``torch.distributed.nn.functional.all_gather`` (deprecated in
    torch 2.14; its gloo backward needs scatter rounds): the backward sums the
    gradient of all ranks' losses for this rank's rows, here with one all-reduce.
    """
    return _gather_fn().apply(x)  # type: ignore[no-any-return]


@functools.cache
def _gather_fn() -> Any:  # built on first use: importing this module never imports torch
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

    return GatherWithGrad


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over ranks with one all-reduce (parameters without a grad are skipped)."""
    import torch
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world()[1]
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
