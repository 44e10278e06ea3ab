"""What every trained aggregator here shares: config and presets, layer weights, losses, the loop.

`TrainConfig` holds every hyper-parameter (architecture and training); `PRESETS` name the
useful combinations and `resolve_config` applies the user's `harness.AggregatorOptions`.
`LayerWeights` is the ``learned`` extractor's softmax over zero-initialised layer logits
(paper Eq. 3-4), trained in its own optimiser group (its own lr, no weight decay) because
at the head's lr Adam would move the logits by ~lr per step and α would never leave uniform.
`train` is the whole loop, nanoGPT style; `TrainedAggregator` is the `harness.Aggregator`
that context and trained mean-pool both are.  This module imports torch.
"""

from __future__ import annotations

import functools
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness import AggregatorOptions, CaptionPair, ConfigError, TrainReport
from harness.api import distributed
from harness.api import FeatureBatchFn, StepCallback, TrainingLog

from harness_plugins.aggregators.prefetch import Feed, pair_features

__all__ = [
    "CHECKPOINT_FORMAT",
    "PREFETCH_BATCHES",
    "PRESETS",
    "LayerWeights",
    "TrainConfig",
    "TrainedAggregator",
    "embed_texts",
    "fuse_layers",
    "info_nce",
    "layer_weights_for",
    "nt_xent",
    "read_layer_logits",
    "resolve_config",
    "train",
]

CHECKPOINT_FORMAT = 2  # bump when the state dict layout changes: old checkpoints then never match
TRAJECTORY_POINTS = 1000  # at most this many α snapshots per training run (plus the last)


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of a trained aggregator and its training.  Recorded in results."""

    dim_out: int = 1024
    heads: int = 8
    mlp_ratio: float = 4.0
    blocks: int = 2
    rope: bool = True
    dropout: float = 0.0
    layer_weights: str = "train"  # train | frozen  (learned extractor only)
    layer_weights_file: str | None = None  # logits: JSON list, {"logits": [...]}, or the official .pt
    layer_lr: float = 1e-2  # lr of the layer logits (own AdamW group, no weight decay)
    loss: str = "infonce"  # infonce: B x B symmetric; ntxent: 2B x 2B, same-view items negatives too
    center_logits: bool = False  # subtract each row's max before the clamp (official)
    temperature: float = 0.07
    logit_clamp: float = 15.0
    lr: float = 1e-4
    weight_decay: float = 1e-5
    epochs: int = 2
    batch_size: int = 32  # global batch (all ranks together)
    batching: str = "bucketed"  # bucketed: length-sorted chunks, every pair used; random: drop_last
    precision: str = "fp32"  # fp32 | bf16 (autocast; master weights stay fp32)
    device: str = "auto"  # auto: the GPU when there is one (where the features come from), else CPU
    preset: str = "default"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# "default": measured here to move the aggregator on thousands of pairs (MiniLM norm-avg 0.54 -> 0.63).
# "official": the official GRAN-TED trainer (NT-Xent 2B x 2B, centred and clamped logits, global batch
# 128, bf16, lr 1e-5 x 1 epoch), meant for ~500k pairs.  "paper": its lr and epochs on our loss.
PRESETS: dict[str, TrainConfig] = {
    "default": TrainConfig(),
    "official": TrainConfig(lr=1e-5, epochs=1, batch_size=128, loss="ntxent", center_logits=True,
                            batching="random", precision="bf16", preset="official"),
    "paper": TrainConfig(lr=1e-5, epochs=1, batch_size=32, preset="paper"),
    "baby": TrainConfig(dim_out=32, heads=2, mlp_ratio=2.0, epochs=1, batch_size=8, preset="baby"),
}
_CHOICES = {"loss": ("infonce", "ntxent"), "batching": ("bucketed", "random"), "precision": ("fp32", "bf16"),
            "layer_weights": ("train", "frozen")}


def resolve_config(options: AggregatorOptions) -> TrainConfig:
    """The preset ``options.preset`` with the user's overrides, checked; ``device`` resolved to cuda or cpu."""
    if options.preset not in PRESETS:
        raise ConfigError(f"Unknown aggregator preset {options.preset!r}. Available: {', '.join(PRESETS)}")
    cfg = replace(PRESETS[options.preset], **options.overrides())
    for name, allowed in _CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ConfigError(f"aggregator option {name} {getattr(cfg, name)!r} is not one of {', '.join(allowed)}")
    for name in ("lr", "temperature", "layer_lr"):
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"aggregator option {name} must be > 0, got {getattr(cfg, name)!r}")
    if cfg.batch_size < 2 or cfg.epochs < 1 or cfg.dim_out < 1:
        raise ConfigError(f"aggregator needs batch_size >= 2 (InfoNCE needs a negative), epochs >= 1, dim_out >= 1; "
                          f"got {cfg.batch_size}, {cfg.epochs}, {cfg.dim_out}")
    if cfg.device == "auto":
        cfg = replace(cfg, device="cuda" if torch.cuda.is_available() else "cpu")
    return cfg


