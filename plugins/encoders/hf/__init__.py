"""Built-in encoder families on transformers (plugin ``hf``, import name ``harness_plugins.encoders.hf``).

Families: ``bert`` (sentence encoders), ``t5`` (T5 / mT5 / UMT5 encoders),
``causal-lm`` (decoder-only LMs), ``mllm`` (the language model of a
vision-language model, text only), ``clip`` (HF CLIP text tower),
``altclip`` (AltCLIP text tower) and ``hf`` (any ``AutoModel``), one entry
each in `harness_plugins.encoders.hf.families.FAMILIES`.  Each is usable from
registry.yaml (``family: t5``) or ad hoc on the CLI (``t5:/path/to/folder``).

Modules: ``checkpoints`` (where weights come from), ``families`` (the recipes),
``loading`` (`load_hf_encoder`), ``encoder`` (`HFEncoder`).  Importing this
package does not import torch or transformers: the hooks import lazily.
"""

from __future__ import annotations

from typing import Any

from harness import Encoder, EncoderSpec, hookimpl

__all__ = ["harness_encoder_families", "harness_load_encoder", "harness_wrap_model"]


@hookimpl
def harness_encoder_families() -> list[str]:
    """The families `harness_load_encoder` below builds: the keys of the family table."""
    from harness_plugins.encoders.hf.families import FAMILIES

    return list(FAMILIES)


@hookimpl(trylast=True)
def harness_load_encoder(spec: EncoderSpec) -> Encoder | None:
    """Load ``spec`` if its family is one of ours, else None."""
    from harness_plugins.encoders.hf.families import FAMILIES
    from harness_plugins.encoders.hf.loading import load_hf_encoder

    family = FAMILIES.get(spec.family)
    if family is None:
        return None
    return load_hf_encoder(spec, family)


@hookimpl(trylast=True)
def harness_wrap_model(model: Any, tokenizer: Any, spec: EncoderSpec) -> Encoder | None:
    """Wrap an in-memory transformers model (and its tokenizer), or None for any other object."""
    from harness_plugins.encoders.hf.loading import wrap_hf_model

    return wrap_hf_model(model, tokenizer, spec)
