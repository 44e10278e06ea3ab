"""CLI boundary: --output checked before any work, late write failures keep the results."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from harness.cli.main import main  # noqa: E402

FAKE = ["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--aggregator", "mean-pool",
        "--bootstrap", "0"]


@pytest.mark.parametrize("where", ["file", "/proc/harness-x", "/dev/null/x"], ids=["existing-file", "proc", "dev-null"])
def test_bad_output_fails_before_any_work(tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json" if where == "file" else Path(where)
    if where == "file":
        out.write_text("{}")
    cache = tmp_path / "cache"
    assert main([*FAKE, "--cache-dir", str(cache), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--output" in err, err
    assert not cache.exists(), "the run started before --output was checked"


def test_late_write_failure_keeps_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import harness.evaluation.results as results

    real = results._atomic_write
    target = tmp_path / "out"

    def full_disk(path: Path, text: str) -> None:
        if Path(path).parent == target:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, text)

    monkeypatch.setattr(results, "_atomic_write", full_disk)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert main([*FAKE, "--output", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "kept in" in err and len(err.splitlines()) == 1, err
    kept = Path(err.split("kept in ")[1].strip("'\" "))
    assert json.loads((kept / "results.json").read_text())["scores"], "results were lost"
    assert not [p for p in target.iterdir() if p.name.startswith(".")], "temp files left in --output"


def test_bootstrap_zero_prints_no_interval_and_tasks_have_short_names(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from harness.registry import resolve_path

    data = tmp_path / "my_set.jsonl"
    data.write_text(Path(resolve_path("pkg:harness/testing_data/tiny.jsonl")).read_text())
    out = tmp_path / "out"
    argv = ["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", str(data), "--aggregator", "mean-pool",
            "--extract", "last,norm-avg", "--bootstrap", "0", "--output", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "my_set: accuracy" in printed and str(tmp_path) not in printed.split("wrote")[0], "task named by its path"
    assert "95% CI" not in printed and "p (McNemar)" in printed
    comp = json.loads((out / "results.json").read_text())["comparisons"][0]
    assert comp["ci_low"] is None and comp["p_bootstrap"] is None and comp["n_resamples"] == 0


def test_format_p_never_prints_zero() -> None:
    from harness.report.tables import format_p

    assert format_p(0.0, resolution=1e-3) == "< 1e-3"
    assert format_p(2e-5) == "< 1e-3" and format_p(0.0413) == "0.0413" and format_p(None) == "-"


@pytest.mark.parametrize(("args", "needle"), [
    (["--device", "bogus"], "is not a device"),
    (["--device", "cuda"], "no CUDA device"),
    (["--template", "{foo} {text}"], "not a valid format string"),
    (["--template", "Caption: {txt"], "not a valid format string"),
    (["--template", "no placeholder"], "has no {text} placeholder"),
    (["--layer-weights-file", "/nonexistent/w.json"], "does not exist"),
], ids=["device-bogus", "device-cuda", "template-key", "template-brace", "template-no-text", "weights-file"])
def test_bad_flags_fail_before_loading(args: list[str], needle: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if args[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    cache = tmp_path / "cache"
    assert main([*FAKE, "--cache-dir", str(cache), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and not cache.exists(), err


def test_registry_include_embedding_is_applied_and_the_flag_wins(tmp_path: Path) -> None:
    reg = tmp_path / "reg.yaml"
    reg.write_text("encoders:\n  fake-noemb:\n    family: fake\n    checkpoint: seed-0\n"
                   "    options: {max_length: 64, include_embedding: false}\n")
    base = ["-p", "harness.testing", "--registry", str(reg), "run", "--encoders", "fake-noemb", "--tasks", "tiny",
            "--aggregator", "mean-pool", "--extract", "norm-avg", "--bootstrap", "0"]

    def view(*extra: str) -> str:
        out = tmp_path / f"out{len(extra)}"
        assert main([*base, *extra, "--output", str(out)]) == 0
        return json.loads((out / "results.json").read_text())["provenance"]["encoders"]["fake-noemb"][
            "extractors"]["norm-avg"]["view"]

    assert view() == "mean:layernorm:1,2,3", "the registry entry's include_embedding: false was ignored"
    assert view("--include-embedding") == "mean:layernorm:0,1,2,3", "--include-embedding must override the entry"


def test_no_trust_remote_code_overrides_the_registry() -> None:
    from harness.cli.main import _registry, build_parser
    from harness.cli.run_args import encoder_specs as _encoder_specs
    from harness.plugins import get_plugin_manager

    pm = get_plugin_manager([])
    reg = _registry(pm, [])
    args = build_parser().parse_args(["run", "--encoders", "ovis-2.5-9b", "--no-trust-remote-code"])
    (spec,) = _encoder_specs(reg, args)
    assert spec.options.trust_remote_code is False and spec.revision and len(spec.revision) == 40
    (spec,) = _encoder_specs(reg, build_parser().parse_args(["run", "--encoders", "ovis-2.5-9b"]))
    assert spec.options.trust_remote_code is True


def test_every_hub_checkpoint_in_the_registry_is_pinned() -> None:
    from harness.cli.main import _registry
    from harness.plugins import get_plugin_manager

    reg = _registry(get_plugin_manager([]), [])
    for name, spec in reg.encoders.items():
        hub = "/" in spec.checkpoint and not spec.checkpoint.startswith(("/", "pkg:", "$"))
        if hub:
            assert spec.revision and len(spec.revision) == 40 and spec.revision != "main", f"{name} is not pinned"


def test_plain_progress_lines_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    import harness.cli.progress as cli

    console = Console(file=__import__("io").StringIO(), force_terminal=False, width=120)
    clock = iter([0.0, 1.0, 6.0, 7.0, 8.0])
    monkeypatch.setattr(cli.time, "monotonic", lambda: next(clock))
    with cli.progress_bars(console) as make:
        bar = make("encoding", 30)
        bar.advance(10)  # t=1: too soon
        bar.advance(10)  # t=6: a line
        bar.advance(5)   # t=7: too soon
        bar.advance(5)   # t=8: finished, a line
    lines = console.file.getvalue().splitlines()
    assert lines == ["encoding: 20/30 (67%) 6s", "encoding: 30/30 (100%) 8s"], lines
