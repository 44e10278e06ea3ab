"""Load a trained head from a file (``--aggregator-file``): the official GRAN-TED trainer's
``epoch_N.pt`` / ``step_N.pt``, the official head's bare state dict, or one of our own checkpoints.

What the official code saves (zooblastlbz/GRAN-TED, commit 05945aa, ``trainer.py``
``_save_ckpt_final``): ``{"epoch", "step_num", "loss", "model": attn_pool.state_dict(),
"optimizer"}``, the head taken from the unwrapped model (no DDP ``module.`` prefix); its evaluator
loads ``["model"]`` with ``strict=True``.  The head (``models/attention_pooling.py``) is either

* ``AttnPooling`` (``adapter: attn``, bf16): ``pool_token`` ``[1, 1, D]``, ``encoder.{i}.`` blocks
  with bias-free ``q_proj/k_proj/v_proj/o_proj``, ``norm1``, ``norm2``, ``mlp.0``/``mlp.3``, then
  ``out_norm`` and ``proj`` (``D -> dim_out``); 8 heads (never changed by its scripts), RoPE;
  with ``use_rope: false`` it is a torch ``TransformerEncoder`` (``encoder.layers.{i}.self_attn``
  with fused, biased q/k/v), which our bias-free RoPE blocks cannot represent: refused;
* ``MeanPooling`` (fp32): bias-free ``mlp.0``/``mlp.3``, ``out_norm``, ``proj``.  Our head's MLP
  has biases; they are set to zero, which is the official module exactly.

The mapping is strict: every key of the file is used exactly once, every key of ours is filled,
and every shape must agree, else one `ConfigError` naming the file and the first key at fault.
The architecture is read off the shapes (width, blocks, MLP width, ``dim_out``); the width must
be the encoder's, and a ``--dim-out`` given must match.  Heads cannot be read off a ``D x D``
projection: ``--heads`` (default 8, the official value) is used.  The official head holds no
layer weights (its evaluator feeds one layer, or averages LayerNormed layers itself: our
``norm-avg``), so a ``learned`` extractor needs ``--layer-weights-file``.  This module imports torch.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from harness import ConfigError

if TYPE_CHECKING:
    from harness_plugins.aggregators.training import TrainedAggregator

__all__ = ["OFFICIAL_ATTN", "OFFICIAL_MEAN", "load_head", "official_names"]

OFFICIAL_ATTN = "official AttnPooling"
OFFICIAL_MEAN = "official MeanPooling"
_BLOCK_NAMES = {"q_proj.weight": "q.weight", "k_proj.weight": "k.weight", "v_proj.weight": "v.weight",
                "o_proj.weight": "o.weight", "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
                "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias", "mlp.0.weight": "mlp.0.weight",
                "mlp.0.bias": "mlp.0.bias", "mlp.3.weight": "mlp.3.weight", "mlp.3.bias": "mlp.3.bias"}


def official_names(layout: str, blocks: int) -> tuple[dict[str, str], tuple[str, ...]]:
    """The official key -> our key mapping of ``layout``, and our keys that the official module
    lacks because it has no such parameter (filled with zeros)."""
    if layout == OFFICIAL_ATTN:
        names = {"pool_token": "context", "out_norm.weight": "out_norm.weight", "out_norm.bias": "out_norm.bias",
                 "proj.weight": "proj.weight", "proj.bias": "proj.bias"}
        for i in range(blocks):
            names.update({f"encoder.{i}.{theirs}": f"blocks.{i}.{ours}" for theirs, ours in _BLOCK_NAMES.items()})
        return names, ()
    names = {"mlp.0.weight": "mlp.0.weight", "mlp.3.weight": "mlp.3.weight", "out_norm.weight": "norm.weight",
             "out_norm.bias": "norm.bias", "proj.weight": "proj.weight", "proj.bias": "proj.bias"}
    return names, ("mlp.0.bias", "mlp.3.bias")  # the official MLP is nn.Linear(..., bias=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.split(". ")[0]  # torch.load's messages run on for several sentences


def _read(path: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict in ``path`` and, for an official trainer checkpoint, its epoch/step/loss."""
    try:
        with warnings.catch_warnings():  # torch's notes on a legacy pickle: the error below says what matters
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise ConfigError(f"--aggregator-file {path!r} cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # torch.load's many failure types for a file that is not a tensor file
        raise ConfigError(f"--aggregator-file {path!r} cannot be loaded as a torch file ({_first_line(exc)})") from None
    meta: dict[str, Any] = {}
    if isinstance(data, dict) and isinstance(data.get("model"), dict):  # the official trainer's checkpoint
        meta = {k: data[k] for k in ("epoch", "step_num", "loss") if isinstance(data.get(k), (int, float))}
        data = data["model"]
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"--aggregator-file {path!r} holds {type(data).__name__}, neither a state dict nor the "
                          "official trainer's {'model': state_dict, ...} (epoch_N.pt)")
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ConfigError(f"--aggregator-file {path!r}: entry {key!r} is a {type(value).__name__}, not a tensor")
    return data, meta


