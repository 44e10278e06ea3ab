"""The run context ``harness score`` hands a scorer: the command's plugins and registry, each row's
recorded encoder, and its features through the run's feature cache.

A scorer that builds a generator on a row's features (``toy-t2i``) must read the text exactly as
the TED run did: the same checkpoint, template, truncation and dtype, the same extractor view and
the same cached numbers.  `ScoreContext` is built once per command (`ScoreContext.create`, from
``-p``, ``--registry``, ``--include-path`` and the feature flags) and given to the scorer through its
optional ``bind(context)`` (see `harness.types.Scorer`).  The scorer then asks it for

- `ScoreContext.encoder`: the row's encoder, loaded with the options the run recorded in
  ``results.json`` (``provenance.encoders.<name>``: family, checkpoint -- ad hoc ``FAMILY:PATH``
  included --, revision, ``max_length``, ``template``, ``dtype``, ``device``, ...); a row from a
  bare ``--rows`` list resolves through the registry like ``harness run --encoders`` would;
- `ScoreContext.features`: the row's extractor view of formatted texts, through the feature cache
  the run wrote (its folder and feature dtype, unless ``harness score --cache-dir`` /
  ``--feature-dtype`` / ``--no-cache`` say otherwise), so a caption the run encoded is read back
  bit for bit and a new one is encoded once and cached.

A scorer never rebuilds the plugin manager or registry, and never opens a feature cache itself.
Nothing here imports torch at module level.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness._exceptions import ConfigError, PluginError
from harness.options import FeatureOptions
from harness.types import Encoder, EncoderOptions, EncoderSpec, ScoredRow

if TYPE_CHECKING:
    import pluggy

    from harness.features.extractors import ResolvedExtractor
    from harness.features.store import ProgressFactory
    from harness.registry import Registry

__all__ = ["RecordedEncoder", "RowFeatures", "ScoreContext", "recorded_encoder"]

_OPTION_FIELDS = frozenset(f.name for f in dataclasses.fields(EncoderOptions))


@dataclass(frozen=True)
class RecordedEncoder:
    """What a TED run recorded about a row's encoder (``results.json``, ``provenance.encoders.<name>``)."""

    spec: EncoderSpec  # name, family, checkpoint, revision and every recorded `EncoderOptions` field
    feature_dtype: str | None  # the dtype the run cached features in (None: not recorded)
    cache_root: Path | None  # the feature cache root the run used (None: --no-cache or not recorded)
    extractors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False, compare=False)
    """Extractor name -> the run's resolved extractor (spec fields, ``resolved_layers``, ``view``)."""


def recorded_encoder(row: ScoredRow) -> RecordedEncoder | None:
    """The run's record of ``row``'s encoder, typed; None for a row without one (``--rows`` alone)."""
    prov = row.provenance
    if not prov or not prov.get("family") or not prov.get("checkpoint"):
        return None
    recorded = prov.get("options") or {}
    options = EncoderOptions(**{k: v for k, v in recorded.items() if k in _OPTION_FIELDS})
    rev = prov.get("revision")
    spec = EncoderSpec(name=row.encoder, family=str(prov["family"]), checkpoint=str(prov["checkpoint"]),
                       revision=None if rev is None else str(rev), options=options)
    folder = prov.get("feature_cache")
    extractors = prov.get("extractors") or {}
    return RecordedEncoder(spec=spec, feature_dtype=prov.get("feature_dtype") or None,
                           cache_root=Path(folder).parent if folder else None,
                           extractors={str(k): v for k, v in extractors.items() if isinstance(v, Mapping)})


@dataclass(frozen=True)
class RowFeatures:
    """A row's features of some texts: right-padded float32 ``[B, T, D]`` (``[B, L, T, D]`` for a stack
    view) and the ``[B, T]`` bool mask, as `harness.features.store.FeatureStore.batch` returns them."""

    extractor: ResolvedExtractor
    features: Any
    mask: Any
    dtype: str  # the feature dtype the values went through (cached at)
    cache: str | None  # the cache folder read and written (None: RAM only)


