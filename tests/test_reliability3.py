"""Issue 21, "Reliability, round two", part 2, through the real CLI (`harness.cli.main.main`): exit status
2, exactly one ``error:`` line on stderr, no traceback, no file left half-written, before any model load
where that is knowable.

* item 1: every output place checked before any work (`harness.cli.outputs.check_output_place`) and every
  output file written atomically (`atomic_write`, `staged_folder`), a run's or report's own stale figures
  removed;
* item 5: what is knowable before the first model load is checked before it;
* item 6: an option that does not apply is refused;
* item 8: the exit status tells the truth.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli_checks import FAKE, QUICK, refused

from harness.cli.main import main

DOWNSTREAM = "pkg:harness_tasks/data/downstream_paper.csv"
ROW = {"id": "r0", "category": "spatial", "caption": "A cup left of a bowl.", "positive": "Cup left of bowl.",
       "negatives": ["Cup right of bowl.", "Bowl left of cup."], "caption_type": "image"}



def _no_temp_files(folder: Path) -> None:
    left = [p for p in folder.rglob(".*")]
    assert not left, f"temporary files left: {left}"



# --------------------------------------------------------------------------- item 1: output places


def _command(name: str, res: Path, out: str, tmp: Path) -> list[str]:
    return {
        "pairs": ["pairs", str(tmp / "no-such-dataset"), "--out", out],
        "correlate": ["correlate", str(res), "--downstream", DOWNSTREAM, "--out", out],
        "report": ["report", str(res), "--out", out],
        "run": [*FAKE, "run", *QUICK, "--tasks", "tiny", "--output", out],
        "score": [*FAKE, "score", str(res), "--scorer", "toy-t2i:smoke", "--out", out],
        "build-data": ["build-data", str(tmp / "no-such-captions.jsonl"), "--out", out],
    }[name]


PLACES = {
    "a-file": (lambda tmp: str(tmp / "afile"), "is a file; give a folder"),
    "under-a-file": (lambda tmp: str(tmp / "afile" / "x"), "is a file, not a folder"),
    "proc": (lambda tmp: "/proc/x", "cannot be written"),
    "empty": (lambda tmp: "", "is empty"),
}
COMMANDS = ["pairs", "correlate", "report", "run", "score", "build-data"]


@pytest.mark.parametrize("place", PLACES, ids=list(PLACES))
@pytest.mark.parametrize("command", COMMANDS)
def test_every_output_place_is_checked_before_work(results_dir: Path, tmp_path: Path, place: str, command: str,
                                                   no_model_load: None, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("keep\n")
    where, needle = PLACES[place]
    out = where(tmp_path)
    if command == "pairs" and place == "a-file":  # pairs writes a file: a folder is what it refuses
        out, needle = str(tmp_path), "is a folder; give a file path"
    flag = "--output" if command == "run" else "--out"
    refused(capsys, main(_command(command, results_dir, out, tmp_path)), flag, needle)
    assert (tmp_path / "afile").read_text() == "keep\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing created, nothing left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("command", COMMANDS)
def test_a_read_only_folder_isrefused(results_dir: Path, tmp_path: Path, command: str, no_model_load: None,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        out = str(ro / "x.jsonl") if command == "pairs" else str(ro / "out")
        refused(capsys, main(_command(command, results_dir, out, tmp_path)), "cannot be written (Permission denied)")
    finally:
        ro.chmod(0o755)


def test_a_failing_report_write_changes_nothing(results_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rep"
    assert main(["report", str(results_dir), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import harness.report.page

    def too_big(*args: Any, **kwargs: Any) -> str:
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(harness.report.page, "to_html", too_big)
    refused(capsys, main(["report", str(results_dir), "--out", str(out)]), "--out", "File too large",
             "nothing in it was changed")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    _no_temp_files(out)


def test_ulimit_leaves_no_truncated_file(results_dir: Path, tmp_path: Path) -> None:
    """Under ``ulimit -f`` (figures and pairs over the limit) report and pairs leave no file, temp or truncated."""
    datasets = pytest.importorskip("datasets")
    pairs_src = tmp_path / "ds"
    datasets.Dataset.from_list([{"caption": [f"A cat {i} sits." + "x" * 200, f"A cat {i} rests."]}
                                for i in range(40)]).save_to_disk(str(pairs_src))
    script = ("import sys; from harness.cli.main import main; sys.exit(main(sys.argv[1:]))")
    for argv in (["report", str(results_dir), "--out", str(tmp_path / "rep")],
                 ["pairs", str(pairs_src), "--out", str(tmp_path / "p" / "pairs.jsonl")]):
        proc = subprocess.run(["bash", "-c", 'ulimit -f 8; exec "$0" "$@"', sys.executable, "-c", script, *argv],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "File too large" in proc.stderr, proc.stderr
    assert not [p for p in (tmp_path / "rep").iterdir()], "report left files"
    assert not [p for p in (tmp_path / "p").iterdir()], "pairs left files"


def _one_category_task(tmp_path: Path) -> Path:
    path = tmp_path / "other.jsonl"
    path.write_text("".join(json.dumps({**ROW, "id": f"r{i}", "caption": f"A cup {i} left of a bowl."}) + "\n"
                            for i in range(3)))
    return path


def test_two_runs_into_one_output_leave_only_the_second(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main([*FAKE, "run", *QUICK, "--tasks", "tiny", "--output", str(out)]) == 0
    first = {p.name for p in out.glob("report-*.png")}
    assert any("tiny" in n for n in first), first
    assert main([*FAKE, "run", *QUICK, "--tasks", str(_one_category_task(tmp_path)), "--output", str(out)]) == 0
    second = {p.name for p in out.glob("report-*.png")}
    assert not any("tiny" in n for n in second), second
    assert all(name in (out / "report.md").read_text() for name in second)
    _no_temp_files(out)


def test_two_reports_into_one_out_leave_only_the_second(results_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    assert main([*FAKE, "run", *QUICK, "--tasks", str(_one_category_task(tmp_path)), "--output", str(other)]) == 0
    out = tmp_path / "rep"
    assert main(["report", str(results_dir), "--out", str(out)]) == 0
    assert main(["report", str(other), "--out", str(out)]) == 0
    assert not [p for p in out.glob("report-*tiny*.png")]
    _no_temp_files(out)


# --------------------------------------------------------------------------- item 5: before the first model load


def test_a_second_encoders_missing_checkpoint_is_found_first(tmp_path: Path, no_model_load: None,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([*FAKE, "run", *QUICK[2:], "--encoders", "fake,bert:/nonexistent/model", "--tasks", "tiny"])
    refused(capsys, rc, "Encoder 'bert:/nonexistent/model'", "does not exist")


def test_shuffled_captions_needs_two_distinct_captions(tmp_path: Path, no_model_load: None,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text("".join(json.dumps({**ROW, "id": f"r{i}", "positive": f"Cup {i} left of bowl."}) + "\n"
                            for i in range(3)))
    rc = main([*FAKE, "run", *QUICK, "--tasks", str(path), "--control", "shuffled-captions"])
    refused(capsys, rc, "has 1 distinct caption(s)", "at least 2")


def _learned(*extra: str) -> list[str]:
    return [*FAKE, "run", "--encoders", "fake", "--tasks", "tiny", "--extract", "learned", "--bootstrap", "0",
            "--null-resamples", "0", "--preset", "baby", *extra]


@pytest.mark.parametrize(("content", "needle"), [
    (b'["a", "b"]', "has 'a' at position 0, not a finite number"),
    (b"[0.1, NaN, 0.2]", "has nan at position 1"),
    (gzip.compress(b"[0.1, 0.2]"), "is gzip-compressed"),
    (b"[0.1, 0.2", "is not valid JSON"),
    (b'{"logits": "x"}', "not a list of layer logits"),
    (b"\xff\xfe[1]", "is not UTF-8 text"),
], ids=["strings", "nan", "gzip", "truncated", "not-a-list", "latin-1"])
def test_layer_weights_file_content_is_checked_at_parse_time(tmp_path: Path, content: bytes, needle: str,
                                                             no_model_load: None,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "logits.json"
    path.write_bytes(content)
    refused(capsys, main(_learned("--layer-weights-file", str(path))), "--layer-weights-file", needle)


def test_official_preset_with_fewer_pairs_than_a_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        no_model_load: None) -> None:
    """Known from the pairs and the preset alone: refused before the encoder loads (was: after encoding)."""
    rc = main([*FAKE, "run", "--encoders", "fake", "--tasks", "tiny", "--extract", "last", "--bootstrap", "0",
               "--null-resamples", "0", "--preset", "official", "--dim-out", "8", "--heads", "2", "--max-pairs", "40",
               "--ckpt-dir", str(tmp_path / "ck"), "--cache-dir", str(tmp_path / "cache")])
    err = refused(capsys, rc, "preset 'official' cuts batches of 128 pairs and drops the last partial one",
                   "Give at least 128 pairs, or --train-batch-size between 2 and")
    assert "at least 2 pairs)" not in err


# --------------------------------------------------------------------------- item 6: options that do not apply


@pytest.mark.parametrize(("argv", "needle"), [
    (["--extract", "last", "--layer-weights", "frozen"], "--layer-weights 'frozen' applies to a learned extractor"),
    (["--extract", "norm-avg", "--layer-weights-file", "@LOGITS@"], "applies to a learned extractor only"),
    (["--extract", "learned", "--aggregator", "mean-pool", "--layer-weights", "frozen"],
     "--aggregator 'mean-pool' trains nothing"),
    (["--extract", "last", "--aggregator", "mean-pool", "--train-pairs", "/no/such/pairs.jsonl"],
     "--train-pairs '/no/such/pairs.jsonl' does not exist, and --aggregator 'mean-pool' trains nothing"),
], ids=["frozen-without-learned", "file-without-learned", "frozen-with-mean-pool", "train-pairs-with-mean-pool"])
def test_an_option_that_does_not_apply_isrefused(tmp_path: Path, argv: list[str], needle: str, no_model_load: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    logits = tmp_path / "logits.json"
    logits.write_text("[0.0, 0.0]")
    argv = [str(logits) if a == "@LOGITS@" else a for a in argv]
    rc = main([*FAKE, "run", "--encoders", "fake", "--tasks", "tiny", "--bootstrap", "0", "--null-resamples", "0",
               *argv])
    refused(capsys, rc, needle)


def test_train_pairs_with_mean_pool_are_said_unused(capsys: pytest.CaptureFixture[str]) -> None:
    pairs = "pkg:harness/testing_data/tiny_pairs.jsonl"
    assert main([*FAKE, "run", *QUICK, "--tasks", "tiny", "--train-pairs", pairs]) == 0
    assert "note: --train-pairs 'pkg:harness/testing_data/tiny_pairs.jsonl' is unused" in capsys.readouterr().out


def test_train_with_an_aggregator_that_trains_nothing(no_model_load: None, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([*FAKE, "train", "--encoders", "fake", "--aggregator", "mean-pool", "--extract", "last"])
    refused(capsys, rc, "--aggregator 'mean-pool' trains nothing", "use `harness run`")


def test_pairs_split_on_a_dataset_without_splits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list([{"caption": ["A cat.", "A kitten."]}]).save_to_disk(str(tmp_path / "ds"))
    capsys.readouterr()
    rc = main(["pairs", str(tmp_path / "ds"), "--split", "test", "--out", str(tmp_path / "p.jsonl")])
    refused(capsys, rc, "--split 'test'", "saved without split names; drop --split")
    assert not (tmp_path / "p.jsonl").exists()
    assert main(["pairs", str(tmp_path / "ds"), "--out", str(tmp_path / "p.jsonl")]) == 0


# --------------------------------------------------------------------------- item 8: the exit status


def test_train_whose_checkpoint_cannot_be_written(tmp_path: Path, no_model_load: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ck").write_text("")
    rc = main([*FAKE, "train", "--encoders", "fake", "--extract", "last", "--preset", "baby",
               "--ckpt-dir", str(tmp_path / "ck")])
    refused(capsys, rc, "--ckpt-dir", "is a file; give a folder")


def test_build_data_on_an_empty_captions_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "caps.jsonl").write_text("")
    rc = main(["build-data", str(tmp_path / "caps.jsonl"), "--out", str(tmp_path / "out"), "--llm-base-url",
               "http://127.0.0.1:9", "--llm-api-key", "x", "--model", "m"])
    refused(capsys, rc, "hold no usable caption")
    assert not (tmp_path / "out" / "ted.jsonl").exists()


def test_build_data_where_every_request_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("openai")
    (tmp_path / "caps.jsonl").write_text(json.dumps({"id": "a", "caption": "A cat on a mat."}) + "\n")
    rc = main(["build-data", str(tmp_path / "caps.jsonl"), "--out", str(tmp_path / "out"), "--types", "action",
               "--llm-base-url", "http://127.0.0.1:9", "--llm-api-key", "x", "--model", "m", "--max-retries", "0"])
    refused(capsys, rc, "none of the 1 item(s) got statements (1 failed", "nothing written to")
    assert not (tmp_path / "out" / "ted.jsonl").exists()


def test_a_batch_log_gets_no_weight_loading_bar_before_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """stderr not a terminal: the refusal after a model load is the only line (transformers' "Loading weights"
    bar is off for the load, and on again after it)."""
    from transformers.utils import logging as hf_logging

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x04junk")
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # as in a fresh process (another test may have turned it off)
    try:
        rc = main(["run", "--encoders", "minilm", "--tasks", "ted6k-sample-action", "--limit", "1", "--extract",
                   "last", "--aggregator-file", str(bad), "--bootstrap", "0", "--null-resamples", "0",
                   "--cache-dir", str(tmp_path / "c")])
        refused(capsys, rc, "cannot be loaded as a torch file")
        assert hf_logging.is_progress_bar_enabled(), "the bar must be on again after the load"
    finally:
        if not was:
            hf_logging.disable_progress_bar()


def test_train_whose_checkpoint_fails_late_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills up when the trained head is written: `harness train` stops with one line naming the
    folder and the reason (was a warning, then a second error line)."""
    from harness.evaluation.checkpoints import CheckpointStore

    def full(self: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(CheckpointStore, "save", full)
    rc = main([*FAKE, "train", "--encoders", "fake", "--extract", "last", "--preset", "baby", "--train-pairs", "demo",
               "--max-pairs", "16", "--epochs", "1", "--ckpt-dir", str(tmp_path / "ck"),
               "--cache-dir", str(tmp_path / "cache")])
    refused(capsys, rc, "was trained but its checkpoint could not be written", "No space left on device", "--ckpt-dir")
