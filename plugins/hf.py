"""Built-in encoder families on transformers and open_clip (import name ``harness_plugins.hf``).

Families: ``bert`` (sentence encoders), ``t5`` (T5 / mT5 / UMT5 encoders),
``causal-lm`` (decoder-only LMs), ``mllm`` (the language model of a
vision-language model, text only), ``clip`` (HF CLIP text tower),
``open-clip`` (open_clip text tower), ``altclip`` (AltCLIP text tower) and
``hf`` (any ``AutoModel``).  Each is usable from registry.yaml
(``family: t5``) or ad hoc on the CLI (``t5:/path/to/folder``).

Importing this module does not import torch: the recipes load lazily.
"""

from __future__ import annotations

from harness import Encoder, EncoderSpec, hookimpl

__all__ = ["FAMILY_NAMES", "harness_encoder_families", "harness_load_encoder"]

FAMILY_NAMES = ("bert", "t5", "causal-lm", "mllm", "clip", "open-clip", "altclip", "hf")


@hookimpl
def harness_encoder_families() -> list[str]:
    """The families `harness_load_encoder` below builds."""
    return list(FAMILY_NAMES)


@hookimpl(trylast=True)
def harness_load_encoder(spec: EncoderSpec) -> Encoder | None:
    """Load ``spec`` if its family is one of ours, else None."""
    if spec.family not in FAMILY_NAMES:
        return None
    if spec.family == "open-clip":
        from harness_plugins._hf_openclip import load_open_clip_encoder

        return load_open_clip_encoder(spec)
    from harness_plugins._hf_families import FAMILIES
    from harness_plugins._hf_load import load_hf_encoder

    return load_hf_encoder(spec, FAMILIES[spec.family])
