"""Tiny random-weight checkpoints for every encoder family, built offline in well under a second.

`build_tiny_checkpoint(family, root)` saves a model folder exactly as a hub
download would look (config.json, model.safetensors, tokenizer files) so the
plugin loads it through the same code path as a real checkpoint.  Tokenizers
are trained with `tokenizers` on a small fixed corpus.  Reusable by any test:

    path = build_tiny_checkpoint("t5", tmp_path)
    cli.main(["run", "--encoders", f"t5:{path}", ...])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import EncoderOptions, EncoderSpec

__all__ = [
    "FAMILY_BUILDS",
    "TEXTS",
    "build_tiny_checkpoint",
    "drop_weight",
    "scale_weight",
    "tiny_spec",
]

TEXTS = (
    "a red cat sits on the mat",
    "two dogs run across a green field while the sun sets",
    "nothing",
)

_WORDS = (
    "a an the one two three red green blue small big old young cat dog bird man woman child car tree house "
    "sits runs jumps walks holds looks eats on under near behind across into while and with of in at to "
    "mat field road sky sun water table chair left right top bottom slowly quickly not no sign reads text "
    "caption type image video nothing sets people"
).split()

_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# family name in build_tiny_checkpoint -> plugin family that loads it
FAMILY_BUILDS = {
    "bert": "bert",
    "t5": "t5",
    "umt5": "t5",
    "causal-lm": "causal-lm",
    "mllm": "mllm",
    "clip": "clip",
    "altclip": "altclip",
    "open-clip": "open-clip",
}


def _corpus() -> list[str]:
    n = len(_WORDS)
    lines = [" ".join(_WORDS[(i * k + 3 * k) % n] for k in range(1, 9)) for i in range(300)]
    lines += ["Caption Type: image\nCaption: " + t for t in TEXTS] + ["Caption Type: video\nCaption: x"] + list(TEXTS)
    return lines


def _fast_tokenizer(kind: str, specials: list[str], *, max_length: int, **tokens: str) -> Any:
    """Train a WordPiece / Unigram / byte-level BPE tokenizer and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer: Any = trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials)
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token=tokens.get("unk_token"))
    else:  # byte-level BPE (GPT-2 / Qwen / CLIP-like)
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
    tok.train_from_iterator(_corpus(), trainer)
    template = tokens.pop("template", None)
    if template:
        used = [t for t in specials if t in template.split()]
        tok.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(t, tok.token_to_id(t)) for t in used]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, **tokens)


def _bert(out: Path) -> None:
    from transformers import BertConfig, BertModel

    tok = _fast_tokenizer(
        "wordpiece", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], max_length=64, template="[CLS] $A [SEP]",
        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
    )
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)


def _t5(out: Path, *, umt5: bool) -> None:
    from transformers import T5Config, T5ForConditionalGeneration, UMT5Config, UMT5ForConditionalGeneration

    tok = _fast_tokenizer("unigram", ["<pad>", "</s>", "<unk>"], max_length=512, template="$A </s>",
                          pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    kw = dict(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=1, num_heads=4,
              pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, feed_forward_proj="gated-gelu")
    model = UMT5ForConditionalGeneration(UMT5Config(**kw)) if umt5 else T5ForConditionalGeneration(T5Config(**kw))
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _qwen_tokenizer(extra: tuple[str, ...] = ()) -> Any:
    tok = _fast_tokenizer("bpe", ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *extra], max_length=4096,
                          pad_token="<|endoftext|>", eos_token="<|im_end|>")
    tok.chat_template = _CHATML
    return tok


def _causal_lm(out: Path) -> None:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = _qwen_tokenizer()
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=False,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    Qwen3ForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)


def _qwen_vl_tokenizer() -> tuple[Any, dict[str, int]]:
    """A Qwen-VL tokenizer with the vision tokens, and their ids as the configs name them."""
    vision = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
    tok = _qwen_tokenizer(vision)
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in zip(
        ("vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id"), vision)}
    return tok, ids


def _mllm(out: Path) -> None:
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    tok, ids = _qwen_vl_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                rope_scaling={"rope_type": "default", "mrope_section": [2, 1, 1], "mrope_interleaved": True})
    vis = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=8,
               spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=16, deepstack_visual_indexes=[0])
    Qwen3VLForConditionalGeneration(Qwen3VLConfig(text_config=text, vision_config=vis, **ids)).save_pretrained(out)
    tok.save_pretrained(out)