@dataclass(frozen=True)
class ScoreContext:
    """What ``harness score`` hands a scorer (``bind(context)``): built once per command.

    ``feature_options.dtype`` ``"auto"`` means the row's recorded feature dtype (else bfloat16 when the
    encoder runs on CUDA, float32 otherwise); ``feature_options.cache_dir`` None means the cache root the
    row's run used when that folder exists here, else the default cache.  ``device`` (when set)
    replaces every recorded encoder device.  ``encoders`` are encoders already loaded, by row
    encoder name, used as they are (Python callers and tests).  ``tensorboard``: the folder a scorer
    that trains writes its TensorBoard run folders into (`harness.api.open_training_log`; None: off)."""

    pm: pluggy.PluginManager
    registry: Registry
    feature_options: FeatureOptions = field(default_factory=FeatureOptions)
    device: str | None = None
    encoders: Mapping[str, Encoder] = field(default_factory=dict)
    tensorboard: str | None = None
    _loaded: dict[EncoderSpec, Encoder] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def create(cls, pm: pluggy.PluginManager | None = None, *, registry_files: Sequence[str | Path] = (),
               include_paths: Sequence[str | Path] = (), feature_options: FeatureOptions | None = None,
               device: str | None = None, encoders: Mapping[str, Encoder] | None = None) -> ScoreContext:
        """The context ``harness score`` builds: ``pm`` (None: the installed plugins) and the registry
        from its plugins plus ``registry_files`` (``--registry``) and ``include_paths`` (``--include-path``)."""
        from harness.registry import load_plugin_registry

        if pm is None:
            from harness.plugins import get_plugin_manager

            pm = get_plugin_manager()
        registry = load_plugin_registry(pm, registry_files, include_paths=include_paths)
        return cls(pm=pm, registry=registry, feature_options=feature_options or FeatureOptions(), device=device,
                   encoders=dict(encoders or {}))

    def with_encoders(self, encoders: Mapping[str, Encoder]) -> ScoreContext:
        """This context with ``encoders`` (name -> loaded encoder) used as they are."""
        return dataclasses.replace(self, encoders={**self.encoders, **encoders})

    def with_features(self, **changes: Any) -> ScoreContext:
        """This context with some `FeatureOptions` fields changed (e.g. ``no_cache=True``)."""
        return dataclasses.replace(self, feature_options=dataclasses.replace(self.feature_options, **changes))

    # ------------------------------------------------------------------ encoders
    def encoder_spec(self, row: ScoredRow) -> EncoderSpec:
        """The spec ``row``'s encoder is loaded from: the run's record, else the registry (name or
        ``FAMILY:PATH``); ``device`` applied."""
        rec = recorded_encoder(row)
        if rec is not None:
            spec = rec.spec
            if spec.family not in self.registry.families:
                known = ", ".join(sorted(self.registry.families)) or "none"
                raise ConfigError(f"row {row.encoder}/{row.extractor}: the run loaded it with encoder family "
                                  f"{spec.family!r}, which no loaded plugin builds (families: {known}); load its "
                                  "plugin with -p MODULE, as the run did")
        else:
            spec = self.registry.encoder(row.encoder)
        if self.device is not None and spec.options.device != self.device:
            spec = dataclasses.replace(spec, options=dataclasses.replace(spec.options, device=self.device))
        return spec

    def encoder(self, row: ScoredRow) -> Encoder:
        """``row``'s encoder as the run loaded it (see `encoder_spec`); loaded once per spec."""
        if row.encoder in self.encoders:
            return self.encoders[row.encoder]
        spec = self.encoder_spec(row)
        if spec not in self._loaded:
            enc = self.pm.hook.harness_load_encoder(spec=spec)
            if enc is None:
                raise PluginError(f"no plugin's harness_load_encoder built encoder {spec.name!r} "
                                  f"(family {spec.family!r})")
            self._loaded[spec] = enc
        return self._loaded[spec]

    # ------------------------------------------------------------------ features
    def extractor(self, row: ScoredRow, encoder: Encoder | None = None) -> ResolvedExtractor:
        """``row.extractor`` resolved by name through the plugins, with the run's ``--include-embedding``;
        refuses one that would read another view than the run recorded."""
        from harness.features.extractors import parse_extractors, resolve_extractors, with_include_embedding

        enc = encoder if encoder is not None else self.encoder(row)
        spec = parse_extractors(self.pm, [row.extractor])[0]
        rec = recorded_encoder(row)
        done = rec.extractors.get(row.extractor) if rec is not None else None
        if done is not None:
            spec = with_include_embedding(spec, done.get("include_embedding"))
        resolved = resolve_extractors([spec], enc.info)
        if len(resolved) != 1:
            raise ConfigError(f"row {row.encoder}/{row.extractor}: {row.extractor!r} is a sweep of "
                              f"{len(resolved)} layers; name one row per layer (layer:K)")
        res = resolved[0]
        if done is not None and done.get("view") and done["view"] != res.view.key:
            raise ConfigError(f"row {row.encoder}/{row.extractor}: the run read view {done['view']}, "
                              f"but {row.extractor!r} resolves to {res.view.key} here (another extractor plugin?)")
        return res

    def feature_dtype(self, row: ScoredRow, encoder: Encoder | None = None) -> str:
        """The dtype ``row``'s features are cached in: ``feature_options.dtype``, or for ``auto`` the run's."""
        from harness.features.disk_plan import resolve_feature_dtype

        enc = encoder if encoder is not None else self.encoder(row)
        rec = recorded_encoder(row)
        if self.feature_options.dtype == "auto" and rec is not None and rec.feature_dtype:
            return rec.feature_dtype
        return resolve_feature_dtype(self.feature_options.dtype, enc)

    def cache_root(self, row: ScoredRow) -> Path | None:
        """The feature cache root for ``row`` (None: RAM only, ``feature_options.no_cache``)."""
        from harness.features.cache import default_cache_dir

        if self.feature_options.no_cache:
            return None
        if self.feature_options.cache_dir:
            return Path(self.feature_options.cache_dir)
        rec = recorded_encoder(row)
        if rec is not None and rec.cache_root is not None and rec.cache_root.is_dir():
            return rec.cache_root
        return default_cache_dir()

    def features(self, row: ScoredRow, texts: Sequence[str], *,
                     progress: ProgressFactory | None = None) -> RowFeatures:
        """``row``'s extractor view of ``texts`` (already formatted with ``encoder(row).format``), in
        order, through the feature cache: cached texts are read, the rest encoded once and cached."""
        from harness.features.cache import FeatureCache, encoder_fingerprint
        from harness.features.store import FeatureStore

        enc = self.encoder(row)
        res = self.extractor(row, enc)
        dtype = self.feature_dtype(row, enc)
        root = self.cache_root(row)
        cache = None if root is None else FeatureCache(root, encoder_fingerprint(enc.info), dtype=dtype,
                                                       fsync=self.feature_options.fsync)
        try:
            store = FeatureStore(enc, [res.view], batch_size=self.feature_options.batch_size, dtype=dtype, cache=cache)
            store.ensure(texts, progress=progress)
            feats, mask = store.batch(res.view, list(texts))
        finally:
            if cache is not None:
                cache.close()
        return RowFeatures(extractor=res, features=feats, mask=mask, dtype=dtype,
                           cache=None if cache is None else str(cache.dir))
