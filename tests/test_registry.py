"""registry.yaml / tasks/*.yaml parsing and name resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import ConfigError
from harness.data import CATEGORIES
from harness.registry import load_registry, resolve_path


def test_shipped_tasks_and_groups(registry) -> None:
    groups = registry.groups
    assert len(groups["ted6k"]) == 9 and len(groups["ted6k-sample"]) == 9
    cats = {registry.tasks[t].categories for t in groups["ted6k-sample"]}
    assert cats == {(c,) for c in CATEGORIES}
    assert registry.tasks["ted6k-sample-basic-event"].source.endswith("ted6k_sample.jsonl")


def test_unknown_encoder_did_you_mean(registry) -> None:
    with pytest.raises(ConfigError, match=r"Unknown encoder 'minlm'\. Did you mean: minilm\?"):
        registry.encoder("minlm")


def test_adhoc_encoder_family_path(registry, tmp_path: Path) -> None:
    spec = registry.encoder(f"fake:{tmp_path}")
    assert (spec.family, spec.checkpoint) == ("fake", str(tmp_path))
    with pytest.raises(ConfigError, match="Unknown encoder family 'fak'. Did you mean: fake"):
        registry.encoder("fak:/x")


def test_task_resolution_file_group_and_unknown(registry, tmp_path: Path) -> None:
    f = tmp_path / "mine.jsonl"
    f.write_text("")
    assert [t.name for t in registry.resolve_tasks([str(f)])] == ["mine"]
    assert len(registry.resolve_tasks(["ted6k-sample", "ted6k-sample-ocr"])) == 9, "duplicates must collapse"
    with pytest.raises(ConfigError, match="Did you mean: ted6k-sample"):
        registry.resolve_tasks(["ted6k-sampel"])


def test_env_var_source_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TED6K_PATH", raising=False)
    with pytest.raises(ConfigError, match="TED6K_PATH"):
        resolve_path("$TED6K_PATH")


def test_include_and_bad_entries(tmp_path: Path) -> None:
    (tmp_path / "_base.yaml").write_text("group: g\ndata: {path: x.jsonl}\n")
    (tmp_path / "t1.yaml").write_text("include: _base.yaml\ncategory: ocr\n")
    reg = load_registry([], [tmp_path], [])
    assert reg.tasks["t1"].categories == ("ocr",) and reg.groups == {"g": ["t1"]}
    bad = tmp_path / "reg.yaml"
    bad.write_text("encoders:\n  e1: {family: bert, checkpoint: x, options: {dtpye: float32}}\n")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['dtpye'\]"):
        load_registry([bad], [], [])
    bad.write_text("encoders:\n  e1: {family: bert\n")
    with pytest.raises(ConfigError, match=r"reg.yaml:\d+: not valid YAML"):
        load_registry([bad], [], [])


def test_aliases_resolve_to_the_same_checkpoint(tmp_path: Path) -> None:
    reg_file = tmp_path / "reg.yaml"
    reg_file.write_text("encoders:\n  qwen3-vl-8b-instruct:\n    family: mllm\n    checkpoint: Qwen/Qwen3-VL-8B-Instruct\n"
                        "    aliases: [qwen3-vl-8b]\n")
    reg = load_registry([reg_file], [], ["mllm"])
    assert reg.encoder("qwen3-vl-8b").checkpoint == "Qwen/Qwen3-VL-8B-Instruct"
    assert reg.encoder("qwen3-vl-8b").name == "qwen3-vl-8b"


def test_main_command_names_resolve(registry) -> None:
    """`harness run --encoders umt5,qwen3-vl-8b` is the documented main command."""
    assert registry.encoder("umt5").family == "t5"
    vl = registry.encoder("qwen3-vl-8b")
    assert (vl.family, vl.checkpoint, vl.options.template) == ("mllm", "Qwen/Qwen3-VL-8B-Instruct", "granted-caption")