def _layout(agg: TrainedAggregator, state: dict[str, torch.Tensor], path: str) -> str:
    """Which layout ``state`` is in: ours (``harness``) or the official head of ``agg``'s kind."""
    if "context" in state or any(k.startswith(("blocks.", "norm.", "layer_weights.")) for k in state):
        return "harness"
    attn = "pool_token" in state or any(k.startswith("encoder.") for k in state)
    if any(k.startswith("encoder.layers.") for k in state):
        raise ConfigError(f"--aggregator-file {path!r} holds an official AttnPooling trained with use_rope: false "
                          "(torch TransformerEncoder, fused q/k/v with biases), which our bias-free RoPE blocks "
                          "cannot represent")
    if agg.name == "context" and not attn and "mlp.0.weight" in state:
        raise ConfigError(f"--aggregator-file {path!r} holds the official MeanPooling head (mlp.0.weight, no "
                          "pool_token): load it with --aggregator mean-pool-trained")
    if agg.name == "mean-pool-trained" and attn:
        raise ConfigError(f"--aggregator-file {path!r} holds the official AttnPooling head (pool_token): load it "
                          "with --aggregator context")
    return OFFICIAL_ATTN if agg.name == "context" else OFFICIAL_MEAN


def _shape(state: dict[str, torch.Tensor], key: str, dim: int) -> int | None:
    t = state.get(key)
    return int(t.shape[dim]) if t is not None and t.dim() > max(dim, -dim - 1) else None


def _derive(agg: TrainedAggregator, state: dict[str, torch.Tensor], layout: str, path: str) -> dict[str, Any]:
    """The architecture the official head's shapes imply, checked against the encoder and the user's options."""
    where = f"--aggregator-file {path!r}"
    width_key, hidden_key = (("pool_token", "encoder.0.mlp.0.weight") if layout == OFFICIAL_ATTN
                             else ("mlp.0.weight", "mlp.0.weight"))
    width = _shape(state, width_key, -1)
    if width is not None and width != agg.width:
        raise ConfigError(f"{where}: its head is {width} wide ({width_key} {list(state[width_key].shape)}), but this "
                          f"encoder's features are {agg.width} wide: it was trained on another encoder")
    fields: dict[str, Any] = {}
    dim_out = _shape(state, "proj.weight", 0)
    if dim_out is not None:
        if "dim_out" in agg.options.overrides() and dim_out != agg.cfg.dim_out:
            raise ConfigError(f"{where}: its projection gives dim_out {dim_out} (proj.weight "
                              f"{list(state['proj.weight'].shape)}), but --dim-out {agg.cfg.dim_out} was given; "
                              "drop --dim-out")
        fields["dim_out"] = dim_out
    if layout == OFFICIAL_ATTN:
        found = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.(\d+)\.", k))}
        fields["blocks"] = max(found) + 1 if found else 0
    hidden = _shape(state, hidden_key, 0)
    if hidden is not None:
        ratio = hidden / agg.width
        if int(agg.width * ratio) != hidden:
            raise ConfigError(f"{where}: MLP width {hidden} ({hidden_key}) is not representable as a ratio of "
                              f"width {agg.width}")
        fields["mlp_ratio"] = ratio
    return fields


