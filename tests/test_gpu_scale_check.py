"""bench/gpu_scale_check.py: the verdict table, the generator row projection, and the CPU smoke run end to end.

The script is meant for one H200 (issue 23, item 7); here its CPU-runnable parts run on tiny sizes
(``--cpu-smoke``), which checks that every section runs and prints its figures, not any number.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import gpu_scale_check as gsc  # noqa: E402


def test_project_row_keeps_setup_and_held_out_work_and_scales_the_steps() -> None:
    """20 steps: the first ends at 5.0 s (setup + a slow first step), then one every 0.1 s; 3 s of held-out
    work after the last.  Steady rate 0.1 s; the rest is 4.9 s (setup beyond one step) + 3 s = 7.9 s."""
    marks = tuple([5.0] + [5.0 + 0.1 * i for i in range(1, 20)])
    run = gsc.GeneratorRun(seconds=marks[-1] + 3.0, steps=20, step_times=marks, scenes=4224, scene_s=0.001)
    p = gsc.project_row(run, full_steps=12_000, full_scenes=20_512)
    assert p["per_step_s"] == pytest.approx(0.1) and p["skipped_steps"] == 11, "the rate from steps 12..20"
    assert p["rest_s"] == pytest.approx(7.9), "setup, the slow first step and the held-out work are kept"
    assert p["train_min"] == pytest.approx(20.0), "12,000 steps at 0.1 s"
    assert p["extra_scenes_s"] == pytest.approx(16.288), "16,288 more scenes at 1 ms"
    assert p["row_min"] == pytest.approx((7.9 + 1200 + 16.288) / 60)
    few = gsc.project_row(gsc.GeneratorRun(seconds=1.0, steps=1, step_times=(0.5,), scenes=10, scene_s=0.0),
                          full_steps=100, full_scenes=10)
    assert math.isnan(few["row_min"]), "one step measures no rate"


def test_verdicts_pass_fail_and_not_checked() -> None:
    v = gsc.Verdicts()
    assert v.check("ratio", 1.10, at_most=1.15) and not v.check("feed", 0.84, at_least=0.85)
    assert not v.check("nan", math.nan, at_most=1.0), "a figure that was not measured cannot pass"
    v.missing("row", "<= 10.00", "not run (ImportError: diffusers)")
    assert [line.split()[0] for line in v.lines()] == ["PASS", "FAIL", "FAIL", "NOT"]
    assert v.lines()[1] == "FAIL         feed: 0.84  (target >= 0.85)"
    assert v.status(smoke=False) == 1 and v.status(smoke=True) == 0, "smoke: numbers measure nothing"
    ok = gsc.Verdicts()
    ok.check("ratio", 1.0, at_most=1.15)
    assert ok.status(smoke=False) == 0
    ok.missing("row", "<= 10.00", "why")
    assert ok.status(smoke=False) == 1, "a target that was not checked is not a pass"
    assert gsc.Verdicts().status(smoke=False) == 1, "nothing checked is not a pass"


def test_only_names_sections(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        gsc.parse_args(["--only", "features,gpus"])
    assert exc.value.code == 2 and "sections are ceilings, features, training, generator, generator-full" in capsys.readouterr().err
    args = gsc.parse_args(["--cpu-smoke", "--only", "training"])
    assert args.sections == ["training"] and args.device == "cpu" and args.feed_widths == [64, 96]
    assert gsc.parse_args([]).feed_widths == [2560, 4096] and gsc.parse_args([]).device == "cuda"


def test_a_section_that_breaks_is_not_checked_and_the_rest_runs(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("CUDA error: out of memory\nmore")

    monkeypatch.setattr(gsc, "training_feed", broken)
    assert gsc.main(["--cpu-smoke", "--only", "ceilings,training"]) == 1, "a section that could not run fails"
    out = capsys.readouterr().out
    assert "== ceilings ==" in out and "written + fsync" in out, "the other sections still run"
    for width in (2560, 4096):
        for feed in ("RAM", "cache"):
            line = f"NOT CHECKED  training feed at width {width}: {feed} / GPU-resident steps/s: not run " \
                   "(RuntimeError: CUDA error: out of memory)  (target >= 0.85)"
            assert line in out, out


@pytest.mark.slow
def test_cpu_smoke_runs_the_features_and_training_sections(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    """Every figure of the feature pass and the training feed is printed, each target gets a verdict."""
    rc = gsc.main(["--cpu-smoke", "--only", "ceilings,features,training", "--tmp-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    for row in ("| raw |", "| harness, cache, fsync group |", "| harness, fsync none |", "| harness, no cache (RAM) |",
                "| learned stack (4 layers, 8 texts, batch 32) |", "raw forward: 48 texts", "written + fsync",
                "| 64 | GPU-resident |", "| 64 | RAM |", "| 64 | cache |", "| 96 | cache |", "| 128 | GPU-resident |"):
        assert row in out, f"{row!r} missing:\n{out}"
    verdicts = out[out.index("== verdicts"):].splitlines()[1:-1]
    assert len(verdicts) == 2 + 4, verdicts
    assert all(v.split()[0] in ("PASS", "FAIL") for v in verdicts), verdicts
    assert sum("training feed at width" in v for v in verdicts) == 4, "no verdict at the --info-widths"
    assert "| 128 | RAM |" not in out
    assert list(tmp_path.iterdir()) == [], "the model folders and caches are removed"


@pytest.mark.slow
def test_cpu_smoke_runs_the_generator_section(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("diffusers")
    assert gsc.main(["--cpu-smoke", "--only", "generator,generator-full"]) == 0
    out = capsys.readouterr().out
    for row in ("| per step (after the first ", "steps (the gpu config) |", "| **row, projected** |"):
        assert row in out, out
    assert "toy-t2i gpu row, projected minutes" in out
    # each speed setting timed apart, one table row each (their ms are CPU noise here)
    for label, _ in gsc.GEN_VARIANTS:
        assert sum(line.startswith(f"| {label} | ") and line.endswith(" min |") for line in out.splitlines()) == 1, label
    # generator-full: both configs' rows on the same held-out prompts, and both of its verdicts
    assert "| cpu | " in out and "| gpu | " in out
    assert "toy-t2i gpu row, measured minutes" in out and "checker-acc - cpu row's" in out


def test_step_seconds_skips_the_warm_up() -> None:
    marks = [0.0, 5.0, 5.5, 6.0, 6.5]  # a slow first step (compiling), then 0.5 s each
    assert gsc.step_seconds(marks, 1) == pytest.approx(0.5)
    assert gsc.step_seconds(marks, 0) == pytest.approx(6.5 / 4)
    assert math.isnan(gsc.step_seconds([1.0], 0))


@pytest.mark.parametrize("flag", ["--gen-steps", "--gen-variant-steps"])
def test_fewer_than_two_generator_steps_is_refused(flag: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        gsc.parse_args([flag, "1"])
    assert exc.value.code == 2
    assert "is not a step count >= 2" in capsys.readouterr().err
    assert gsc.parse_args([flag, "2"]) is not None
