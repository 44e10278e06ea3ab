"""harness.encoding: the building blocks every encoder plugin shares (templates, masks, partial forwards)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from harness import ConfigError, EncoderError, EncoderOptions, EncoderSpec
from harness.encoding import (
    GRANTED_CAPTION,
    apply_template,
    check_loading_info,
    check_template,
    format_text,
    make_encoder_info,
    require,
    resolve_dtype,
)


def test_import_leaves_torch_out() -> None:
    code = ("import sys, harness.encoding; "
            "print([m for m in ('torch', 'transformers', 'open_clip') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"importing harness.encoding imported {out}"


# ---------------------------------------------------------------------------------------------
# Templates


@pytest.mark.parametrize(
    ("template", "expected"),
    [("plain", "a cat"), ("granted-caption", "Caption Type: video\nCaption: a cat"), ("<{caption_type}> {text}", "<video> a cat")],
    ids=["plain", "granted-caption", "placeholder"],
)
def test_format_text_applies_the_caption_template(template: str, expected: str) -> None:
    options = EncoderOptions(template=template)
    assert format_text(options, "a cat", role="caption", caption_type="video") == expected
    assert format_text(options, "a cat", role="statement", caption_type="video") == "a cat", "statements stay plain"


def test_format_text_statement_template_and_bad_role() -> None:
    options = EncoderOptions(statement_template="granted-caption")
    assert format_text(options, "a dog", role="statement") == GRANTED_CAPTION.format(caption_type="image", text="a dog")
    with pytest.raises(ConfigError, match=r"role 'query' is not one of caption, statement"):
        format_text(options, "a dog", role="query")


class _ChatTokenizer:
    """Just enough of a transformers tokenizer for the chat template: no BOS added."""

    chat_template = "chatml"
    bos_token = None

    def apply_chat_template(self, messages: list[dict[str, str]], **kw: Any) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages)


def test_chat_template_is_duck_typed() -> None:
    options = EncoderOptions(template="chat", system_prompt="Describe.")
    assert format_text(options, "a cat", tokenizer=_ChatTokenizer()) == "<system>Describe.<user>a cat"
    with pytest.raises(EncoderError, match="chat_template"):
        format_text(options, "a cat")


def test_check_template_refuses_unknown_templates_at_load() -> None:
    spec = EncoderSpec(name="x", family="f", checkpoint="c", options=EncoderOptions(statement_template="nope"))
    with pytest.raises(ConfigError, match=r"statement_template 'nope' is not one of plain, chat, granted-caption"):
        check_template(spec, has_chat_template=True)
    chat = EncoderSpec(name="x", family="f", checkpoint="c", options=EncoderOptions(template="chat"))
    with pytest.raises(EncoderError, match="has no chat_template"):
        check_template(chat, has_chat_template=False)
    with pytest.raises(ConfigError, match="placeholder"):
        apply_template("a", "nope", caption_type="image")


# ---------------------------------------------------------------------------------------------
# Loading helpers


def test_make_encoder_info_records_every_option_plus_extras() -> None:
    spec = EncoderSpec(name="x", family="f", checkpoint="/m", revision="a" * 40,
                       options=EncoderOptions(max_length=7, template="granted-caption"))
    info = make_encoder_info(spec, num_layers=2, width=8, include_embedding_default=False, last_layer_note="n",
                             options_extra={"torch_dtype": "float32"})
    assert info.options == {**spec.options.as_dict(), "torch_dtype": "float32"}
    assert (info.name, info.family, info.checkpoint, info.revision) == ("x", "f", "/m", "a" * 40)
    assert (info.num_layers, info.width, info.include_embedding_default) == (2, 8, False)
    assert make_encoder_info(spec, num_layers=2, width=8, include_embedding_default=True, last_layer_note="n",
                             local=True).revision is None, "a local folder has no hub revision"


def test_check_loading_info_refuses_missing_weights_unless_allowed() -> None:
    spec = EncoderSpec(name="x", family="f", checkpoint="c")
    info = {"missing_keys": ["a.weight", "lm_head.weight"], "unexpected_keys": []}
    with pytest.raises(EncoderError, match=r"1 weight\(s\) missing .*: a.weight\..*allow_missing_weights"):
        check_loading_info(info, spec=spec, model_class="M", ignore=(r"^lm_head\.",))
    allowed = EncoderSpec(name="x", family="f", checkpoint="c", options=EncoderOptions(allow_missing_weights=True))
    assert check_loading_info(info, spec=allowed, model_class="M") == {"missing": 2, "unexpected": 0, "mismatched": 0}


def test_require_and_dtype_errors_say_the_fix() -> None:
    spec = EncoderSpec(name="x", family="f", checkpoint="c", options=EncoderOptions(dtype="float8"))
    with pytest.raises(EncoderError, match=r"needs no_such_module_xyz: pip install 'acme\[extra\]'"):
        require(spec, "no_such_module_xyz", extra="extra", package="acme")
    pytest.importorskip("torch")
    with pytest.raises(ConfigError, match=r"dtype 'float8' is not one of float32, bfloat16, float16"):
        resolve_dtype(spec)


# ---------------------------------------------------------------------------------------------
# Partial forwards and masks (torch)


def _toy(n_blocks: int, *, seq_first: bool = False) -> Any:
    torch = pytest.importorskip("torch")

    class Block(torch.nn.Linear):
        runs = 0

        def forward(self, x: Any) -> Any:
            self.runs += 1  # forward() runs after pre-hooks and before forward hooks
            return torch.tanh(super().forward(x))

    class Toy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.embed = torch.nn.Embedding(10, 4)
            self.blocks = torch.nn.ModuleList(Block(4, 4) for _ in range(n_blocks))

        def forward(self, ids: Any) -> Any:
            x = self.embed(ids)
            x = x.transpose(0, 1) if seq_first else x
            for block in self.blocks:
                x = block(x)
            return x

    return Toy().eval()


@pytest.mark.parametrize("seq_first", [False, True], ids=["batch-first", "seq-first"])
def test_forward_up_to_collects_and_stops(seq_first: bool) -> None:
    torch = pytest.importorskip("torch")
    from harness.encoding import forward_up_to

    model = _toy(3, seq_first=seq_first)
    ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
    to_btd = (lambda x: x.transpose(0, 1)) if seq_first else (lambda x: x)
    with torch.inference_mode():
        full = [model.embed(ids)]
        for block in model.blocks:
            full.append(torch.tanh(torch.nn.functional.linear(full[-1], block.weight, block.bias)))
    for k in range(4):
        for block in model.blocks:
            block.runs = 0
        with torch.inference_mode():
            got = forward_up_to(lambda: model(ids), model.blocks, k, to_btd=to_btd)
        assert len(got) == k + 1, f"up_to={k}: expected {k + 1} hidden states"
        for i, h in enumerate(got):
            torch.testing.assert_close(h, full[i], msg=lambda m: f"up_to={k} state {i}: {m}")
        runs = [block.runs for block in model.blocks]
        assert runs == [1] * k + [0] * (3 - k), f"up_to={k}: blocks above {k} ran: {runs}"
    assert all(not b._forward_hooks and not b._forward_pre_hooks for b in model.blocks), "hooks left behind"


def test_forward_up_to_refuses_blocks_the_forward_does_not_run() -> None:
    torch = pytest.importorskip("torch")
    from harness.encoding import forward_up_to

    model, other = _toy(2), _toy(2)
    with pytest.raises(EncoderError, match=r"produced 0 of 2 hidden states"):
        forward_up_to(lambda: model(torch.tensor([[1]])), other.blocks, 1)
    with pytest.raises(ValueError, match=r"up_to 3 is outside 0..2"):
        forward_up_to(lambda: None, model.blocks, 3)


def test_drop_prefix_right_padding_and_noop() -> None:
    torch = pytest.importorskip("torch")
    from harness.encoding import drop_prefix

    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert drop_prefix(mask, 1).tolist() == [[0, 1, 1, 0], [0, 1, 1, 1]]
    assert drop_prefix(mask, 0) is mask