def _fill(model: nn.Module, state: dict[str, torch.Tensor], names: dict[str, str], zeros: tuple[str, ...],
          kept: tuple[str, ...], path: str) -> None:
    """Load ``state`` (file keys, renamed by ``names``) into ``model``; every key used once, every shape equal."""
    where = f"--aggregator-file {path!r}"
    ours = model.state_dict()
    unexpected = next((k for k in state if k not in names), None)
    if unexpected is not None:
        raise ConfigError(f"{where}: unexpected key {unexpected!r} {list(state[unexpected].shape)} (this layout has "
                          f"{len(names)} keys; a head of another architecture?)")
    missing = next((k for k in names if k not in state), None)
    if missing is not None:
        raise ConfigError(f"{where}: missing key {missing!r} (needed for our {names[missing]!r} "
                          f"{list(ours[names[missing]].shape)})")
    filled = {names[k]: t for k, t in state.items()}
    filled.update({k: torch.zeros_like(ours[k]) for k in zeros})
    filled.update({k: ours[k] for k in kept})
    unfilled = next((k for k in ours if k not in filled), None)
    if unfilled is not None:  # the mapping is incomplete: a bug here, or a model this mapping does not know
        raise ConfigError(f"{where}: nothing in the file fills our {unfilled!r}; this head cannot be represented")
    back = {v: k for k, v in names.items()}
    for key, tensor in filled.items():
        theirs = back.get(key, key)
        if tensor.shape != ours[key].shape:
            raise ConfigError(f"{where}: key {theirs!r} has shape {list(tensor.shape)}, ours ({key!r}) needs "
                              f"{list(ours[key].shape)}")
        if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
            raise ConfigError(f"{where}: key {theirs!r} holds {'non-finite' if tensor.is_floating_point() else tensor.dtype} "
                              "values")
    model.load_state_dict({k: t.detach().to(torch.float32) for k, t in filled.items()}, strict=True)


def load_head(agg: TrainedAggregator, path: str) -> tuple[nn.Module, dict[str, Any]]:
    """The model of ``agg`` with the weights of ``path`` (any layout above), and what to record about it.

    For an official layout ``agg.cfg`` is updated to the architecture read off the shapes."""
    state, meta = _read(path)
    layout = _layout(agg, state, path)
    if layout == "harness":
        model = agg._new_model()
        _fill(model, state, {k: k for k in model.state_dict()}, (), (), path)
        return model, {"layout": layout}
    agg.cfg = replace(agg.cfg, **_derive(agg, state, layout, path))
    model = agg._build()  # fills the layer logits from --layer-weights-file, if one is given
    kept: tuple[str, ...] = ()
    if getattr(model, "layer_weights", None) is not None:
        if agg.cfg.layer_weights_file is None:
            raise ConfigError(f"--aggregator-file {path!r}: the official head holds no layer weights, and this "
                              f"extractor fuses {agg.n_layers_in} layers; give --layer-weights-file (the official "
                              "{'layer_weights': logits} .pt), or use --extract norm-avg (what the official head "
                              "does with all layers: the mean of LayerNormed layers)")
        kept = ("layer_weights.logits",)
    names, zeros = official_names(layout, agg.cfg.blocks)
    _fill(model, state, names, zeros, kept, path)
    return model, {"layout": layout, **{f"official_{k}": v for k, v in meta.items()}}
