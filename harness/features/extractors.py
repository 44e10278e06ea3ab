"""Extractor resolution: ``--extract`` names -> specs -> one `ResolvedExtractor` per row.

An `ExtractorSpec` says how to read the layers in the abstract ("norm-avg": every
layer, LayerNorm, mean).  Once the encoder is loaded and its depth known, it is
resolved into absolute layer indices and the `View` the feature store computes;
`ResolvedExtractor` carries all three, so nothing downstream passes a spec and
its view as a pair.  ``all-layers`` sweeps expand here into one ``layer:K`` each.

What "last" means differs by family: decoder LLMs' last entry is after the final
norm; HF CLIP's is *before* the final LayerNorm; T5's is after the final norm.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pluggy

from harness._exceptions import ConfigError, unknown_name
from harness.types import EncoderInfo, ExtractorSpec
from harness.features.views import View

__all__ = [
    "ResolvedExtractor",
    "expand_extractors",
    "parse_extractors",
    "resolve_extractors",
    "resolve_layers",
    "view_for",
    "with_include_embedding",
]


@dataclass(frozen=True)
class ResolvedExtractor:
    """An extractor on one loaded encoder: its spec, absolute layers and the view it reads."""

    spec: ExtractorSpec
    layers: tuple[int, ...]
    view: View

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def n_layers_in(self) -> int:
        """How many layers reach the aggregator (> 1 only for learned weights, which fuse inside it)."""
        return len(self.view.layers) if self.view.op == "stack" else 1

    def as_dict(self) -> dict[str, Any]:
        return {**self.spec.as_dict(), "resolved_layers": list(self.layers), "view": self.view.key}


def parse_extractors(pm: pluggy.PluginManager, names: Sequence[str]) -> list[ExtractorSpec]:
    """``--extract`` names (``NAME[:ARG]``) -> specs, through the ``harness_make_extractor`` hook."""
    out = []
    for raw in names:
        name, _, arg = raw.partition(":")
        spec = pm.hook.harness_make_extractor(name=name, arg=arg or None)
        if spec is None:
            known = [n for names_ in pm.hook.harness_extractor_names() for n in names_]
            raise unknown_name("extractor", raw, known)
        out.append(spec)
    return out


def with_include_embedding(spec: ExtractorSpec, flag: bool | None) -> ExtractorSpec:
    """Apply a run-wide ``--include-embedding`` to specs that did not set it."""
    if flag is None or spec.include_embedding is not None or spec.layers != "all":
        return spec
    return replace(spec, include_embedding=flag)


def resolve_extractors(specs: Iterable[ExtractorSpec], info: EncoderInfo) -> list[ResolvedExtractor]:
    """Expand sweeps and resolve every spec against ``info`` (raises `ConfigError` on a bad layer)."""
    out = []
    for spec in expand_extractors(specs, info):
        out.append(ResolvedExtractor(spec=spec, layers=resolve_layers(spec, info), view=view_for(spec, info)))
    return out


def resolve_layers(spec: ExtractorSpec, info: EncoderInfo) -> tuple[int, ...]:
    """Absolute ``hidden_states`` indices for ``spec`` on an encoder with ``info.num_layers`` layers."""
    n = info.num_layers
    if spec.layers == "all":
        emb = info.include_embedding_default if spec.include_embedding is None else spec.include_embedding
        return tuple(range(0 if emb else 1, n + 1))
    out = []
    for k in spec.layers:
        idx = k if k >= 0 else n + 1 + k
        if not 0 <= idx <= n:
            raise ConfigError(
                f"Extractor {spec.name!r}: layer {k} is out of range for {info.name!r}, "
                f"which has layers 0 (embeddings) to {n} (or -1 to {-(n + 1)})"
            )
        out.append(idx)
    return tuple(out)


def expand_extractors(specs: Iterable[ExtractorSpec], info: EncoderInfo) -> list[ExtractorSpec]:
    """Replace ``all-layers`` sweeps by one ``layer:K`` spec per layer (0..N)."""
    out: list[ExtractorSpec] = []
    for spec in specs:
        if not spec.sweep:
            out.append(spec)
            continue
        emb = info.include_embedding_default if spec.include_embedding is None else spec.include_embedding
        for k in range(0 if emb else 1, info.num_layers + 1):
            out.append(ExtractorSpec(name=f"layer:{k}", layers=(k,), norm=spec.norm))
    return out


def view_for(spec: ExtractorSpec, info: EncoderInfo) -> View:
    """The view ``spec`` needs from each text."""
    layers = resolve_layers(spec, info)
    if spec.fusion == "learned":
        return View("stack", layers, spec.norm)
    if spec.fusion == "mean" and len(layers) > 1:
        return View("mean", layers, spec.norm)
    if len(layers) != 1:
        raise ConfigError(f"Extractor {spec.name!r} selects {len(layers)} layers but fuses none")
    return View("single", layers, spec.norm)
