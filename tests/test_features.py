"""Extractors equal the same quantity computed directly from transformers outputs (tiny random models)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from encoder_fixtures import build_tiny_checkpoint, tiny_spec  # noqa: E402

from harness.features.extractors import expand_extractors, parse_extractors, view_for  # noqa: E402
from harness.features.store import FeatureStore  # noqa: E402
from harness.plugins import get_plugin_manager  # noqa: E402

TEXTS = ["a red cup left of a blue bowl", "three dogs run", "the sign says open daily above the door"]
LN = torch.nn.functional.layer_norm


def _direct(folder: Path, family: str) -> tuple[list, list]:
    """hidden_states per text, computed with plain transformers calls one text at a time (no padding)."""
    from transformers import AutoModel, AutoTokenizer, T5EncoderModel

    tok = AutoTokenizer.from_pretrained(folder)
    model = (T5EncoderModel if family == "t5" else AutoModel).from_pretrained(folder).eval()
    states = []
    for text in TEXTS:
        with torch.no_grad():
            out = model(**tok(text, return_tensors="pt"), output_hidden_states=True)
        states.append([h[0] for h in out.hidden_states])
    return states, [len(s) - 1 for s in states]


def _norm(h: torch.Tensor) -> torch.Tensor:
    return LN(h.float(), (h.shape[-1],), eps=1e-5)


def _expected(name: str, hs: list[torch.Tensor], emb: bool) -> torch.Tensor:
    n = len(hs) - 1
    layers = list(range(0 if emb else 1, n + 1))
    if name == "last":
        return hs[-1]
    if name == "penultimate":
        return hs[-2]
    if name == "layer:1":
        return hs[1]
    if name == "layer:-3":
        return hs[n - 2]
    if name == "avg":
        return torch.stack([hs[i] for i in layers]).mean(0)
    if name == "norm-avg":
        return torch.stack([_norm(hs[i]) for i in layers]).mean(0)
    if name == "norm-avg:rms":
        return torch.stack([hs[i] * (hs[i].pow(2).mean(-1, keepdim=True) + 1e-6).rsqrt() for i in layers]).mean(0)
    if name == "learned":
        return torch.stack([_norm(hs[i]) for i in layers])
    raise AssertionError(name)


NAMES = ["last", "penultimate", "layer:1", "layer:-3", "avg", "norm-avg", "norm-avg:rms", "learned"]


@pytest.mark.parametrize("family", ["bert", "t5", "causal-lm"])
@pytest.mark.parametrize("emb", [None, True, False], ids=["family-default", "with-embedding", "without-embedding"])
def test_extractors_match_direct_transformers(tmp_path: Path, family: str, emb: bool | None) -> None:
    folder = build_tiny_checkpoint(family, tmp_path)
    pm = get_plugin_manager()
    encoder = pm.hook.harness_load_encoder(spec=tiny_spec(family, folder))
    specs = parse_extractors(pm, NAMES)
    if emb is not None:
        from dataclasses import replace
        specs = [replace(s, include_embedding=emb) if s.layers == "all" else s for s in specs]
    views = {s.name: view_for(s, encoder.info) for s in specs}
    store = FeatureStore(encoder, views.values(), batch_size=2)  # batches mix lengths: padding must not leak
    store.ensure(TEXTS)
    direct, _ = _direct(folder, family)
    use_emb = encoder.info.include_embedding_default if emb is None else emb
    assert encoder.info.include_embedding_default is (family != "causal-lm"), \
        "bert/t5 keep the embedding output by default (official T5/CLIP wrappers); LLMs drop it"
    for s in specs:
        for text, hs in zip(TEXTS, direct):
            got = store.get(views[s.name], text)
            torch.testing.assert_close(got, _expected(s.name, hs, use_emb).float(), atol=2e-5, rtol=1e-4,
                                       msg=f"{family} {s.name} differs from direct transformers")


def test_all_layers_expands_to_one_row_per_layer(tmp_path: Path) -> None:
    folder = build_tiny_checkpoint("bert", tmp_path)
    pm = get_plugin_manager()
    encoder = pm.hook.harness_load_encoder(spec=tiny_spec("bert", folder))
    specs = expand_extractors(parse_extractors(pm, ["all-layers"]), encoder.info)
    assert [s.name for s in specs] == [f"layer:{k}" for k in range(encoder.info.num_layers + 1)]
