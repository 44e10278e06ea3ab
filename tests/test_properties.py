"""Issue 21, "Done when": a property-based test (`hypothesis`) of the CLI's promise for every option value.

``harness run`` (the fake encoder on the tiny task, mean-pool, no cache, no bootstrap), ``harness validate``,
``harness list`` and ``harness report`` are driven through `harness.cli.main.main` with generated option
values: integers at and beyond their bounds, floats including inf and nan, empty and comma strings, paths to
files, folders and nowhere.  Whatever the values, the command exits 0 or 2; on 2 stderr holds exactly one
``error:`` line; nothing raises (no traceback); no temporary file is left behind; an output written on
exit 0 is whole; and each call ends within a time bound.  Examples are few and derandomized, so CI sees the
same cases every time and the file runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli.main import main

FAKE = ["-p", "harness.testing"]
BASE = ["--encoders", "fake", "--aggregator", "mean-pool", "--tasks", "tiny", "--no-cache", "--bootstrap", "0",
        "--null-resamples", "0", "--extract", "last"]
SECONDS = 30.0  # one call, whatever its values
# HARNESS_PROPERTY_EXAMPLES=500 HARNESS_PROPERTY_RANDOM=1 for a deeper, random search locally; CI runs the default.
SETTINGS = settings(max_examples=int(os.environ.get("HARNESS_PROPERTY_EXAMPLES", "40")), deadline=None,
                    derandomize=not os.environ.get("HARNESS_PROPERTY_RANDOM"), database=None,
                    suppress_health_check=[HealthCheck.too_slow])

ROW = {"id": "r0", "category": "spatial", "caption": "A cup left of a bowl.", "positive": "Cup left of bowl.",
       "negatives": ["Cup right of bowl.", "Bowl left of cup."], "caption_type": "image"}

# ------------------------------------------------------------------------------------------ values

# Integers at and beyond the bounds the CLI promises (harness.cli.argtypes), and small ones that run.
INTS = st.one_of(st.sampled_from([-(2**63), -1, 0, 1, 2, 3, 65536, 65537, 100_000, 100_001, 2**32 - 1, 2**32,
                                  10**20, 10**4000]),
                 st.integers(min_value=-3, max_value=3))
SMALL_INTS = st.one_of(st.sampled_from([-1, 0, 10**20, 100_001, 2**32]), st.integers(min_value=0, max_value=3))
FLOATS = st.one_of(st.sampled_from(["inf", "-inf", "nan", "1e999", "-0.0", "0", "1e-300"]),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr))
STRINGS = st.sampled_from(["", " ", ",", ",,", "a,", ",a", "x y", "-", "--", "{", "{text}", "{0}", "auto", "é",
                           "\t", "0x10", "1_000", "+1", "1.5", "١"])


def _text_of(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    return values.map(str)


ANY_VALUE = st.one_of(_text_of(INTS), FLOATS, STRINGS)
PATH_KINDS = ("file", "data", "gzip", "latin1", "empty", "dir", "nowhere", "under-file", "blank", "yaml",
              "results", "pairs")
PATHS = st.sampled_from(PATH_KINDS)


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One path of each kind the paths strategy names (``blank``: the empty string)."""
    root = tmp_path_factory.mktemp("places")
    (root / "file.txt").write_text("not data\n", encoding="utf-8")
    (root / "data.jsonl").write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    (root / "data.jsonl.gz").write_bytes(gzip.compress((json.dumps(ROW) + "\n").encode()))
    (root / "latin1.jsonl").write_bytes(json.dumps(ROW).replace("cup", "caf\u00e9").encode("latin-1")
                                        .replace(b"\\u00e9", b"\xe9") + b"\n")
    (root / "empty.jsonl").write_bytes(b"")
    (root / "dir").mkdir()
    (root / "task.yaml").write_text("data:\n  path: data.jsonl\n", encoding="utf-8")
    (root / "pairs.jsonl").write_text("".join(json.dumps({"a": f"A cat {i}.", "b": f"A feline {i}.", "group": str(i)})
                                              + "\n" for i in range(3)), encoding="utf-8")
    results = root / "results"
    assert main([*FAKE, "run", *BASE, "--output", str(results)]) == 0
    return {"file": str(root / "file.txt"), "data": str(root / "data.jsonl"), "gzip": str(root / "data.jsonl.gz"),
            "latin1": str(root / "latin1.jsonl"), "empty": str(root / "empty.jsonl"), "dir": str(root / "dir"),
            "nowhere": str(root / "no" / "such" / "place"), "under-file": str(root / "file.txt" / "x"), "blank": "",
            "yaml": str(root / "task.yaml"), "results": str(results), "pairs": str(root / "pairs.jsonl")}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scratch")


