"""Issue 21, "Reliability, round two", through the real CLI (`harness.cli.main.main`): every refusal is exit
status 2, exactly one ``error:`` line on stderr, no traceback, no file written, before any model load.

* item 3: results files validated on read (`harness.evaluation.results.read_results`), for correlate, report
  and score;
* item 4: numbers bounded at parse time (`harness.cli.argtypes`), and the aggregator's epochs drawn lazily;
* item 7: data that cannot mean what it says, refused by validate and every loader (TED JSONL, the official
  JSON, a ``datasets`` folder, caption pairs) and task / category YAML keys refused with "Did you mean".

(Item 10, build-data never undoing a review, is in tests/test_build_data.py, with its scripted LLM server.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli_checks import FAKE, QUICK, refused

from harness.cli.main import build_parser, main
from harness.plugins import get_plugin_manager




def _parserefused(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    """An argparse refusal: `main` exits 2 (SystemExit) while parsing, so before anything is loaded."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return refused(capsys, int(exc.value.code or 0), *needles)


def _no_files(folder: Path) -> None:
    assert not folder.exists() or not any(p.is_file() for p in folder.rglob("*")), sorted(folder.rglob("*"))



# --------------------------------------------------------------------------- item 3: results read back


def _set_value(value: str) -> Callable[[dict[str, Any]], str]:
    def edit(doc: dict[str, Any]) -> str:
        doc["scores"][0]["value"] = "@@V@@"
        return json.dumps(doc).replace('"@@V@@"', value)
    return edit


def _drop(key: str) -> Callable[[dict[str, Any]], str]:
    def edit(doc: dict[str, Any]) -> str:
        doc.pop(key)
        return json.dumps(doc)
    return edit


def _seed_text(doc: dict[str, Any]) -> str:
    doc["scores"][1]["seed"] = "0"
    return json.dumps(doc)


DAMAGE: dict[str, tuple[Callable[[dict[str, Any]], str], str]] = {
    "value-string": (_set_value('"high"'), "field 'scores[0].value' must be a finite number, got 'high'"),
    "value-null": (_set_value("null"), "field 'scores[0].value' must be a finite number, got None"),
    "value-nan": (_set_value("NaN"), "field 'scores[0].value' must be a finite number, got nan"),
    "value-infinity": (_set_value("-Infinity"), "field 'scores[0].value' must be a finite number, got -inf"),
    "value-bool": (_set_value("true"), "field 'scores[0].value' must be a finite number, got True"),
    "no-scores": (_drop("scores"), "field 'scores' is missing"),
    "scores-object": (lambda doc: json.dumps({**doc, "scores": {"a": 1}}), "field 'scores' must be a list"),
    "seed-string": (_seed_text, "field 'scores[1].seed' must be an integer, got '0'"),
}


