"""harness.testing: the fake encoder honours its options, and `check_encoder` names what is broken."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from harness import EncodedBatch, EncoderOptions, EncoderSpec  # noqa: E402
from harness.features.cache import encoder_fingerprint  # noqa: E402
from harness.testing import FakeEncoder, check_encoder, harness_load_encoder  # noqa: E402

SPEC = EncoderSpec(name="fake", family="fake", checkpoint="seed-0", options=EncoderOptions(template="plain"))


def test_fake_encoder_passes_the_conformance_check() -> None:
    check_encoder(harness_load_encoder, SPEC)
    check_encoder(harness_load_encoder, dataclasses.replace(SPEC, options=EncoderOptions(max_length=4, dtype="bfloat16", template="plain")),
                  texts=["one", "two words", "and now three"])


def test_fake_loader_honours_and_records_options() -> None:
    enc = harness_load_encoder(dataclasses.replace(SPEC, options=EncoderOptions(max_length=2, template="<{text}>")))
    assert enc is not None
    assert enc.format("a cat") == "<a cat>" and enc.format("a cat", role="statement") == "a cat"
    batch = enc.encode(["one two three", "one"])
    assert batch.attention_mask.tolist() == [[1, 1], [1, 0]] and batch.n_truncated == 1
    assert enc.info.options["max_length"] == 2 and enc.info.options["template"] == "<{text}>"
    assert enc.info.options["seed"] == 0


def test_fake_defaults_unchanged() -> None:
    """Direct construction keeps its 64-word cap and plain formatting (pinned scores depend on it)."""
    enc = FakeEncoder()
    assert enc.max_length == 64 and enc.info.options["max_length"] == 64
    assert enc.format("a cat", caption_type="video") == "a cat"


# ---------------------------------------------------------------------------------------------
# Broken encoders: each must fail the check with a message that says what is wrong.


class _DropsLastLayer(FakeEncoder):
    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None) -> EncodedBatch:
        out = super().encode(texts, up_to_layer=up_to_layer)
        return dataclasses.replace(out, hidden_states=tuple(out.hidden_states)[:-1])


class _MaskOfTwos(FakeEncoder):
    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None) -> EncodedBatch:
        out = super().encode(texts, up_to_layer=up_to_layer)
        return dataclasses.replace(out, attention_mask=out.attention_mask * 2)


class _EmptyRow(FakeEncoder):
    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None) -> EncodedBatch:
        out = super().encode(texts, up_to_layer=up_to_layer)
        out.attention_mask[-1] = 0
        return out


class _NaN(FakeEncoder):
    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None) -> EncodedBatch:
        out = super().encode(texts, up_to_layer=up_to_layer)
        out.hidden_states[-1][0, 0, 0] = float("nan")
        return out


class _PartialDiffers(FakeEncoder):
    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None) -> EncodedBatch:
        out = super().encode(texts, up_to_layer=up_to_layer)
        if up_to_layer is not None:
            out.hidden_states[0].add_(1.0)
        return out


class _IgnoresTemplate(FakeEncoder):
    def format(self, text: str, *, role: str = "caption", caption_type: str = "image") -> str:
        return text


class _BadFormat(FakeEncoder):
    def format(self, text: str, *, role: str = "caption", caption_type: str = "image") -> str:
        return [text]  # type: ignore[return-value]


def _subclass(cls: type[FakeEncoder]) -> Callable[[EncoderSpec], Any]:
    return lambda spec: cls(spec.name, options=spec.options)


def _options_not_recorded(spec: EncoderSpec) -> Any:
    enc = FakeEncoder(spec.name, options=spec.options)
    enc.info = dataclasses.replace(enc.info, options={"seed": 0})
    return enc


def _max_length_ignored(spec: EncoderSpec) -> Any:
    enc = FakeEncoder(spec.name, options=dataclasses.replace(spec.options, max_length=512))
    enc.info = dataclasses.replace(enc.info, options=spec.options.as_dict())  # records, does not honour
    return enc


def _wrong_width(spec: EncoderSpec) -> Any:
    enc = FakeEncoder(spec.name, options=spec.options)
    enc.info = dataclasses.replace(enc.info, width=17)
    return enc


BROKEN: dict[str, tuple[Callable[[EncoderSpec], Any], str]] = {
    "wrong-layer-count": (_subclass(_DropsLastLayer),
                          r"encode returned 3 hidden states; expected info.num_layers \+ 1 = 4"),
    "options-not-recorded": (_options_not_recorded,
                             r"changing options.max_length from 512 to 4 left harness.features.cache.encoder_fingerprint"),
    "max-length-ignored": (_max_length_ignored, r"options.max_length 4, a text kept 11 real tokens"),
    "template-ignored": (_subclass(_IgnoresTemplate), r"with options.template '\[check_encoder\] \{text\}'"),
    "mask-not-0-1": (_subclass(_MaskOfTwos), r"attention_mask holds \[0, 2\]; expected only 0 and 1"),
    "text-without-tokens": (_subclass(_EmptyRow), r"text 2 \('nothing'\) has no real token"),
    "nan": (_subclass(_NaN), r"hidden state 3 has NaN/inf on real tokens"),
    "partial-differs": (_subclass(_PartialDiffers), r"encode\(up_to_layer=0\) hidden state 0 differs"),
    "format-not-str": (_subclass(_BadFormat), r"format\(role='caption'\) returned list, not str"),
    "wrong-width": (_wrong_width, r"hidden state 0 has shape \[3, 11, 16\]; expected .* = \[3, 11, 17\]"),
    "not-claimed": (lambda spec: None, r"load returned None"),
}


@pytest.mark.parametrize(("load", "match"), list(BROKEN.values()), ids=list(BROKEN))
def test_check_encoder_names_what_is_broken(load: Callable[[EncoderSpec], Any], match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        check_encoder(load, SPEC)


def test_options_change_the_fake_fingerprint() -> None:
    base = encoder_fingerprint(FakeEncoder(options=EncoderOptions(template="plain")).info)
    for change in ({"max_length": 4}, {"template": "granted-caption"}, {"dtype": "bfloat16"}):
        other = FakeEncoder(options=EncoderOptions(**{"template": "plain", **change})).info
        assert encoder_fingerprint(other) != base, f"{change} did not reach the cache key"
