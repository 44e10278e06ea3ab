"""``--aggregator-file``: score with a trained head read from a file instead of training one.

The file is ours (a checkpoint `harness train` saved) or the official GRAN-TED trainer's
``epoch_N.pt``; the aggregator plugin reads it (`harness.Aggregator.load`: core never imports
torch) and refuses, in one line, a file whose keys or shapes do not map onto its model.  Core
checks what it can before any model loads (the file is there and readable; one encoder,
extractor and seed, an aggregator that has weights), and records the file's path and sha256 in
the run's training record (``reused``, ``from_file``; no pairs, no steps).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from harness._exceptions import ConfigError
from harness.data.loaders import file_sha256
from harness.evaluation.results import PairsProvenance, TrainingRecord, jsonable
from harness.features.extractors import ResolvedExtractor
from harness.types import Aggregator

__all__ = ["check_aggregator_file", "file_record", "load_aggregator_file"]

_NO_PAIRS = PairsProvenance(source="none: --aggregator-file", sha256="", n=0, n_available=0)


def check_aggregator_file(path: str, *, aggregator: str, trains: bool, n_encoders: int, n_extractors: int,
                          n_seeds: int, unused: Mapping[str, object] | None = None) -> None:
    """Refuse, before any model loads, a run that one head file cannot serve, or a file that is not there.

    ``unused``: training flags given with it (flag -> value, None when not given), which nothing would use."""
    flag = f"--aggregator-file {path!r}"
    given = next((k for k, v in (unused or {}).items() if v is not None and v is not False), None)
    if given is not None:
        raise ConfigError(f"{given} does not apply with {flag}: nothing is trained; drop {given}")
    if not trains:
        raise ConfigError(f"{flag} does not apply: --aggregator {aggregator!r} has no weights to load; use a trained "
                          "aggregator (context, mean-pool-trained) or drop --aggregator-file")
    for n, what, fix in ((n_encoders, "encoders", "--encoders"), (n_extractors, "extractors", "--extract"),
                         (n_seeds, "seeds", "--seeds")):
        if n != 1:
            raise ConfigError(f"{flag} holds one head, for one encoder, extractor and seed; this run has {n} {what}: "
                              f"give one in {fix}")
    if not os.path.isfile(path):
        raise ConfigError(f"{flag} does not exist (a checkpoint `harness train` saved, or the official trainer's "
                          "epoch_N.pt)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ConfigError(f"{flag} cannot be read ({exc.strerror or exc})") from None
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch.save: a zip archive (legacy: a pickle)
        raise ConfigError(f"{flag} is not a torch checkpoint (torch.save writes a zip archive); give a checkpoint "
                          "`harness train` saved, or the official trainer's epoch_N.pt")


def load_aggregator_file(path: str, aggs: Iterable[Aggregator], *, encoder: str) -> None:
    """Load ``path`` into the (one) aggregator of this encoder, before anything is encoded."""
    aggs = list(aggs)
    if len(aggs) != 1:  # e.g. all-layers, which becomes one extractor per layer
        raise ConfigError(f"--aggregator-file {path!r} holds one head, but encoder {encoder!r} gives {len(aggs)} "
                          "extractors here (all-layers?); give one in --extract")
    aggs[0].load(path)


def file_record(path: str, encoder: str, extractor: ResolvedExtractor, agg: Aggregator, seed: int) -> TrainingRecord:
    """The training record of a head loaded from ``path``: where it came from, nothing trained."""
    sha = file_sha256(path)
    return TrainingRecord(
        encoder=encoder, extractor=extractor.name, aggregator=agg.name, seed=seed, key=sha,
        checkpoint=os.path.abspath(path), checkpoint_sha256=sha, config=jsonable(agg.config()),
        layers=list(extractor.view.layers), pairs=_NO_PAIRS, steps=0, seconds=0.0, first_loss=None,
        final_loss=None, losses=[], layer_weights=None, layer_weight_steps=[], layer_weight_trajectory=[],
        reused=True, from_file=True,
    )
