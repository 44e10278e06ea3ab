"""Built-in extractors: how to read an encoder's layers (``--extract``)."""

from __future__ import annotations

from harness import ConfigError, ExtractorSpec, hookimpl
from harness import NormType

NAMES = ("last", "penultimate", "layer:K", "avg", "norm-avg", "learned", "all-layers")


@hookimpl(trylast=True)
def harness_extractor_names() -> list[str]:
    return list(NAMES)


@hookimpl(trylast=True)
def harness_make_extractor(name: str, arg: str | None) -> ExtractorSpec | None:
    """``norm-avg``/``learned``/``all-layers`` take an optional norm: ``norm-avg:rms``."""
    if name == "last":
        return ExtractorSpec(name="last", layers=(-1,))
    if name == "penultimate":
        return ExtractorSpec(name="penultimate", layers=(-2,))
    if name == "layer":
        try:
            k = int(arg or "")
        except ValueError:
            raise ConfigError(f"Extractor 'layer' needs an integer index: layer:K (K may be negative), got {arg!r}") from None
        return ExtractorSpec(name=f"layer:{k}", layers=(k,))
    if name == "avg":
        return ExtractorSpec(name="avg", layers="all", fusion="mean", norm="none")
    norm = _norm(name, arg)
    suffix = "" if arg is None else f":{arg}"
    if name == "norm-avg":
        return ExtractorSpec(name=f"norm-avg{suffix}", layers="all", fusion="mean", norm=norm)
    if name == "learned":
        return ExtractorSpec(name=f"learned{suffix}", layers="all", fusion="learned", norm=norm)
    if name == "all-layers":
        return ExtractorSpec(name=f"all-layers{suffix}", layers="all", norm="none" if arg is None else norm, sweep=True)
    return None


def _norm(name: str, arg: str | None) -> NormType:
    if arg in (None, "ln", "layernorm"):
        return "layernorm"
    if arg == "rms":
        return "rms"
    if arg == "none":
        return "none"
    raise ConfigError(f"Extractor {name!r}: unknown norm {arg!r}; use {name}:ln, {name}:rms or {name}:none")
