"""A small text-to-image diffusion model (diffusers) conditioned on a frozen encoder's features.

The caption's features (one extractor's view, read from a `harness.features.store.FeatureStore`)
go through `TextConditioner` -- for a ``learned`` (stack) view, softmax layer weights ω over the
normalised layers first -- and a linear projection into the UNet's cross-attention
(``encoder_hidden_states`` with ``encoder_attention_mask``): the place a text encoder takes in
Lumina or Wan.  `train_generator` is the whole training loop in one flat function.
torch and diffusers are imported here only; import this module lazily.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness import ConfigError
from harness.api import TrainingLog

from harness_plugins.aggregators.training import LayerWeights, fuse_layers

# diffusers ships without usable types: its objects are `Any` here.
_diffusers: Any = importlib.import_module("diffusers")

__all__ = ["LAYER_MODES", "GeneratorConfig", "TextConditioner", "TrainedGenerator", "build_unet",
           "denoising_loss", "sample_images", "train_generator", "write_layer_weights"]

LAYER_MODES = ("two-step", "continuous", "frozen")


@dataclass(frozen=True)
class GeneratorConfig:
    """Size and schedule of the toy generator.  ``n1``: steps the layer weights learn (two-step)."""

    image_size: int = 32
    channels: tuple[int, ...] = (32, 64, 64)
    attention_levels: int = 1  # cross-attention blocks at this many of the coarsest levels
    pooled: bool = False  # also add the masked mean of the projected tokens to the timestep embedding
    caption_norm: bool = False  # RMSNorm (learned scale) on the features before the projection, as Lumina
    cond_drop: float = 0.0  # share of training captions replaced by the empty (zero) condition...
    guidance: float = 1.0  # ...so sampling can use classifier-free guidance at this scale (1: none)
    device: str = "auto"  # auto: cuda when visible (bf16 autocast there), else cpu
    prediction: str = "epsilon"  # what the UNet predicts: epsilon (noise) or sample (the clean image x0)
    beta_schedule: str = "linear"  # diffusers noise schedule: linear or squaredcos_cap_v2 (cosine)
    norm_groups: int = 16
    cross_dim: int = 64
    n_train: int = 1024
    n_heldout: int = 64
    heldout_start: int = -1  # held-out scenes from this index of the seeded list (-1: after the n_train training ones)
    steps: int = 600
    batch: int = 64
    lr: float = 1e-3
    layer_lr: float = 5e-2
    layer_weights: str = "two-step"  # two-step | continuous | frozen (uniform = norm-avg)
    n1: int = 300
    train_timesteps: int = 1000
    sample_steps: int = 20
    eval_batches: int = 4  # fixed (noise, t) draws per held-out image for the denoising loss
    seed: int = 0
    # speed (what the training computes is the same; CUDA only where said)
    channels_last: bool = False  # NHWC UNet weights and inputs: bf16 tensor-core convolutions without transposes
    compile: bool = False  # torch.compile the UNet's training forward (inductor; once per run, fused kernels)
    sync_every: int = 50  # losses and ω are read back to the host every this many steps, not after each one
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


class TextConditioner(nn.Module):
    """Features ``[B, (L,) T, D]`` -> ``[B, T, cross_dim]``; ω = softmax(logits) over L stacked layers."""

    def __init__(self, width: int, cross_dim: int, *, n_layers: int = 1, mode: str = "two-step",
                 init_logits: list[float] | None = None, caption_norm: bool = False) -> None:
        super().__init__()
        if mode not in LAYER_MODES:
            raise ValueError(f"layer weights {mode!r}: use one of {', '.join(LAYER_MODES)}")
        self.n_layers, self.mode = n_layers, mode
        # the same softmax layer weights (paper Eq. 3-4) the learned extractor trains in the aggregators
        self.layer_weights = LayerWeights(n_layers, trainable=n_layers > 1 and mode != "frozen")
        if init_logits is not None:
            with torch.no_grad():
                self.layer_weights.logits.copy_(torch.tensor(init_logits, dtype=torch.float32))
        # Lumina's caption embedder: RMSNorm, then the projection; it takes the features' scale out of
        # the comparison (a raw last layer and a normalised stack differ ~3x in scale).
        self.norm = nn.RMSNorm(width, eps=1e-6) if caption_norm else nn.Identity()
        self.proj = nn.Linear(width, cross_dim)

    @property
    def logits(self) -> nn.Parameter:
        return self.layer_weights.logits

    def weights(self) -> torch.Tensor:
        return self.layer_weights.weights()

    def freeze_weights(self) -> None:
        self.logits.requires_grad_(False)
        self.logits.grad = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(fuse_layers(self.layer_weights, x)))  # type: ignore[no-any-return]


def build_unet(cfg: GeneratorConfig) -> Any:
    n = len(cfg.channels)
    k = max(1, min(cfg.attention_levels, n))  # attention at full resolution dominates CPU time (METHOD.md)
    return _diffusers.UNet2DConditionModel(
        sample_size=cfg.image_size, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=cfg.channels, norm_num_groups=cfg.norm_groups,
        down_block_types=("DownBlock2D",) * (n - k) + ("CrossAttnDownBlock2D",) * k,
        up_block_types=("CrossAttnUpBlock2D",) * k + ("UpBlock2D",) * (n - k),
        cross_attention_dim=cfg.cross_dim, attention_head_dim=8,
        # pooled text, as Imagen and SDXL add it: a global signal every ResNet block sees
        **(dict(class_embed_type="projection", projection_class_embeddings_input_dim=cfg.cross_dim)
           if cfg.pooled else {}))


@dataclass
class TrainedGenerator:
    unet: Any  # diffusers UNet2DConditionModel
    text: TextConditioner
    scheduler: Any  # diffusers DDPMScheduler
    losses: list[float]
    omega: list[list[float]]  # ω after each step (empty without a stack view)
    conditioned: bool = True


def _predict(unet: Any, text: TextConditioner, x: torch.Tensor, t: torch.Tensor, feats: torch.Tensor,
             mask: torch.Tensor, conditioned: bool) -> torch.Tensor:
    """The UNet's ε for noisy ``x`` at ``t``, given the caption features (zeros when not ``conditioned``)."""
    cond = text(feats if conditioned else torch.zeros_like(feats))
    pooled = None
    if unet.config.class_embed_type == "projection":
        keep = mask.to(cond.dtype).unsqueeze(-1)
        pooled = (cond * keep).sum(1) / keep.sum(1).clamp_min(1)
    return unet(x, t, encoder_hidden_states=cond, encoder_attention_mask=mask,  # type: ignore[no-any-return]
                class_labels=pooled).sample