def _commands(res: Path, out: Path) -> dict[str, list[str]]:
    downstream = "pkg:harness_tasks/data/downstream_paper.csv"
    return {
        "correlate": ["correlate", str(res), "--downstream", downstream, "--out", str(out)],
        "report": ["report", str(res), "--out", str(out)],
        "report-with-downstream": ["report", str(res), "--out", str(out), "--downstream", downstream],
        "score": [*FAKE, "score", str(res), "--scorer", "toy-t2i:smoke", "--out", str(out)],
    }


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
@pytest.mark.parametrize("command", ["correlate", "report", "report-with-downstream", "score"])
def test_damaged_results_are_refused_by_every_reader(results_dir: Path, tmp_path: Path, damage: str, command: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    edit, needle = DAMAGE[damage]
    res = tmp_path / "res"
    res.mkdir()
    (res / "results.json").write_text(edit(json.loads((results_dir / "results.json").read_text())))
    out = tmp_path / "out"
    rc = main(_commands(res, out)[command])
    refused(capsys, rc, str(res / "results.json"), needle)
    _no_files(out)


def test_damaged_samples_arerefused(results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = tmp_path / "res"
    res.mkdir()
    (res / "results.json").write_bytes((results_dir / "results.json").read_bytes())
    lines = (results_dir / "samples.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["scores"][0] = "@@"
    lines[0] = json.dumps(first).replace('"@@"', "NaN")
    (res / "samples.jsonl").write_text("\n".join(lines) + "\n")
    rc = main(["report", str(res), "--out", str(tmp_path / "out")])
    refused(capsys, rc, str(res / "samples.jsonl"), "scores[0]' must be a finite number, got nan")
    _no_files(tmp_path / "out")


def test_intact_results_still_read(results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(results_dir), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.md").is_file()


# --------------------------------------------------------------------------- item 4: numbers bounded


BAD_NUMBERS = [
    ("--seeds", "-1", "seed -1 is outside 0..4294967295"),
    ("--seeds", "0,1,4294967296", "seed 4294967296 is outside 0..4294967295"),
    ("--seeds", "99999999999999999999", "is outside 0..4294967295"),
    ("--dim-out", "1000000000", "'1000000000' is over the bound 65536 (the aggregator's output width"),
    ("--dim-out", "0", "'0' is not an integer > 0 and <= 65536"),
    ("--heads", "1000000000", "is over the bound 65536"),
    ("--lr", "inf", "'inf' is not finite"),
    ("--lr", "nan", "'nan' is not finite"),
    ("--lr", "1e999", "'1e999' is not finite"),
    ("--lr", "-1", "'-1' is not a number > 0"),
    ("--temperature", "inf", "'inf' is not finite"),
    ("--temperature", "NaN", "'NaN' is not finite"),
    ("--weight-decay", "nan", "'nan' is not finite"),
    ("--layer-lr", "-inf", "'-inf' is not finite"),
    ("--epochs", "99999999999999999999", "'99999999999999999999' is over the bound 10000"),
    ("--epochs", "0", "'0' is not an integer > 0 and <= 10000"),
]
RUN_ONLY = [
    ("--bootstrap", "1000000000", "'1000000000' is over the bound 100000"),
    ("--null-resamples", "1000000000", "'1000000000' is over the bound 100000"),
    ("--bootstrap", "-1", "'-1' is not an integer >= 0 and <= 100000"),
    ("--null-resamples", "nan", "'nan' is not an integer"),
]


@pytest.mark.parametrize(("command", "flag", "value", "needle"),
                         [("run", *c) for c in BAD_NUMBERS + RUN_ONLY] + [("train", *c) for c in BAD_NUMBERS],
                         ids=[f"run{c[0]}={c[1]}" for c in BAD_NUMBERS + RUN_ONLY]
                         + [f"train{c[0]}={c[1]}" for c in BAD_NUMBERS])
def test_numbers_are_bounded_at_parse_time(command: str, flag: str, value: str, needle: str, no_model_load: None,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _parserefused(capsys, [*FAKE, command, "--encoders", "fake", f"{flag}={value}"], f"argument {flag}:", needle)


@pytest.mark.parametrize(("flag", "value"), [("--temperature", "inf"), ("--usd-per-m-prompt", "nan"),
                                             ("--usd-per-m-completion", "1e999")])
def test_build_data_numbers_are_finite(tmp_path: Path, flag: str, value: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    _parserefused(capsys, ["build-data", "caps.jsonl", "--out", str(tmp_path / "o"), flag, value], "is not finite")
    _no_files(tmp_path / "o")


def test_numbers_at_their_bounds_are_accepted() -> None:
    parser = build_parser(get_plugin_manager(["harness.testing"]))
    args = parser.parse_args(["run", "--seeds", "0,4294967295", "--dim-out", "65536", "--epochs", "10000",
                              "--bootstrap", "100000", "--null-resamples", "100000", "--lr", "1e-300",
                              "--temperature", "0.07", "--weight-decay", "0"])
    assert (args.seeds, args.dim_out, args.epochs, args.bootstrap, args.null_resamples) == (
        (0, 2**32 - 1), 65536, 10000, 100000, 100000)
    assert parser.parse_args(["train", "--epochs", "1", "--lr", "3e-5"]).lr == 3e-5


def test_epochs_are_drawn_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    """A huge epoch count allocates nothing up front: each epoch's batches are drawn when it starts, and the
    step count the trajectory uses is computed, not counted from every epoch's list."""
    torch = pytest.importorskip("torch")
    from harness import CaptionPair
    from harness_plugins.aggregators import training
    from harness_plugins.aggregators.context import ContextModel

    drawn = []
    real = training._batches

    def counting(*args: Any, **kwargs: Any) -> list[list[int]]:
        drawn.append(1)
        return real(*args, **kwargs)

    class Stop(Exception):
        pass

    def stop(step: int, loss: float) -> None:
        if step == 3:
            raise Stop

    monkeypatch.setattr(training, "_batches", counting)
    cfg = training.TrainConfig(dim_out=8, heads=2, mlp_ratio=2.0, epochs=10_000, batch_size=4, device="cpu")
    pairs = [CaptionPair(a=f"a {i}", b=f"b {i}") for i in range(8)]  # 2 batches per epoch

    def feats(texts: list[str]) -> tuple[Any, Any]:
        return torch.randn(len(texts), 3, 16), torch.ones(len(texts), 3, dtype=torch.bool)

    with pytest.raises(Stop):  # fetched in the loop: exactly the epochs the 3 steps reach
        training.train(ContextModel(16, cfg), feats, pairs, cfg, seed=0, on_step=stop, prefetch=0)
    assert len(drawn) == 2, f"{len(drawn)} epochs drawn for 3 steps of 2-batch epochs"
    drawn.clear()
    with pytest.raises(Stop):  # prefetched (the default): a few batches ahead, never the 10,000 epochs
        training.train(ContextModel(16, cfg), feats, pairs, cfg, seed=0, on_step=stop)
    assert 2 <= len(drawn) <= 2 + training.PREFETCH_BATCHES, f"{len(drawn)} epochs drawn with prefetch"


def test_batches_per_epoch_matches_the_batches() -> None:
    import numpy as np

    from harness import CaptionPair
    from harness_plugins.aggregators import training

    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 64, 255, 256, 257, 1000):
        pairs = [CaptionPair(a="x" * int(rng.integers(1, 9)), b="y") for _ in range(n)]
        for size in (2, 3, 8, 32):
            for batching in ("bucketed", "random"):
                cfg = training.TrainConfig(batch_size=size, batching=batching)
                got = len(training._batches(pairs, cfg, np.random.default_rng(1)))
                assert got == training._batches_per_epoch(n, cfg), (n, size, batching)


# --------------------------------------------------------------------------- item 7: data that cannot mean it

ROW = {"id": "r1", "category": "spatial", "caption": "A cup left of a bowl.", "positive": "Cup left of bowl.",
       "negatives": ["Cup right of bowl.", "Bowl left of cup."], "caption_type": "image"}
BAD_ROWS: dict[str, tuple[dict[str, Any], str, str]] = {
    "positive-is-a-negative": ({**ROW, "negatives": ["Cup right of bowl.", "Cup left of bowl."]},
                               "field 'negatives[1]' equals the positive", ":2:"),
    "positive-is-a-negative-spaced": ({**ROW, "negatives": [" Cup  left of bowl."]},
                                      "field 'negatives[0]' equals the positive", ":2:"),
    "negative-twice": ({**ROW, "negatives": ["Cup right of bowl.", "Bowl left of cup.", "Cup right of bowl."]},
                       "field 'negatives[2]' repeats negative [0]", ":2:"),
    "caption-type-Video": ({**ROW, "caption_type": "Video"}, "must be image or video (lowercase), got 'Video'. "
                           "Did you mean: video?", ":2:"),
    "caption-type-audio": ({**ROW, "caption_type": "audio"}, "field 'caption_type' must be image or video", ":2:"),
}


def _ted_file(tmp_path: Path, bad: dict[str, Any]) -> Path:
    good = {**ROW, "id": "r0"}
    path = tmp_path / "ted.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    return path


@pytest.mark.parametrize("case", BAD_ROWS, ids=list(BAD_ROWS))
def test_validate_and_run_refuse_impossible_instances(tmp_path: Path, case: str, no_model_load: None,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    row, needle, line = BAD_ROWS[case]
    path = _ted_file(tmp_path, row)
    refused(capsys, main(["validate", str(path)]), f"{path}{line}", needle)
    out = tmp_path / "out"
    refused(capsys, main([*FAKE, "run", *QUICK, "--tasks", str(path), "--output", str(out)]), f"{path}{line}", needle)
    _no_files(out)


@pytest.mark.parametrize("case", BAD_ROWS, ids=list(BAD_ROWS))
def test_datasets_folder_refuses_impossible_instances(tmp_path: Path, case: str, no_model_load: None,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    datasets = pytest.importorskip("datasets")
    row, needle, _ = BAD_ROWS[case]
    ds = datasets.Dataset.from_list([{**ROW, "id": "r0"}, {**row, "negatives": row["negatives"]}])
    ds.save_to_disk(str(tmp_path / "ds"))
    capsys.readouterr()  # the test's own save_to_disk progress bar
    refused(capsys, main([*FAKE, "run", *QUICK, "--tasks", str(tmp_path / "ds")]), str(tmp_path / "ds"), needle)


def _official(caption_type: str = "video", negatives: tuple[str, ...] = ("He sits.", "He swims.")) -> dict[str, Any]:
    ok = {"status": "success"}
    return {"cap-1": {"caption": "A man runs.", "caption_type": caption_type, "statements": {"Action": {
        "question": "q", "correct_statement": {**ok, "statement": "He runs."},
        "incorrect_statements": [{**ok, "statement": s} for s in negatives]}}}}


@pytest.mark.parametrize(("doc", "needle"), [
    (_official(negatives=("He sits.", "He runs.")),
     "field 'cap-1.statements.Action.incorrect_statements[1]' equals the positive"),
    (_official(negatives=("He sits.", "He sits.")),
     "field 'cap-1.statements.Action.incorrect_statements[1]' repeats negative [0]"),
    (_official(caption_type="Video"), "field 'cap-1.caption_type' must be image or video (lowercase), got 'Video'. "
                                      "Did you mean: video?"),
], ids=["positive-is-a-negative", "negative-twice", "caption-type-Video"])
def test_official_json_refuses_impossible_instances(tmp_path: Path, doc: dict[str, Any], needle: str,
                                                    no_model_load: None, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ted6k.json"
    path.write_text(json.dumps(doc))
    refused(capsys, main(["validate", str(path)]), str(path), needle)
    refused(capsys, main([*FAKE, "run", *QUICK, "--tasks", str(path)]), str(path), needle)


def test_pairs_refuse_a_caption_type_other_than_image_or_video(tmp_path: Path, no_model_load: None,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"a": "A cat.", "b": "A kitten."}) + "\n"
                    + json.dumps({"a": "A dog.", "b": "A puppy.", "caption_type": "Video"}) + "\n")
    needle = "field 'caption_type' must be image or video (lowercase), got 'Video'. Did you mean: video?"
    refused(capsys, main(["validate", str(path)]), f"{path}:2:", needle)
    refused(capsys, main([*FAKE, "run", "--encoders", "fake", "--tasks", "tiny", "--train-pairs", str(path),
                           "--bootstrap", "0", "--null-resamples", "0", "--extract", "last", "--preset", "baby"]),
             f"{path}:2:", needle)


def test_shipped_data_still_loads(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("pkg:harness_tasks/data/ted6k_sample.jsonl", "pkg:harness_tasks/data/open/ted_open.jsonl.gz",
                 "pkg:harness/testing_data/tiny.jsonl", "pkg:harness_tasks/data/caption_pairs.jsonl",
                 "pkg:harness_tasks/data/open/pairs_open.jsonl.gz", "pkg:harness/testing_data/tiny_pairs.jsonl"):
        assert main(["validate", name]) == 0, capsys.readouterr().err
        assert "— OK" in capsys.readouterr().out


# task and category YAML keys


@pytest.mark.parametrize(("files", "needle"), [
    ({"t.yaml": "include: _ted6k-sample.yaml\ncategroy: ocr\n"},
     "t.yaml: Unknown field 'categroy'. Did you mean: category"),
    ({"t.yaml": "data: {pth: rows.jsonl}\n"}, "t.yaml: Unknown field 'data.pth'. Did you mean: data.path"),
    ({"t.yaml": "include: _g.yaml\ncategory: ocr\n", "_g.yaml": "grop: g\ndata: {path: rows.jsonl}\n"},
     "_g.yaml: Unknown field 'grop'. Did you mean: group"),
    ({"t.yaml": "data: {path: rows.jsonl}\ntrain_pair: demo\n"},
     "t.yaml: Unknown field 'train_pair'. Did you mean: train_pairs"),
    ({"t.yaml": "name: Gesture\nexamples: []\ndefiniton: d\ndata: {path: rows.jsonl}\n"},
     "fields of a category file, which is marked by a 'definition:' field"),
    ({"t.yaml": "name: Gesture\ndefinition: The gesture.\nexampels: []\ndata: {path: rows.jsonl}\n"},
     "t.yaml: Unknown field 'exampels'. Did you mean: examples"),
    ({"t.yaml": "name: Gesture\ndefinition: The gesture.\ndata: {path: rows.jsonl, formt: jsonl}\n"},
     "t.yaml: Unknown field 'data.formt'. Did you mean: data.format"),
], ids=["categroy", "data-pth", "base-grop", "train_pair", "category-without-definition", "category-exampels",
        "category-data-formt"])
def test_task_yaml_keys_are_checked(tmp_path: Path, files: dict[str, str], needle: str, no_model_load: None,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rows.jsonl").write_text(json.dumps({**ROW, "category": "ocr"}) + "\n")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    task = str(tmp_path / "t.yaml")
    refused(capsys, main(["validate", task]), needle)
    refused(capsys, main([*FAKE, "run", *QUICK, "--tasks", task]), needle)


def test_validate_takes_a_task_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.yaml").write_text("include: _ted6k-sample.yaml\ncategory: ocr\n")
    assert main(["validate", str(tmp_path / "t.yaml")]) == 0
    out = capsys.readouterr().out
    assert "ocr" in out and "task t: 30 instances — OK" in out, out
    assert main(["validate", "pkg:harness/testing_data/tiny.yaml"]) == 0
