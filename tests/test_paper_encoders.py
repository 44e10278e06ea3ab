"""The encoders of the paper's Tables 3-4 that the registry names: pinned, and loaded by the existing families."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from encoder_fixtures import build_tiny_checkpoint  # noqa: E402

from harness.cli.main import _registry  # noqa: E402
from harness.plugins import get_plugin_manager  # noqa: E402

SHA = re.compile(r"^[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def registry():  # type: ignore[no-untyped-def]
    return _registry(get_plugin_manager(), ())


@pytest.mark.parametrize(("name", "checkpoint"), [("qwen2.5-vl-7b", "Qwen/Qwen2.5-VL-7B-Instruct"),
                                                  ("internvl3.5-8b", "OpenGVLab/InternVL3_5-8B-HF")])
def test_table3_encoders_are_named_and_pinned(registry, name: str, checkpoint: str) -> None:  # type: ignore[no-untyped-def]
    spec = registry.encoder(name)
    assert (spec.family, spec.checkpoint) == ("mllm", checkpoint)
    assert spec.revision and SHA.match(spec.revision), f"{name}: revision must be a commit sha, got {spec.revision!r}"
    assert (spec.options.dtype, spec.options.max_length, spec.options.train_max_length) == ("bfloat16", 2048, 1024)
    assert spec.options.template == "granted-caption"


@pytest.mark.parametrize(("name", "build", "cls", "text_class"), [
    ("qwen2.5-vl-7b", "qwen2.5-vl", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLTextModel"),
    ("internvl3.5-8b", "internvl", "InternVLForConditionalGeneration", "Qwen3Model"),
], ids=["qwen2.5-vl", "internvl3.5"])
def test_entry_loads_the_language_model_with_real_weights(registry, tmp_path: Path, name: str, build: str,  # type: ignore[no-untyped-def]
                                                          cls: str, text_class: str) -> None:
    from harness_plugins.encoders import hf

    folder = build_tiny_checkpoint(build, tmp_path)
    spec = dataclasses.replace(registry.encoder(name), checkpoint=str(folder), revision=None)
    spec = dataclasses.replace(spec, options=dataclasses.replace(spec.options, dtype="float32", template="plain"))
    enc = hf.harness_load_encoder(spec)
    assert enc.info.options["model_class"] == text_class, "the text tower of the full model"
    assert (enc.info.num_layers, enc.info.width, enc.info.include_embedding_default) == (2, 32, False)
    texts = ["A red cup stands left of a bowl.", "Two dogs run."]
    batch = enc.encode(texts)
    full = getattr(transformers, cls).from_pretrained(folder).eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    with torch.inference_mode():
        ref = full.model.language_model(**tok(texts, return_tensors="pt", padding=True), output_hidden_states=True)
    mask = batch.attention_mask.bool()
    for i, (ours, theirs) in enumerate(zip(batch.hidden_states, ref.hidden_states)):
        torch.testing.assert_close(ours[mask], theirs[mask], msg=lambda m: f"layer {i}: {m}")