def _target(sched: Any, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """What the UNet is trained to predict under the scheduler's prediction type."""
    if sched.config.prediction_type == "sample":
        return x0
    if sched.config.prediction_type != "epsilon":
        raise ValueError(f"prediction {sched.config.prediction_type!r}: use epsilon or sample")
    return noise


def _device(cfg: GeneratorConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def _autocast(device: torch.device) -> Any:
    """bf16 autocast on CUDA (the weights and optimiser stay fp32); nothing elsewhere."""
    import contextlib

    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def _compiled(unet: Any, cfg: GeneratorConfig) -> Any:
    """The UNet to train with: ``torch.compile``'d under ``cfg.compile``, else itself (same parameters)."""
    if not cfg.compile:
        return unet
    return torch.compile(unet)


def train_generator(cfg: GeneratorConfig, feats: torch.Tensor, mask: torch.Tensor, images: torch.Tensor,
                    *, conditioned: bool = True, init_logits: list[float] | None = None,
                    on_step: Callable[[int], Any] | None = None, log: TrainingLog | None = None) -> TrainedGenerator:
    """Train on ``images`` ``[N, 3, H, W]`` in [-1, 1] with their caption features and masks.

    ``conditioned=False`` zeroes the features (the same model without text: the baseline).  Under
    ``two-step`` the layer logits get their own lr (``layer_lr``) for ``n1`` steps, then freeze.
    ``on_step(step)`` is called after every step (a progress bar); ``log`` gets ``train/loss``,
    ``train/lr``, ``train/steps_per_s`` and, for a stack of layers, ``train/layer_lr`` and ω per layer
    (``alpha/layer_<i>``) for every step, steps counted from 1, written every ``cfg.sync_every`` steps.

    Nothing in a step waits for the device: the loss and ω stay on it and are read back every
    ``sync_every`` steps in one copy, and every host-to-device copy is ``non_blocking`` (a blocking one
    waits for the device).  Every draw (indices, timesteps, dropped captions, noise) comes from one
    seeded CPU generator, so a seed gives the same batches on any device.
    """
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    n_layers = feats.shape[1] if feats.dim() == 4 else 1
    text = TextConditioner(feats.shape[-1], cfg.cross_dim, n_layers=n_layers, mode=cfg.layer_weights,
                           init_logits=init_logits, caption_norm=cfg.caption_norm)
    dev = _device(cfg)
    fmt = torch.channels_last if cfg.channels_last else torch.preserve_format
    unet = build_unet(cfg).to(dev, memory_format=fmt)
    forward = _compiled(unet, cfg)
    sched = _diffusers.DDPMScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule=cfg.beta_schedule,
                                     prediction_type=cfg.prediction)
    text = text.to(dev)
    # the images keep the layout they come in unless channels_last asks (the scorer's are NHWC memory
    # permuted to NCHW: channels_last strides, which the convolutions follow; forcing NCHW changes the floats)
    feats, mask, images = feats.to(dev), mask.to(dev), images.to(dev, memory_format=fmt)
    groups = [{"params": list(unet.parameters()) + list(text.proj.parameters()) + list(text.norm.parameters()),
               "lr": cfg.lr},
              {"params": [text.logits], "lr": cfg.layer_lr, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, fused=True if dev.type == "cuda" else None)  # one kernel per step on CUDA
    losses: list[float] = []
    omega: list[list[float]] = []
    every = max(1, cfg.sync_every)
    loss_buf = torch.zeros(every, device=dev)  # this block's losses and ω, on the device until read back
    omega_buf = torch.zeros(every, n_layers, device=dev)
    shape = (cfg.batch, *images.shape[1:])
    for step in range(cfg.steps):
        if cfg.layer_weights == "two-step" and step == cfg.n1:
            text.freeze_weights()  # the paper's second step: ω stays as learned
        idx = torch.randint(0, images.shape[0], (cfg.batch,), generator=g).to(dev, non_blocking=True)
        x0 = images[idx]
        noise = torch.randn(shape, generator=g).to(dev, non_blocking=True)
        if cfg.channels_last:
            noise = noise.contiguous(memory_format=torch.channels_last)
        t = torch.randint(0, cfg.train_timesteps, (cfg.batch,), generator=g).to(dev, non_blocking=True)
        f = feats[idx]
        if conditioned and cfg.cond_drop > 0:  # drop whole captions to the empty condition
            keep = (torch.rand((cfg.batch,), generator=g) >= cfg.cond_drop).to(dev, non_blocking=True)
            f = f * keep.view(-1, *([1] * (f.dim() - 1))).to(f.dtype)
        opt.zero_grad(set_to_none=True)
        try:
            with _autocast(dev):
                pred = _predict(forward, text, sched.add_noise(x0, noise, t), t, f, mask[idx], conditioned)
            loss = nn.functional.mse_loss(pred.float(), _target(sched, x0, noise))
            torch.autograd.backward(loss)
        except torch._dynamo.exc.TorchDynamoException as exc:  # compiling happens at the first step
            cause = getattr(exc, "inner_exception", None) or exc.__cause__ or exc  # the backend's own error
            said = str(cause).strip()
            why = f"{type(cause).__name__}: {said.splitlines()[0]}" if said else type(cause).__name__
            raise ConfigError(f"toy-t2i: torch.compile of the UNet failed ({why}); rerun with "
                              "-O compile=false") from exc
        opt.step()
        slot = step % every
        loss_buf[slot] = loss.detach()
        if n_layers > 1:
            omega_buf[slot] = text.weights().detach()
        if slot == every - 1 or step == cfg.steps - 1:  # one device sync per block of steps
            first = step - slot
            block = loss_buf[:slot + 1].tolist()
            losses += block
            if n_layers > 1:
                omega += omega_buf[:slot + 1].tolist()
            if log is not None:
                _log_block(log, first + 1, block, omega[first:] if n_layers > 1 else [], opt)
        if on_step is not None:
            on_step(step)
    return TrainedGenerator(unet, text, sched, losses, omega, conditioned)


def _log_block(log: TrainingLog, first: int, losses: list[float], omega: list[list[float]], opt: Any) -> None:
    """Steps ``first``.. of one block to ``log``: the losses (steps/s over the block), lr and ω."""
    log.steps(first, losses)
    for k in range(len(losses)):
        log.scalar("train/lr", opt.param_groups[0]["lr"], first + k)
        if omega:
            log.scalar("train/layer_lr", opt.param_groups[1]["lr"], first + k)
            log.layer_weights(first + k, omega[k])


@torch.no_grad()
def denoising_loss(gen: TrainedGenerator, feats: torch.Tensor, mask: torch.Tensor, images: torch.Tensor,
                   *, draws: int = 4, seed: int = 1) -> float:
    """Mean MSE of the prediction (ε, or x0 for ``prediction="sample"``) on held-out images over
    ``draws`` fixed (noise, t) draws each (the same draws for every row)."""
    g = torch.Generator().manual_seed(seed)
    dev = gen.unet.device
    feats, mask, images = feats.to(dev), mask.to(dev), images.to(dev)
    total = 0.0
    for _ in range(draws):
        noise = torch.randn(images.shape, generator=g).to(dev)
        t = torch.randint(0, gen.scheduler.config.num_train_timesteps, (images.shape[0],), generator=g).to(dev)
        with _autocast(dev):
            pred = _predict(gen.unet, gen.text, gen.scheduler.add_noise(images, noise, t), t, feats, mask,
                            gen.conditioned)
        total += float(nn.functional.mse_loss(pred.float(), _target(gen.scheduler, images, noise)))
    return total / draws


@torch.no_grad()
def sample_images(gen: TrainedGenerator, feats: torch.Tensor, mask: torch.Tensor, *, steps: int = 20,
                  seed: int = 2, guidance: float = 1.0) -> torch.Tensor:
    """DDIM samples for the captions' features: uint8 ``[B, H, W, 3]``.  ``guidance`` > 1:
    classifier-free guidance against the empty (zero) condition (train with ``cond_drop`` > 0)."""
    ddim = _diffusers.DDIMScheduler.from_config(gen.scheduler.config)
    ddim.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    size = gen.unet.config.sample_size
    dev = gen.unet.device
    feats, mask = feats.to(dev), mask.to(dev)
    x = torch.randn((feats.shape[0], 3, size, size), generator=g).to(dev)
    guided = gen.conditioned and guidance != 1.0
    for t in ddim.timesteps:
        tt = t.to(dev).expand(x.shape[0])
        with _autocast(dev):
            eps = _predict(gen.unet, gen.text, x, tt, feats, mask, gen.conditioned).float()
            if guided:
                eps_empty = _predict(gen.unet, gen.text, x, tt, feats, mask, False).float()
                eps = eps_empty + guidance * (eps - eps_empty)
        x = ddim.step(eps, t, x).prev_sample
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def write_layer_weights(gen: TrainedGenerator, out_dir: str | Path, *, layers: list[int], n1: int,
                        mode: str) -> list[Path]:
    """``omega_trajectory.json`` (ω per step) and ``layer_logits.json`` (``{"logits": [...]}``,
    what ``--layer-weights-file`` reads)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    traj, final = out / "omega_trajectory.json", out / "layer_logits.json"
    traj.write_text(json.dumps({"layers": layers, "mode": mode, "n1": n1, "omega": gen.omega}))
    final.write_text(json.dumps({"logits": gen.text.logits.detach().tolist(), "layers": layers}))
    return [traj, final]
