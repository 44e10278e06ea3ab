"""Example ted-harness plugin: the encoder family ``hash-bow``.

The hook functions stay light (no torch at import); the model lives in `encoder`.  The registry
file names one encoder, ``hash-bow``, so ``harness run --encoders hash-bow`` works after install.
"""

from __future__ import annotations

from pathlib import Path

from harness import Encoder, EncoderSpec, hookimpl

FAMILY = "hash-bow"


@hookimpl
def harness_encoder_families() -> list[str]:
    return [FAMILY]


@hookimpl
def harness_load_encoder(spec: EncoderSpec) -> Encoder | None:
    if spec.family != FAMILY:
        return None  # not ours: another plugin builds it
    from harness_example_hash_encoder.encoder import HashBowEncoder

    return HashBowEncoder(spec)


@hookimpl
def harness_registry_files() -> list[Path]:
    return [Path(__file__).resolve().parent / "registry.yaml"]