def _qwen25_vl(out: Path) -> None:
    """A tiny Qwen2.5-VL (the paper's Table 3 encoder), loaded by plugin family ``mllm``."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok, ids = _qwen_vl_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2,
                rope_scaling={"rope_type": "default", "mrope_section": [1, 1, 2]})
    vis = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=8,
               spatial_merge_size=2, temporal_patch_size=2, window_size=32, fullatt_block_indexes=[0])
    Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config=text, vision_config=vis, **ids)).save_pretrained(out)
    tok.save_pretrained(out)


def _internvl(out: Path) -> None:
    """A tiny transformers-native InternVL3.5 (Qwen3 language model), loaded by plugin family ``mllm``."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    tok = _qwen_tokenizer(("<IMG_CONTEXT>",))
    text = dict(model_type="qwen3", vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    vis = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=[32, 32],
               patch_size=[16, 16])
    cfg = InternVLConfig(text_config=text, vision_config=vis, image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"))
    InternVLForConditionalGeneration(cfg).save_pretrained(out)
    tok.save_pretrained(out)


def _vision_cfg() -> dict[str, Any]:
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                image_size=32, patch_size=16, projection_dim=16)


def _clip(out: Path) -> None:
    from transformers import CLIPConfig, CLIPModel

    tok = _fast_tokenizer("bpe", ["<|startoftext|>", "<|endoftext|>"], max_length=77,
                          template="<|startoftext|> $A <|endoftext|>", bos_token="<|startoftext|>",
                          eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=77, projection_dim=16, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    CLIPModel(CLIPConfig(text_config=text, vision_config=_vision_cfg(), projection_dim=16)).save_pretrained(out)
    tok.save_pretrained(out)


def _altclip(out: Path) -> None:
    from transformers import AltCLIPConfig, AltCLIPModel

    tok = _fast_tokenizer("unigram", ["<s>", "<pad>", "</s>", "<unk>"], max_length=77, template="<s> $A </s>",
                          bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                project_dim=16, max_position_embeddings=80, pad_token_id=1)
    AltCLIPModel(AltCLIPConfig(text_config=text, vision_config=_vision_cfg(), projection_dim=16)).save_pretrained(out)
    tok.save_pretrained(out)


def _open_clip(out: Path) -> None:
    import open_clip
    from safetensors.torch import save_file

    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}), encoding="utf-8")
    model = open_clip.create_model(f"local-dir:{out}", load_weights=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "open_clip_model.safetensors"))


def build_tiny_checkpoint(family: str, root: Path) -> Path:
    """Save a tiny random checkpoint for ``family`` under ``root / family`` and return that folder.

    ``family`` is one of `FAMILY_BUILDS` (``umt5`` is loaded by plugin family ``t5``).
    Weights are seeded, so two builds give the same numbers.
    """
    import torch

    builders = {
        "bert": _bert, "t5": lambda p: _t5(p, umt5=False), "umt5": lambda p: _t5(p, umt5=True),
        "causal-lm": _causal_lm, "mllm": _mllm, "qwen2.5-vl": _qwen25_vl, "internvl": _internvl, "clip": _clip, "altclip": _altclip, "open-clip": _open_clip,
    }
    if family not in builders:
        raise ValueError(f"no tiny checkpoint for {family!r}; known: {', '.join(builders)}")
    out = Path(root) / family
    torch.manual_seed(0)
    builders[family](out)
    return out


def tiny_spec(family: str, path: Path | str, **options: Any) -> EncoderSpec:
    """An ad-hoc spec for a tiny checkpoint, as ``FAMILY:PATH`` on the CLI would give, but with
    captions plain (the default is the official caption prefix) so texts compare to direct calls."""
    plugin_family = FAMILY_BUILDS.get(family, family)
    return EncoderSpec(name=f"tiny-{family}", family=plugin_family, checkpoint=str(path),
                       options=EncoderOptions(**{"template": "plain", **options}))


def _weights_file(folder: Path) -> Path:
    for name in ("model.safetensors", "open_clip_model.safetensors"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"no safetensors weights in {folder}")


def drop_weight(folder: Path, key: str) -> None:
    """Delete one tensor from the folder's safetensors file (a checkpoint missing a weight)."""
    from safetensors.torch import load_file, save_file

    path = _weights_file(folder)
    tensors = load_file(str(path))
    del tensors[key]
    save_file(tensors, str(path), metadata={"format": "pt"})


def scale_weight(folder: Path, key: str, factor: float) -> None:
    """Multiply one tensor of the folder's safetensors file by ``factor``."""
    from safetensors.torch import load_file, save_file

    path = _weights_file(folder)
    tensors = load_file(str(path))
    tensors[key] = tensors[key] * factor
    save_file(tensors, str(path), metadata={"format": "pt"})
