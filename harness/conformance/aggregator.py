"""Conformance check for aggregators: `check_aggregator`, and the fake features it embeds (`check_features`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness._fake import CHECK_TEXTS, NOT_YOURS, TINY_PAIRS, FakeEncoder
from harness.options import AggregatorOptions
from harness.types import Aggregator, CaptionPair, TrainReport

__all__ = ["CHECK_AGGREGATOR_OPTIONS", "check_aggregator", "check_features"]


CHECK_AGGREGATOR_OPTIONS = AggregatorOptions(epochs=1, batch_size=4, embed_batch_size=2)
_MORE_TEXTS = ("a cat", "the small dog chases a red ball across the yard and back again")


def check_features(width: int, n_layers_in: int = 1) -> Callable[[Sequence[str]], tuple[Any, Any]]:
    """A `harness.types.FeatureBatchFn` from a `FakeEncoder`: right-padded float32 ``[B, T, D]`` features
    (``[B, L, T, D]`` for ``n_layers_in`` > 1) and a bool ``[B, T]`` mask.  Padding holds 1e3, so an
    aggregator that reads it gives different numbers for a text alone and in a batch."""
    import torch

    enc = FakeEncoder("check", num_layers=max(1, n_layers_in), width=width)

    def features(texts: Sequence[str]) -> tuple[Any, Any]:
        batch = enc.encode(list(texts))
        mask = torch.as_tensor(batch.attention_mask).bool()
        if n_layers_in > 1:
            x = torch.stack(list(batch.hidden_states[1: n_layers_in + 1]), dim=1)
            x = x.masked_fill(~mask[:, None, :, None], 1e3)
        else:
            x = batch.hidden_states[-1].masked_fill(~mask[..., None], 1e3)
        return x.float(), mask

    return features


def check_aggregator(
    make: Callable[..., Aggregator | None],
    name: str,
    *,
    trains: bool | None = None,
    width: int = 16,
    n_layers_in: int = 1,
    options: AggregatorOptions = CHECK_AGGREGATOR_OPTIONS,
    texts: Sequence[str] | None = None,
    pairs: Sequence[CaptionPair] | None = None,
) -> int:
    """Assert that ``make(name=..., width=..., n_layers_in=..., options=...)`` gives an aggregator the
    harness can use; returns the width of its embeddings.

    ``make`` is typically the plugin's ``harness_make_aggregator``; ``trains`` what its
    ``harness_aggregator_trains(name)`` says.  Checks that it returns None for a name that is not
    its own (`NOT_YOURS`), that the result satisfies `harness.Aggregator` with a bool ``trainable``
    (equal to ``trains``) and a JSON-serialisable ``config()``; when trainable, that ``fit`` on
    ``pairs`` (default: the 8 tiny pairs) takes >= 1 step with finite losses and returns a
    `harness.TrainReport`, and that ``save`` then ``load`` into a freshly built one gives the same
    embeddings; and that ``embed`` of ``texts`` (`check_features`: fake features, padding filled
    with 1e3) is an ``[N, D]`` array of finite, L2-normalised rows, row ``i`` equal to text ``i``
    embedded alone (so rows keep the order of ``texts`` and padding is masked).
    """
    import json
    import math
    import tempfile

    import numpy as np

    where = f"Aggregator {name!r} (width {width}, n_layers_in {n_layers_in})"

    def build(for_name: str) -> Aggregator | None:
        return make(name=for_name, width=width, n_layers_in=n_layers_in, options=options)

    other = build(NOT_YOURS)
    assert other is None, (
        f"{where}: harness_make_aggregator built a {type(other).__name__} for the name {NOT_YOURS!r}, which is "
        "not its own; return None for names that are not yours (a factory hook that answers every name hides "
        "every other plugin's)"
    )
    agg = build(name)
    assert agg is not None, f"{where}: harness_make_aggregator returned None for its own name"
    assert isinstance(agg, Aggregator), (
        f"{where}: harness_make_aggregator returned a {type(agg).__name__}, which lacks name, trainable, config, "
        "fit, embed, save or load (harness.Aggregator)"
    )
    assert isinstance(agg.trainable, bool), f"{where}: trainable is {agg.trainable!r}, not a bool"
    assert trains is None or trains == agg.trainable, (
        f"{where}: harness_aggregator_trains says {trains}, but the aggregator's trainable is {agg.trainable}"
    )
    config = agg.config()
    assert isinstance(config, dict), f"{where}: config() returned a {type(config).__name__}, not a dict"
    try:
        json.dumps(config)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{where}: config() is not JSON-serialisable ({exc}); it is recorded in results "
                             "and keys the checkpoint") from None
    texts = list(CHECK_TEXTS + _MORE_TEXTS if texts is None else texts)
    assert len(texts) >= 2, "check_aggregator needs at least two texts"
    features = check_features(width, n_layers_in)
    saved: Any = None
    if agg.trainable:
        if pairs is None:
            from harness.data.loaders import load_pairs_file

            pairs = load_pairs_file(TINY_PAIRS)
        steps: list[float] = []
        report = agg.fit(features, list(pairs), seed=0, on_step=lambda step, loss: steps.append(loss))
        assert isinstance(report, TrainReport), f"{where}: fit returned a {type(report).__name__}, not harness.TrainReport"
        losses = list(report.losses) or steps
        assert report.steps >= 1 and losses, (
            f"{where}: fit on {len(pairs)} pairs took no step (report.steps {report.steps}); a trainable "
            "aggregator must train"
        )
        assert all(math.isfinite(v) for v in losses), f"{where}: fit gave non-finite losses {losses[:5]}"
    emb = np.asarray(agg.embed(features, texts))
    assert emb.ndim == 2 and emb.shape[0] == len(texts) and emb.shape[1] >= 1, (
        f"{where}: embed of {len(texts)} texts returned shape {list(emb.shape)}; expected [N, D] = [{len(texts)}, D]"
    )
    assert np.isfinite(emb).all(), f"{where}: embed returned NaN/inf"
    norms = np.linalg.norm(emb, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-3), (
        f"{where}: embed rows must be L2-normalised; their norms are {np.round(norms, 4).tolist()}"
    )
    alone = [np.asarray(agg.embed(features, [t])) for t in texts]  # no other text, so no padding
    assert all(a.shape == (1, emb.shape[1]) for a in alone), (
        f"{where}: embed of one text returned shape {list(alone[0].shape)}; expected [1, {emb.shape[1]}]"
    )
    same = np.isclose(emb[:, None, :], np.concatenate(alone)[None, :, :], atol=1e-4).all(-1)  # row i ~ text j alone
    for i in range(len(texts)):
        if not same[i, i]:
            matches = np.flatnonzero(same[i])
            assert not matches.size, (
                f"{where}: row {i} of embed is the embedding of text {int(matches[0])}, not of text {i}; rows must "
                "follow the order of texts"
            )
            raise AssertionError(
                f"{where}: text {i} embeds differently in a batch with other texts than alone; padding must be "
                "masked (features are right-padded; the mask says which tokens are real)"
            )
    if agg.trainable:
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = str(Path(tmp) / "aggregator.ckpt")
            agg.save(ckpt)
            fresh = build(name)
            assert fresh is not None, f"{where}: harness_make_aggregator returned None for its own name"
            fresh.load(ckpt)
            saved = np.asarray(fresh.embed(features, texts))
        assert saved.shape == emb.shape and np.allclose(saved, emb, atol=1e-5), (
            f"{where}: save, then load into a freshly built aggregator, gives other embeddings; checkpoints "
            "must restore the trained state"
        )
    return int(emb.shape[1])