def read_layer_logits(path: str, n_layers: int) -> torch.Tensor:
    """Layer logits learned elsewhere: a JSON list, ``{"logits"|"weights": [...]}``, or a ``.pt``
    holding ``{'layer_weights': logits}`` (the official code's format).  Checked against ``n_layers``."""
    try:
        if path.endswith((".pt", ".pth", ".bin")):
            data: Any = torch.load(path, map_location="cpu", weights_only=True)
            data = data.get("layer_weights") if isinstance(data, dict) else data
            logits = data.float().flatten().tolist() if isinstance(data, torch.Tensor) else data
        else:
            data = json.loads(open(path, encoding="utf-8").read())
            logits = data.get("logits", data.get("weights")) if isinstance(data, dict) else data
    except (OSError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--layer-weights-file {path!r} cannot be read: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    if (not isinstance(logits, list) or len(logits) != n_layers
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in logits)):
        raise ConfigError(f"--layer-weights-file {path!r}: expected {n_layers} finite layer logits (one per layer "
                          f"the extractor reads), got {str(logits)[:80]}")
    return torch.tensor(logits, dtype=torch.float32)


class LayerWeights(nn.Module):
    """softmax(logits) over the normalised layers of a ``learned`` extractor; zero logits = Norm-Avg."""

    def __init__(self, n_layers: int, *, trainable: bool) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_layers), requires_grad=trainable)

    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, T, D]`` -> ``[B, T, D]``."""
        if x.shape[1] != self.logits.numel():
            raise ConfigError(f"aggregator expects {self.logits.numel()} layers, got {x.shape[1]}")
        return torch.einsum("l,bltd->btd", self.weights().to(x.dtype), x)


def layer_weights_for(n_layers_in: int, cfg: TrainConfig) -> LayerWeights | None:
    """The softmax layer weights a model needs for ``n_layers_in`` stacked layers (None for one layer)."""
    return LayerWeights(n_layers_in, trainable=cfg.layer_weights == "train") if n_layers_in > 1 else None


def fuse_layers(weights: LayerWeights | None, x: torch.Tensor) -> torch.Tensor:
    """``[B, T, D]`` as it is; ``[B, L, T, D]`` (a learned extractor's layers) fused by ``weights``."""
    if x.dim() != 4:
        return x
    if weights is None:
        raise ConfigError(f"aggregator built for one layer got {x.shape[1]}")
    out: torch.Tensor = weights(x)
    return out


def _logits(sim: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    sim = sim / cfg.temperature
    if cfg.center_logits:  # official: the row max (over real candidates) is subtracted first
        sim = sim - sim.detach().max(dim=1, keepdim=True).values
    return sim.clamp(-cfg.logit_clamp, cfg.logit_clamp)


def _same_group(groups: Sequence[str | None], device: torch.device) -> torch.Tensor:
    return torch.tensor([[g is not None and g == h for h in groups] for g in groups], device=device)


def info_nce(za: torch.Tensor, zb: torch.Tensor, groups: Sequence[str | None], cfg: TrainConfig) -> torch.Tensor:
    """Symmetric InfoNCE over B x B: row i's positive is column i; other items of its group are masked."""
    za, zb = F.normalize(za.float(), dim=-1), F.normalize(zb.float(), dim=-1)
    n = len(groups)
    same = _same_group(groups, za.device) & ~torch.eye(n, dtype=torch.bool, device=za.device)
    sim = (za @ zb.T).masked_fill(same, float("-inf")) if cfg.center_logits else za @ zb.T
    logits = _logits(sim, cfg).masked_fill(same, float("-inf"))
    target = torch.arange(n, device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def nt_xent(za: torch.Tensor, zb: torch.Tensor, groups: Sequence[str | None], cfg: TrainConfig) -> torch.Tensor:
    """NT-Xent over 2B x 2B (the official loss): every other item of either view is a negative,
    self is masked, row i's positive is its other view; other items of its group are masked too."""
    z = F.normalize(torch.cat([za, zb]).float(), dim=-1)
    n = za.shape[0]
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    positive = torch.zeros_like(eye)
    positive[torch.arange(2 * n, device=z.device), target] = True
    masked = eye | (_same_group([*groups, *groups], z.device) & ~positive)
    logits = _logits((z @ z.T).masked_fill(masked, float("-inf")), cfg).masked_fill(masked, float("-inf"))
    return F.cross_entropy(logits, target)


_LOSSES: dict[str, Callable[..., torch.Tensor]] = {"infonce": info_nce, "ntxent": nt_xent}


def _batches(pairs: Sequence[CaptionPair], cfg: TrainConfig, rng: np.random.Generator) -> list[list[int]]:
    """One seeded epoch.  ``bucketed``: shuffle, sort chunks of 32 batches by length, cut, shuffle the
    batches (little padding, every pair used).  ``random``: plain shuffled batches, the last partial dropped."""
    size, order = cfg.batch_size, rng.permutation(len(pairs))
    if cfg.batching == "random":
        return [order[j:j + size].tolist() for j in range(0, len(order) - size + 1, size)]
    chunk = size * 32
    out: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk].tolist(), key=lambda i: len(pairs[i].a) + len(pairs[i].b))
        out.extend(part[j:j + size] for j in range(0, len(part), size))
    return [out[i] for i in rng.permutation(len(out))]


def _batches_per_epoch(n_pairs: int, cfg: TrainConfig) -> int:
    """How many batches `_batches` cuts from ``n_pairs`` pairs (the same for every epoch)."""
    size = cfg.batch_size
    if cfg.batching == "random":
        return n_pairs // size
    chunk = size * 32
    return sum(-(-min(chunk, n_pairs - start) // size) for start in range(0, n_pairs, chunk))


PREFETCH_BATCHES = 2  # batches fetched ahead of the step on a background thread (`prefetch.Feed`); 0: none


class _Pair(nn.Module):
    """Both sides of a batch through ``model`` in one forward (what DistributedDataParallel wraps)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, xa: torch.Tensor, ma: torch.Tensor, xb: torch.Tensor, mb: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(xa, ma), self.model(xb, mb)


def train(model: nn.Module, batch_fn: FeatureBatchFn, pairs: Sequence[CaptionPair], cfg: TrainConfig, *,
          seed: int, on_step: StepCallback | None = None, log: TrainingLog | None = None,
          prefetch: int = PREFETCH_BATCHES) -> TrainReport:
    """Train ``model`` (``forward(x, mask)``; optional ``layer_weights`` submodule) on caption ``pairs``.

    ``batch_fn`` returns features anywhere (the CPU: a cache or RAM); they are moved to the
    model's device here.  ``prefetch`` batches are fetched ahead on a background thread while a
    step computes (`harness_plugins.aggregators.prefetch.Feed`; pinned memory and asynchronous
    copies on CUDA); 0 fetches each in the loop.  Both give the same batches, losses and weights.

    ``log`` gets ``train/lr`` (and ``train/layer_lr``) and ``train/feed_wait_ms`` (the time the step
    waited for its features) per step and α at step 0 and after every step; the loss and steps/s
    go through ``on_step`` (the runner writes them).

    Under ``torchrun`` each rank computes its slice of every batch and the update
    equals the single-process one on the same batch (see `harness.features.distributed`).
    """
    n_ranks = distributed.world()[1]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    fusion: LayerWeights | None = getattr(model, "layer_weights", None)
    fused = [] if fusion is None else [p for p in fusion.parameters() if p.requires_grad]
    rest = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in fused)]
    groups: list[dict[str, Any]] = [{"params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
    if fused:
        groups.append({"params": fused, "lr": cfg.layer_lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups)
    loss_fn = functools.partial(_LOSSES[cfg.loss], cfg=cfg)
    # Each epoch's batches are drawn when the feed reaches it (the same draws, in the same order, as drawing
    # them all first): memory does not grow with the number of epochs.  A contrastive loss needs an in-batch
    # negative, so batches of one pair are skipped.
    steps = (idx for _ in range(cfg.epochs) for idx in _batches(pairs, cfg, rng) if len(idx) >= 2)
    total = cfg.epochs * _batches_per_epoch(len(pairs), cfg)
    stride = max(1, -(-total // TRAJECTORY_POINTS))
    report, t0 = TrainReport(), time.perf_counter()
    if fusion is not None:
        report.trajectory_steps.append(0)
        report.layer_weight_trajectory.append(fusion.weights().tolist())
        if log is not None:
            log.layer_weights(0, report.layer_weight_trajectory[-1])
    net = distributed.data_parallel(_Pair(model))  # alone: the pair itself; under torchrun: DDP
    device_type = "cuda" if cfg.device.startswith("cuda") else "cpu"
    model.train()
    waited = 0.0
    device = next(model.parameters()).device  # features go where the model is
    pinned = device.type == "cuda" and prefetch > 0  # stored-dtype batches padded into pinned memory, widened there
    with Feed(steps, pair_features(batch_fn, pairs, pinned=pinned), device=device, depth=prefetch,
              float32=True) as feed:
        for idx, (xa, ma, xb, mb) in feed:
            batch = [pairs[i] for i in idx]
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                za, zb = net(xa, ma, xb, mb)
                if n_ranks > 1:  # negatives gathered from every rank (the dummy rows of a ragged batch dropped)
                    n = len(batch)
                    za, zb = distributed.gather_with_grad(za)[:n], distributed.gather_with_grad(zb)[:n]
                loss = loss_fn(za, zb, [p.group for p in batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # under torchrun DDP averages the gradients here
            opt.step()
            report.steps += 1
            value = loss.item()
            report.losses.append(value)
            if fusion is not None and (report.steps % stride == 0 or report.steps == total):
                report.trajectory_steps.append(report.steps)
                report.layer_weight_trajectory.append(fusion.weights().tolist())
            if log is not None:
                log.scalar("train/lr", opt.param_groups[0]["lr"], report.steps)
                if fused:
                    log.scalar("train/layer_lr", opt.param_groups[1]["lr"], report.steps)
                log.scalar("train/feed_wait_ms", (feed.wait_s - waited) * 1e3, report.steps)
                if fusion is not None:
                    log.layer_weights(report.steps, fusion.weights().tolist())
            waited = feed.wait_s
            if on_step is not None:
                on_step(report.steps, value)
            if not math.isfinite(value):  # stop here: the runner refuses to score or cache this
                break
    del net  # under torchrun: DDP's hooks go with it
    model.eval()
    report.layer_weights = None if fusion is None else [float(v) for v in fusion.weights().detach()]
    report.seconds = time.perf_counter() - t0
    return report


def embed_texts(fn: Callable[[Any, Any], Any], features: FeatureBatchFn, texts: Sequence[str],
                batch_size: int) -> Any:
    """``fn(x, mask)`` over length-sorted batches without grad; L2-normalised rows in input order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    out: list[Any] = [None] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            x, mask = features([texts[i] for i in idx])
            z = F.normalize(fn(x, mask).float(), dim=-1).cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = z[j]
    return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)


class TrainedAggregator:
    """A `harness.Aggregator` around a model built by ``_new_model`` and trained by `train`.

    Cheap to build: the model is created by `fit` (from a seeded initialisation) or `load`.
    """

    name = "trained"
    trainable = True

    def __init__(self, width: int, n_layers_in: int, options: AggregatorOptions) -> None:
        self.cfg = resolve_config(options)
        self.options = options
        self.width, self.n_layers_in = width, n_layers_in
        self.loaded: dict[str, Any] = {}  # set by `load` of an official file: the layout (and official trainer meta) of the file
        self.embed_batch_size = options.embed_batch_size
        self.prefetch = PREFETCH_BATCHES  # batches fetched ahead while training (0: none); not in the config:
        # it changes how fast, never what is computed
        self.model: nn.Module | None = None
        if self.cfg.layer_weights_file is not None and n_layers_in > 1:  # fail now, not after encoding
            read_layer_logits(self.cfg.layer_weights_file, n_layers_in)

    def _new_model(self) -> nn.Module:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {**self.cfg.as_dict(), "width": self.width, "n_layers_in": self.n_layers_in,
                "checkpoint_format": CHECKPOINT_FORMAT, **({"loaded_file": self.loaded} if self.loaded else {})}

    def _build(self) -> nn.Module:
        model = self._new_model()
        fusion: LayerWeights | None = getattr(model, "layer_weights", None)
        if self.cfg.layer_weights_file is not None and fusion is not None:
            with torch.no_grad():
                fusion.logits.copy_(read_layer_logits(self.cfg.layer_weights_file, self.n_layers_in))
        return model

    def fit(self, features: FeatureBatchFn, pairs: Sequence[CaptionPair], *, seed: int,
            on_step: StepCallback | None = None, log: TrainingLog | None = None) -> TrainReport:
        torch.manual_seed(seed)  # the initialisation depends on the seed too
        self.model = self._build().to(self.cfg.device)
        return train(self.model, features, pairs, self.cfg, seed=seed, on_step=on_step, log=log,
                     prefetch=self.prefetch)

    def _on_device(self, features: FeatureBatchFn) -> FeatureBatchFn:
        device = self.cfg.device
        if device == "cpu":
            return features
        return lambda texts: tuple(t.to(device, non_blocking=True) for t in features(texts))

    def embed(self, features: FeatureBatchFn, texts: Sequence[str]) -> Any:
        if self.model is None:
            raise ConfigError(f"aggregator {self.name!r}: embed() before fit() or load()")
        self.model.to(self.cfg.device).eval()
        return embed_texts(self.model, self._on_device(features), texts, self.embed_batch_size)

    def save(self, path: str) -> None:
        if self.model is None:
            raise ConfigError(f"aggregator {self.name!r}: nothing to save before fit()")
        # Through memory: torch.save names the archive after the file, and the file is a unique
        # temporary name, so saving to it directly would make identical weights differ in bytes.
        buf = io.BytesIO()
        torch.save(self.model.state_dict(), buf)
        with open(path, "wb") as fh:
            fh.write(buf.getbuffer())

    def load(self, path: str) -> None:
        """Our checkpoint (what `save` wrote), or the official trainer's ``epoch_N.pt`` / head state dict
        mapped strictly onto ours (`harness_plugins.aggregators.official`; ``--aggregator-file``)."""
        from harness_plugins.aggregators.official import load_head

        model, loaded = load_head(self, path)
        if loaded["layout"] != "harness":  # recorded in config(); our own checkpoints change nothing there
            self.loaded = loaded
        self.model = model.eval()
