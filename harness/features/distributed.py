"""Multi-process runs under ``torchrun`` (or ``accelerate launch``, which sets the same variables).

    torchrun --nproc_per_node 8 -m harness.cli.main run --encoders qwen3-8b --device cuda ...

Every rank runs the whole pipeline; three places cooperate:

* Encoding (`FeatureStore.ensure` with a feature cache): rank 0's list of missing
  texts is broadcast, rank ``r`` encodes texts ``r, r + W, ...`` and writes its own
  shards into the shared cache directory; after a barrier every rank indexes all
  shards.  The cache directory must be visible to every rank (one node: the
  default is).  Without a cache (``--no-cache``) every rank encodes everything.
* Aggregator training (the trainer of a plugin, e.g. ``harness_plugins.aggregators.context``):
  every global batch is split into ``W`` equal slices (`rank_slice`: the last padded with
  copies of the batch's first row, dropped after the gather); each rank embeds its slice
  through its model wrapped by `data_parallel` (torch's ``DistributedDataParallel``: one
  bucketed gradient all-reduce overlapped with the backward, gradients averaged over ranks),
  and the embeddings are all-gathered *with gradient* (`gather_with_grad`, torch's own
  all-gather, whose backward reduce-scatters the gradient), so every rank computes the loss
  (symmetric InfoNCE or NT-Xent) over the global batch, negatives from all ranks, as the
  official GRAN-TED trainer.  The gather's backward sums the identical losses of ``W`` ranks
  and DDP divides by ``W``: the update is the single-process one on the same global batch
  (to float rounding; dropout > 0 draws different masks per rank).
* Writing: only rank 0 writes aggregator checkpoints and results; rank 0 decides
  whether a checkpoint is reused.

The process group (`init_from_env`) is gloo when the run uses the CPU only, and
``cpu:gloo,cuda:nccl`` when it uses CUDA: CUDA tensors (the aggregator's embeddings and
gradients) go through NCCL, while what travels on the CPU (text lists, decisions, counts,
barriers) stays on gloo.  Each rank uses the GPU ``LOCAL_RANK``; more ranks on a node than
visible GPUs is refused with one line (NCCL cannot put two ranks on one GPU).  torch is
imported inside functions only.
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

__all__ = [
    "agree",
    "all_sum",
    "backend",
    "barrier",
    "broadcast_object",
    "broadcast_parameters",
    "data_parallel",
    "gather_with_grad",
    "global_batch_loss",
    "init_from_env",
    "PairLoss",
    "is_main",
    "rank_slice",
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


def init_from_env(*, cuda: bool | None = None, error: Callable[[str], Exception] = RuntimeError) -> bool:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1).

    Returns True when running with more than one rank.  ``cuda``: whether the run uses CUDA
    (None: whenever a CUDA device is visible, as ``--device`` and the aggregator's ``auto``
    device then pick it).  With CUDA, each rank's device is ``LOCAL_RANK`` (so ``--device
    cuda`` lands on a different GPU per rank) and CUDA tensors go through NCCL; more ranks on
    this node than visible GPUs raises ``error(message)`` (the caller's one-line error type, e.g.
    `harness.ConfigError`) before anything is set up: NCCL cannot share a GPU between ranks.
    Without CUDA the group is gloo.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() if cuda is None else cuda
        if use_cuda:
            _check_gpus_per_node(torch.cuda.device_count(), error)
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        timeout = timedelta(seconds=float(os.environ.get("HARNESS_DIST_TIMEOUT_S", "3600")))
        dist.init_process_group("cpu:gloo,cuda:nccl" if use_cuda else "gloo", timeout=timeout)
        atexit.register(_shutdown)
    return dist.get_world_size() > 1


def _check_gpus_per_node(visible: int, error: Callable[[str], Exception]) -> None:
    """One rank per visible GPU on this node: the refusal every rank reaches the same way."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", str(local_rank + 1)))
    if max(ranks_here, local_rank + 1) > visible:
        raise error(
            f"torchrun started {max(ranks_here, local_rank + 1)} ranks on this node but {visible} CUDA device(s) "
            f"are visible, and each rank needs a GPU of its own: use --nproc_per_node {max(visible, 1)} or fewer, "
            "or hide the GPUs (CUDA_VISIBLE_DEVICES=) to run every rank on the CPU")


def backend() -> str | None:
    """The process group's backend (``gloo``, or ``cpu:gloo,cuda:nccl``); None when running alone."""
    if world()[1] <= 1:
        return None
    import torch.distributed as dist

    return str(dist.get_backend())


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


def rank_slice(batch: Sequence[T]) -> list[T]:
    """This rank's equal share of a global ``batch`` (the same on every rank), for `gather_with_grad`.

    Slice ``r`` is ``batch[r*k:(r+1)*k]`` with ``k = ceil(n / W)``, padded with copies of
    ``batch[0]``: concatenated in rank order, the first ``n`` rows are ``batch`` in order.
    """
    rank, size = world()
    k = -(-len(batch) // size)
    mine = list(batch[rank * k:(rank + 1) * k])
    return mine + [batch[0]] * (k - len(mine))


def global_batch_loss(model: Callable[..., torch.Tensor], batch_fn: Callable[[Sequence[str]], Any],
                      batch: Sequence[Any], loss: PairLoss) -> torch.Tensor:
    """``loss`` over the *global* ``batch`` of pairs (same on every rank), computing only this rank's slice.

    This rank embeds its `rank_slice`; the embeddings of every rank are gathered with
    gradient, so ``loss`` sees the whole batch's embeddings (negatives from every rank).
    Wrap ``model`` in `data_parallel` so that its gradients are averaged over ranks.
    """
    n = len(batch)
    mine = rank_slice(batch)
    za = model(*batch_fn([p.a for p in mine]))
    zb = model(*batch_fn([p.b for p in mine]))
    return loss(gather_with_grad(za)[:n], gather_with_grad(zb)[:n], [p.group for p in batch])


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``[W * B, ...]``: every rank's ``x`` concatenated in rank order; gradients flow back to each rank.

    torch's own all-gather with autograd (NCCL for CUDA tensors, gloo for CPU ones): its backward
    reduce-scatters the gradient, i.e. this rank's rows get the sum over all ranks' losses.  Alone,
    ``x`` as it is.
    """
    if world()[1] <= 1:
        return x
    out: torch.Tensor = _all_gather_autograd()(x.contiguous(), 0, _default_group())
    return out


@functools.cache
def _all_gather_autograd() -> Callable[..., torch.Tensor]:
    """``torch.distributed._functional_collectives``' all-gather with autograd: the replacement torch
    names for the deprecated ``torch.distributed.nn.functional.all_gather`` (same gradient), under the
    name of this torch (``all_gather_single_autograd`` since 2.14, ``all_gather_tensor_autograd`` before)."""
    from torch.distributed import _functional_collectives as fc

    fn = getattr(fc, "all_gather_single_autograd", None) or fc.all_gather_tensor_autograd
    return fn


def _default_group() -> Any:
    import torch.distributed as dist

    return dist.group.WORLD


def data_parallel(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` wrapped in torch's ``DistributedDataParallel`` under torchrun; ``module`` itself alone.

    The wrapper copies rank 0's parameters and buffers to every rank, then averages the
    gradients over ranks during each backward (bucketed all-reduces overlapped with it; NCCL
    on CUDA, gloo on the CPU).  Every trainable parameter must take part in each forward.
    Call the wrapper, not ``module``, for the forward whose backward should be averaged.
    """
    if world()[1] <= 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device = next(module.parameters()).device
    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)