# ------------------------------------------------------------------------------------------ the promise


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def _check(argv: Sequence[str], watch: Sequence[Path] = ()) -> int:
    """Run ``harness ARGV``; assert the promise (exit 0 or 2, one error line on 2, no temp files under
    ``watch``, within `SECONDS`); return the exit status."""
    t0 = time.monotonic()
    with _captured() as (_, err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse's exit (its own one-line error, see harness.cli.main._Parser)
            rc = exc.code if isinstance(exc.code, int) else 2
    took = time.monotonic() - t0
    text = err.getvalue()
    shown = f"harness {' '.join(map(repr, argv))}\nexit {rc}, stderr:\n{text}"
    assert rc in (0, 2), shown
    assert "Traceback" not in text, shown
    if rc == 2:
        lines = text.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert took < SECONDS, f"{took:.1f}s: {shown}"
    for folder in watch:
        left = [p for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
        assert not left, f"temporary files left: {left}\n{shown}"
    return rc


def _flags(chosen: dict[str, Any], places: dict[str, str]) -> list[str]:
    argv: list[str] = []
    for flag, value in chosen.items():
        if isinstance(value, tuple):  # ("path", kind)
            value = places[value[1]]
        argv += [flag, str(value)]
    return argv


def _path(kind: st.SearchStrategy[str] = PATHS) -> st.SearchStrategy[tuple[str, str]]:
    return kind.map(lambda k: ("path", k))


# ------------------------------------------------------------------------------------------ harness run

RUN_OPTIONS = {
    "--limit": _text_of(INTS),
    "--seeds": st.one_of(_text_of(SMALL_INTS), STRINGS, st.lists(SMALL_INTS, min_size=1, max_size=3)
                         .map(lambda xs: ",".join(map(str, xs)))),
    "--null-resamples": _text_of(SMALL_INTS),
    "--bootstrap": _text_of(SMALL_INTS),
    "--batch-size": st.one_of(_text_of(INTS), STRINGS),
    "--max-length": _text_of(INTS),
    "--drop-prefix-tokens": _text_of(INTS),
    "--cache-budget": st.one_of(STRINGS, st.sampled_from(["0", "500M", "1.5T", "4GiB", "1e999", "9" * 400, "-1G",
                                                          "1iB"])),
    "--extract": st.one_of(STRINGS, st.sampled_from(["last", "penultimate", "avg", "norm-avg:rms", "last,last",
                                                     "learned", "all-layers"]),
                           _text_of(INTS).map(lambda k: f"layer:{k}")),
    "--template": st.one_of(STRINGS, st.sampled_from(["plain", "chat", "Caption: {text}", "{text} {caption_type}",
                                                      "{text} {nope}"])),
    "--lr": FLOATS, "--epochs": _text_of(INTS), "--temperature": FLOATS, "--dim-out": _text_of(INTS),
    "--heads": _text_of(INTS), "--layer-lr": FLOATS, "--max-pairs": _text_of(INTS),
    "--output": _path(), "--tasks": st.one_of(STRINGS, _path(), st.just("tiny,tiny")),
    "--layer-weights-file": _path(), "--train-pairs": st.one_of(_path(), STRINGS),
    "--include-path": _path(), "--ckpt-dir": _path(), "--cache-dir": _path(),
    "--device": st.sampled_from(["cpu", "", "cuda:99", "x", "cpu:0"]),
}


@SETTINGS
@given(chosen=st.fixed_dictionaries({}, optional=RUN_OPTIONS))
def test_run_options(places: dict[str, str], scratch: Path, chosen: dict[str, Any]) -> None:
    argv = [*FAKE, "run", *BASE, *_flags(chosen, places)]
    out = Path(places["dir"]) if chosen.get("--output") == ("path", "dir") else None
    try:
        rc = _check(argv, watch=[Path(places["dir"]), scratch])
        if rc == 0 and out is not None:
            json.loads((out / "results.json").read_text(encoding="utf-8"))  # whole, not half-written
    finally:  # "nowhere" stays nowhere for the next example (an --output or --cache-dir may create it)
        shutil.rmtree(Path(places["nowhere"]).parents[1], ignore_errors=True)


# ------------------------------------------------------------------------------------------ validate, list


@SETTINGS
@given(kind=PATHS, pairs=st.booleans(), include=st.one_of(st.none(), _path()))
def test_validate(places: dict[str, str], kind: str, pairs: bool, include: tuple[str, str] | None) -> None:
    argv = [*FAKE, "validate", places[kind], *(["--pairs"] if pairs else [])]
    if include is not None:
        argv += ["--include-path", places[include[1]]]
    _check(argv)


@SETTINGS
@given(what=st.one_of(st.sampled_from(["encoders", "tasks", "pairs", "extractors", "aggregators", "baselines",
                                       "scorers", "plugins", "families", "llm-backends", "categories"]), STRINGS),
       include=st.lists(_path(), max_size=2))
def test_list(places: dict[str, str], what: str, include: list[tuple[str, str]]) -> None:
    argv = [*FAKE, "list", what]
    for _, kind in include:
        argv += ["--include-path", places[kind]]
    _check(argv)


# ------------------------------------------------------------------------------------------ report

REPORT_OPTIONS = {
    "--baseline": st.one_of(STRINGS, st.sampled_from(["fake/last/mean-pool", "a/b", "a/b/c/d", "//"])),
    "--title": st.one_of(STRINGS, st.just("<b>x</b> & [bold]y[/bold]")),
    "--downstream": st.one_of(_path(), STRINGS, st.just("pkg:harness_tasks/data/downstream_paper.csv")),
    "--aggregator": st.one_of(STRINGS, st.just("mean-pool")),
    "--task": st.one_of(STRINGS, st.just("tiny")),
    "--n-boot": _text_of(SMALL_INTS),
    "--seed": _text_of(INTS),
}


@SETTINGS
@given(results=st.lists(PATHS, min_size=1, max_size=2), out=st.one_of(_path(), st.just(("new", ""))),
       chosen=st.fixed_dictionaries({}, optional=REPORT_OPTIONS))
def test_report(places: dict[str, str], scratch: Path, results: list[str], out: tuple[str, str],
                chosen: dict[str, Any]) -> None:
    target = scratch / "report" if out[0] == "new" else Path(places[out[1]])
    argv = ["report", *(places[k] for k in results), "--out", str(target) if out[0] == "new" else places[out[1]],
            *_flags(chosen, places)]
    rc = _check(argv, watch=[scratch, Path(places["dir"])])
    if rc == 0 and out[0] == "new":
        assert (target / "report.md").is_file() and (target / "report.html").is_file()
    if out[0] == "new":
        shutil.rmtree(target, ignore_errors=True)


# ------------------------------------------------------------------------------------------ run: encoders, run files

ENCODER_SPECS = st.sampled_from(["fake", "fake[max_length=2]", "fake[]", "fake[max_length=0]", "fake[dtyp=x]",
                                 "fake[max_length=2,name=a],fake[name=a]", "fake[template='{text}, x']",
                                 "fake[dtype=float32", "fake]", "[name=x]", "fake[revision=]", "fake,fake[name=b]",
                                 "fake[include_embedding=maybe]", "fake[device=cuda:99]", "fake[max_length=1e3]"])
RUN_FILE_LINES = st.sampled_from(["seeds: [0, 1]", "seeds: x", "lr: .nan", "lr: 1e-3", "bootstrap: 2",
                                  "frobnicate: 1", "extract: [last, avg]", "extract: []", "retrain: maybe",
                                  "encoders: 'fake[max_length=3]'", "- a", "limit: {a: 1}", "tasks: ''", "[", "~"])


@SETTINGS
@given(encoders=st.one_of(ENCODER_SPECS, STRINGS), lines=st.lists(RUN_FILE_LINES, max_size=3),
       with_file=st.booleans())
def test_run_encoder_settings_and_run_files(places: dict[str, str], scratch: Path, encoders: str, lines: list[str],
                                            with_file: bool) -> None:
    argv = [*FAKE, "run", *BASE, "--encoders", encoders]
    if with_file:
        cfg = scratch / "run.yaml"
        cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
        argv += ["--config", str(cfg)]
    _check(argv, watch=[scratch])


# ------------------------------------------------------------------------------------------ correlate, pairs, results

CORRELATE_OPTIONS = {
    "--downstream": st.one_of(_path(), STRINGS, st.just("pkg:harness_tasks/data/downstream_paper.csv")),
    "--aggregator": st.one_of(STRINGS, st.just("mean-pool")),
    "--task": st.one_of(STRINGS, st.just("tiny")),
    "--n-boot": _text_of(INTS),
    "--seed": _text_of(INTS),
    "--out": st.one_of(_path(), st.just(("path", "blank"))),
}


@SETTINGS
@given(results=st.lists(PATHS, max_size=2), chosen=st.fixed_dictionaries({}, optional=CORRELATE_OPTIONS))
def test_correlate(places: dict[str, str], scratch: Path, results: list[str], chosen: dict[str, Any]) -> None:
    _check(["correlate", *(places[k] for k in results), *_flags(chosen, places)], watch=[scratch])


PAIRS_OPTIONS = {
    "--caption-column": st.one_of(STRINGS, st.sampled_from(["caption", "a", "positive", "negatives"])),
    "--id-column": st.one_of(STRINGS, st.sampled_from(["id", "category"])),
    "--caption-type": st.one_of(STRINGS, st.sampled_from(["image", "video"])),
    "--caption-type-column": st.one_of(STRINGS, st.just("caption_type")),
    "--max-per-item": _text_of(INTS),
    "--split": st.one_of(STRINGS, st.sampled_from(["train", "test"])),
}


@SETTINGS
@given(source=PATHS, out=st.one_of(_path(), st.just(("new", ""))),
       chosen=st.fixed_dictionaries({}, optional=PAIRS_OPTIONS))
def test_pairs(places: dict[str, str], scratch: Path, source: str, out: tuple[str, str], chosen: dict[str, Any]) -> None:
    pytest.importorskip("datasets")
    target = str(scratch / "pairs.jsonl") if out[0] == "new" else places[out[1]]
    rc = _check(["pairs", places[source], "--out", target, *_flags(chosen, places)], watch=[scratch])
    if rc == 0 and out[0] == "new":
        for line in Path(target).read_text(encoding="utf-8").splitlines():
            assert set(json.loads(line)) >= {"a", "b"}
        Path(target).unlink()


@SETTINGS
@given(results=st.lists(PATHS, min_size=1, max_size=2), csv=st.one_of(st.none(), _path(), st.just(("new", ""))))
def test_results_table(places: dict[str, str], scratch: Path, results: list[str],
                       csv: tuple[str, str] | None) -> None:
    argv = ["results", *(places[k] for k in results)]
    target = None
    if csv is not None:
        target = str(scratch / "rows.csv") if csv[0] == "new" else places[csv[1]]
        argv += ["--csv", target]
    rc = _check(argv, watch=[scratch])
    if rc == 0 and csv is not None and csv[0] == "new":
        assert Path(target or "").read_text(encoding="utf-8").startswith("run,") or Path(target or "").stat().st_size
        Path(target or "").unlink()


# ------------------------------------------------------------------------------------------ score

SCORE_INTS = st.one_of(st.sampled_from(["-1", "0", "x", "1.5", str(10**20), str(2**32), "", "nan"]),
                       st.integers(min_value=1, max_value=3).map(str))
SCORE_OPTIONS = st.lists(st.one_of(
    st.tuples(st.sampled_from(["steps", "n1", "batch", "n_train", "n_heldout", "sample_steps", "image_size"]),
              SCORE_INTS),
    st.tuples(st.sampled_from(["lr", "guidance", "cond_drop"]), FLOATS),
    st.tuples(st.sampled_from(["layer_weights", "channels", "stepz", ""]), STRINGS)), max_size=3)


@settings(max_examples=min(15, SETTINGS.max_examples), deadline=None, derandomize=SETTINGS.derandomize,
          database=None, suppress_health_check=[HealthCheck.too_slow])
@given(results=st.lists(PATHS, max_size=1), scorer=st.one_of(STRINGS, st.sampled_from(
           ["toy-t2i:smoke", "toy-t2i:nope", "recorded", "recorded:x.csv", "nope"])),
       options=SCORE_OPTIONS, rows=st.one_of(st.none(), STRINGS, st.just("fake/last")))
def test_score(places: dict[str, str], scratch: Path, results: list[str], scorer: str,
               options: list[tuple[str, str]], rows: str | None) -> None:
    out = scratch / "score"
    given = dict(options)  # one value per key (a key twice is its own refusal, tested elsewhere)
    given.setdefault("steps", "2")  # small unless generated
    given.setdefault("n1", "1")
    argv = [*FAKE, "score", *(places[k] for k in results), "--scorer", scorer, "--out", str(out)]
    for key, value in given.items():
        argv += ["-O", f"{key}={value}"]
    if rows is not None:
        argv += ["--rows", rows]
    try:
        _check(argv, watch=[scratch])
    finally:
        shutil.rmtree(out, ignore_errors=True)


# ------------------------------------------------------------------------------------------ train, build-data, check

TRAIN_OPTIONS = {k: v for k, v in RUN_OPTIONS.items()
                 if k not in ("--limit", "--output", "--tasks", "--null-resamples", "--bootstrap", "--seeds")}


@SETTINGS
@given(chosen=st.fixed_dictionaries({}, optional=TRAIN_OPTIONS))
def test_train_options(places: dict[str, str], scratch: Path, chosen: dict[str, Any]) -> None:
    base = ["--encoders", "fake", "--extract", "last", "--preset", "baby", "--epochs", "1", "--no-cache",
            "--train-pairs", places["pairs"], "--ckpt-dir", str(scratch / "ck")]
    try:
        _check([*FAKE, "train", *base, *_flags(chosen, places)], watch=[scratch, Path(places["dir"])])
    finally:
        shutil.rmtree(Path(places["nowhere"]).parents[1], ignore_errors=True)
        shutil.rmtree(scratch / "ck", ignore_errors=True)


BUILD_OPTIONS = {
    "--types": st.one_of(STRINGS, st.sampled_from(["action", "action,spatial", "nope", "action,action"])),
    "--caption-column": st.one_of(STRINGS, st.just("caption")),
    "--caption-type": st.one_of(STRINGS, st.sampled_from(["image", "video"])),
    "--concurrency": _text_of(INTS), "--max-retries": st.sampled_from(["0", "-1", "x", str(10**20)]),
    "--max-reasks": _text_of(SMALL_INTS), "--temperature": FLOATS, "--max-caption-chars": _text_of(INTS),
    "--usd-per-m-prompt": FLOATS, "--model": st.one_of(STRINGS, st.just("m")),
    "--positive-prompt": _path(), "--apply-review": _path(), "--llm-cache": _path(),
}


@SETTINGS
@given(source=st.one_of(st.none(), PATHS), out=st.one_of(_path(), st.just(("new", ""))),
       chosen=st.fixed_dictionaries({}, optional=BUILD_OPTIONS))
def test_build_data(places: dict[str, str], scratch: Path, source: str | None, out: tuple[str, str],
                    chosen: dict[str, Any]) -> None:
    target = str(scratch / "built") if out[0] == "new" else places[out[1]]
    chosen.setdefault("--max-retries", "0")  # nothing listens on the URL: every request fails at once
    argv = ["build-data", *([places[source]] if source else []), "--out", target,
            "--llm-base-url", "http://127.0.0.1:9/v1", "--llm-api-key", "x", *_flags(chosen, places)]
    try:
        _check(argv, watch=[scratch, Path(places["dir"])])
    finally:
        shutil.rmtree(scratch / "built", ignore_errors=True)
        shutil.rmtree(Path(places["nowhere"]).parents[1], ignore_errors=True)


@SETTINGS
@given(target=st.one_of(PATHS.map(lambda k: ("path", k)), st.sampled_from(["harness.testing", "nope.module", "-",
                                                                            "harness_plugins.data"])),
       chosen=st.fixed_dictionaries({}, optional={"--encoder": STRINGS, "--row": STRINGS, "--option": STRINGS}))
def test_check(places: dict[str, str], target: Any, chosen: dict[str, Any]) -> None:
    name = places[target[1]] if isinstance(target, tuple) else target
    _check(["check", name, *_flags(chosen, places)])
