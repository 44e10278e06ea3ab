"""Conformance check for encoder plugins: `check_encoder`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from harness._fake import CHECK_TEXTS
from harness.types import EncodedBatch, Encoder, EncoderInfo, EncoderSpec

__all__ = ["check_encoder"]


def check_encoder(
    load: Callable[[EncoderSpec], Encoder | None],
    spec: EncoderSpec,
    *,
    texts: Sequence[str] | None = None,
) -> None:
    """Assert that ``load(spec)`` gives an encoder the harness can use; AssertionError says what is wrong.

    Checks, on ``texts`` (default `CHECK_TEXTS`): ``format`` returns a str for both
    roles and applies ``options.template``; ``encode`` returns ``num_layers + 1``
    hidden states, each ``[B, T, info.width]``, with a ``[B, T]`` 0/1 mask holding
    >= 1 real token per text and finite values on real tokens; ``up_to_layer=k``
    (k = 0, 1, N-1) repeats the full run's first k+1 hidden states; ``max_length``
    caps the real tokens; and changing ``max_length``, ``template`` or ``dtype``
    changes `harness.features.cache.encoder_fingerprint` (so cached features are not reused).
    ``load`` is called four times (spec, then three changed options); it is
    typically the plugin's ``harness_load_encoder``.
    """
    texts = tuple(CHECK_TEXTS if texts is None else texts)
    assert texts, "check_encoder needs at least one text"
    enc = _load(load, spec)
    where = f"Encoder {spec.name!r} (family {spec.family!r})"
    for role in ("caption", "statement"):
        out = enc.format(texts[0], role=role, caption_type="image")
        assert isinstance(out, str), f"{where}: format(role={role!r}) returned {type(out).__name__}, not str"
    formatted = [enc.format(t) for t in texts]
    full = _check_batch(enc.info, enc.encode(formatted), formatted, where=where)
    n = enc.info.num_layers
    for k in sorted({0, 1, n - 1} & set(range(n))):
        _check_up_to(enc, formatted, full, k=k, where=where)
    _check_options(load, spec, enc.info, texts=texts, where=where)


def _load(load: Callable[[EncoderSpec], Encoder | None], spec: EncoderSpec) -> Encoder:
    enc = load(spec)
    where = f"Encoder {spec.name!r} (family {spec.family!r})"
    assert enc is not None, f"{where}: load returned None (the plugin does not claim family {spec.family!r})"
    assert isinstance(enc, Encoder), (
        f"{where}: load returned a {type(enc).__name__}, which lacks info, format or encode (harness.types.Encoder)"
    )
    info = enc.info
    assert isinstance(info, EncoderInfo), f"{where}: info is a {type(info).__name__}, not harness.EncoderInfo"
    assert info.num_layers >= 1 and info.width >= 1, (
        f"{where}: info.num_layers {info.num_layers!r} and info.width {info.width!r} must both be >= 1"
    )
    return enc


def _check_batch(info: EncoderInfo, batch: EncodedBatch, texts: Sequence[str], *, where: str) -> tuple[Any, list[Any]]:
    """Check shapes, mask and finiteness; return (bool mask, float32 CPU hidden states)."""
    import torch

    hs = list(batch.hidden_states)
    assert len(hs) == info.num_layers + 1, (
        f"{where}: encode returned {len(hs)} hidden states; expected info.num_layers + 1 = {info.num_layers + 1} "
        "(the embedding output, then one per layer)"
    )
    mask = torch.as_tensor(batch.attention_mask).detach().cpu()
    assert mask.ndim == 2 and mask.shape[0] == len(texts), (
        f"{where}: attention_mask has shape {list(mask.shape)}; expected [B, T] with B = {len(texts)} texts"
    )
    values = {int(v) for v in mask.flatten().tolist()}
    assert values <= {0, 1}, f"{where}: attention_mask holds {sorted(values)}; expected only 0 and 1"
    for row, text in enumerate(texts):
        assert int(mask[row].sum()) >= 1, f"{where}: text {row} ({text!r}) has no real token (mask row all 0)"
    b, t = mask.shape
    keep = mask.bool()
    states = []
    for i, h in enumerate(hs):
        shape = tuple(h.shape)
        assert shape == (b, t, info.width), (
            f"{where}: hidden state {i} has shape {list(shape)}; expected [B, T, info.width] = [{b}, {t}, {info.width}] "
            "(T from attention_mask)"
        )
        h = h.detach().float().cpu()
        assert bool(torch.isfinite(h[keep]).all()), f"{where}: hidden state {i} has NaN/inf on real tokens"
        states.append(h)
    assert isinstance(batch.n_truncated, int) and batch.n_truncated >= 0, (
        f"{where}: n_truncated {batch.n_truncated!r} is not a count >= 0"
    )
    if batch.truncated is not None:
        flags = list(batch.truncated)
        assert len(flags) == b and all(isinstance(f, bool) for f in flags), (
            f"{where}: truncated must be one bool per text ({b}), got {flags!r:.200}"
        )
        assert sum(flags) == batch.n_truncated, (
            f"{where}: truncated flags {sum(flags)} texts but n_truncated is {batch.n_truncated}"
        )
    return keep, states


def _check_up_to(enc: Encoder, texts: Sequence[str], full: tuple[Any, list[Any]], *, k: int, where: str) -> None:
    import torch

    keep, states = full
    part = list(enc.encode(texts, up_to_layer=k).hidden_states)
    assert len(part) >= k + 1, f"{where}: encode(up_to_layer={k}) returned {len(part)} hidden states; expected >= {k + 1}"
    for i in range(k + 1):
        exact = part[i].dtype in (torch.float32, torch.float64)
        h = part[i].detach().float().cpu()
        assert h.shape == states[i].shape, (
            f"{where}: encode(up_to_layer={k}) hidden state {i} has shape {list(h.shape)}; "
            f"the full run's has {list(states[i].shape)}"
        )
        diff = float((h[keep] - states[i][keep]).abs().max())
        rtol, atol = (1e-4, 1e-5) if exact else (2e-2, 2e-2)
        assert torch.allclose(h[keep], states[i][keep], rtol=rtol, atol=atol), (
            f"{where}: encode(up_to_layer={k}) hidden state {i} differs from the full run's on real tokens "
            f"(max abs diff {diff:.3g}); layers 0..{k} must equal those of a full forward"
        )


def _check_options(
    load: Callable[[EncoderSpec], Encoder | None], spec: EncoderSpec, info: EncoderInfo, *,
    texts: Sequence[str], where: str,
) -> None:
    """Reload with a changed max_length, template and dtype: each must be honoured and reach the cache key."""
    from harness.features.cache import encoder_fingerprint

    opts = spec.options
    changes: dict[str, Any] = {
        "max_length": 3 if opts.max_length == 4 else 4,
        "template": "[check_encoder] {text}",
        "dtype": "bfloat16" if opts.dtype == "float32" else "float32",
    }
    before = encoder_fingerprint(info)
    for field, value in changes.items():
        changed = _load(load, dataclasses.replace(spec, options=dataclasses.replace(opts, **{field: value})))
        assert encoder_fingerprint(changed.info) != before, (
            f"{where}: changing options.{field} from {getattr(opts, field)!r} to {value!r} left "
            "harness.features.cache.encoder_fingerprint(info) unchanged, so features cached for the old value would be "
            "reused; record every option in info.options (harness.encoding.make_encoder_info does)"
        )
        if field == "template":
            got, want = changed.format(texts[0]), value.format(text=texts[0])
            assert got == want, f"{where}: with options.template {value!r}, format() gave {got!r}; expected {want!r}"
        if field == "max_length":
            mask = changed.encode([changed.format(t) for t in texts]).attention_mask
            most = int(mask.sum(dim=1).max())
            assert most <= value, (
                f"{where}: with options.max_length {value}, a text kept {most} real tokens; max_length is not honoured"
            )
