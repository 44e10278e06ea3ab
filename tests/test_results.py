"""Typed results: `read_results` is the exact inverse of `write_results`, and bad files fail in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from harness import DataError  # noqa: E402
from harness.cli.main import main  # noqa: E402
from harness.features.extractors import parse_extractors  # noqa: E402
from harness.options import AggregatorOptions, TrainingOptions  # noqa: E402
from harness.evaluation.results import RunResult, TrainingRecord, read_results, write_results  # noqa: E402
from harness.evaluation.tasks import load_task_sets  # noqa: E402
from harness.evaluation.runner import run  # noqa: E402

from conftest import TINY_PAIRS  # noqa: E402


def _result(pm, registry) -> RunResult:
    return run(pm, encoders=[registry.encoder("fake")], tasks=load_task_sets(pm, registry, ["tiny"]),
               extractors=parse_extractors(pm, ["last", "learned"]), aggregator="context",
               aggregator_options=AggregatorOptions(preset="baby"), training=TrainingOptions(train_pairs=TINY_PAIRS),
               seeds=(0, 1), bootstrap=50, recorded_options={"note": ("a", "tuple")})


def test_round_trip_is_exact(pm, registry, tmp_path: Path) -> None:
    result = _result(pm, registry)
    assert result.seed_summary and result.comparisons and result.training and result.samples
    assert isinstance(result.training[0], TrainingRecord) and result.training[0].pairs.n == 8
    write_results(result, tmp_path)
    back = read_results(tmp_path)
    assert back == result, "read_results(write_results(r)) != r"
    assert read_results(tmp_path / "results.json") == result
    # and a second write of what was read gives the same bytes
    write_results(back, tmp_path / "again")
    assert (tmp_path / "again" / "results.json").read_bytes() == (tmp_path / "results.json").read_bytes()


def test_results_json_is_strict_json(pm, registry, tmp_path: Path) -> None:
    result = _result(pm, registry)
    result.scores[0] = type(result.scores[0])(**{**result.scores[0].__dict__, "value": float("nan")})
    with pytest.raises(ValueError):
        write_results(result, tmp_path)


@pytest.mark.parametrize(("content", "needle"), [
    (None, "does not exist"),
    ("{not json", "not a readable results file"),
    ('{"scores": []}', "field 'schema' is missing"),
    ('{"schema": 1, "scores": []}', "is 1; this harness reads schema 2"),
    ('{"schema": 2, "scores": [{"encoder": "x"}]}', "field 'scores[0]'"),
    ('{"schema": 2, "scores": [{"bogus": 1}]}', "unknown field(s) ['bogus']"),
], ids=["missing", "bad-json", "no-schema", "old-schema", "short-record", "unknown-field"])
def test_bad_results_files_are_one_line_errors(tmp_path: Path, content: str | None, needle: str) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as exc:
        read_results(path)
    assert needle in str(exc.value) and str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_cli_output_reads_back(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--aggregator", "mean-pool",
                 "--output", str(out)]) == 0
    back = read_results(out)
    assert {s.extractor for s in back.scores} == {"last", "norm-avg"} and back.provenance.encoders["fake"].width == 16
    assert json.loads((out / "results.json").read_text())["provenance"]["options"]["aggregator"] == "mean-pool"
