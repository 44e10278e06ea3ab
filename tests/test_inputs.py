"""Fuzz the loaders: a malformed data file is one ``error:`` line and exit 2, never a traceback.

Valid records of each format (TED JSONL, official TED-6K JSON, caption pairs) are mutated
deterministically (``random.Random(0)``): every field gets wrong types, nulls, empty strings,
nested garbage, lone surrogates and huge numbers, or is removed; whole lines become non-objects,
truncated text or binary garbage; files get BOMs, Latin-1 bytes and gzip.  Each case carries the
exit status a small oracle, written from the README's format description, expects (None: either).
`harness validate` must give it, and a sample through `harness run` must agree with validate.
"""

from __future__ import annotations

import copy
import gzip
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.cli.main import main

RNG = random.Random(0)


class Raw:
    """A JSON literal that ``json.dumps`` cannot write itself (huge or deep numbers, NaN)."""

    def __init__(self, text: str, value: Any) -> None:
        self.text, self.value = text, value  # ``value``: what a JSON parser would make of it, for the oracle

    def __repr__(self) -> str:
        return f"Raw({self.text[:12]}...)"


TOO_DEEP = object()  # parsed value of a Raw nested past the parser's limit: never valid
# Nesting past every interpreter's limit for json's C parser: 1,000 on Python 3.11 (the recursion limit),
# 8,000-10,000 on 3.12/3.13 (a C recursion limit of its own), the C stack on 3.14.  At 3,000 (as it once was)
# a 3.12+ interpreter parses it, and a deep value in a field nobody reads is then a valid file.
DEEP = 100_000
TOO_BIG = object()  # parsed value of an integer over 4300 digits: never valid


def _garbage(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: nested lists/objects of random leaves."""
    leaves: list[Any] = [None, True, 0, -7, 2.5, "", "x", "\u2028", "\x00", "[/]"]
    if depth >= 3 or rng.random() < 0.3:
        return rng.choice(leaves)
    if rng.random() < 0.5:
        return [_garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["a", "b", "caption", "id", ""]): _garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))}


BAD_VALUES: list[Any] = [
    42, -1, 0, 1.5, 10**30, None, True, False, "", "   \t", "\ud800", "ok \udfff", "x" * 5000, "[bold]x[/]",
    [], {}, ["x"], [1, None], {"a": [{"b": None}]},
    Raw("9" * 5000, TOO_BIG), Raw("1e999", float("inf")), Raw("NaN", float("nan")), Raw("-Infinity", float("-inf")),
    Raw("[" * DEEP + "]" * DEEP, TOO_DEEP),
    *(_garbage(RNG) for _ in range(4)),
]


def _dumps(obj: Any) -> str:
    """``json.dumps`` that writes `Raw` values as their literal text."""
    raws: list[Raw] = []

    def swap(o: Any) -> Any:
        if isinstance(o, Raw):
            raws.append(o)
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(o, dict):
            return {k: swap(v) for k, v in o.items()}
        if isinstance(o, list):
            return [swap(v) for v in o]
        return o

    text = json.dumps(swap(obj))
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@RAW{i}@@"', raw.text)
    return text


def _parsed(v: Any) -> Any:
    return v.value if isinstance(v, Raw) else v


def _deep_has(v: Any, bad: object) -> bool:
    v = _parsed(v)
    if v is bad:
        return True
    if isinstance(v, dict):
        return any(_deep_has(x, bad) for x in v.values())
    if isinstance(v, list):
        return any(_deep_has(x, bad) for x in v)
    return False


def _unparseable(doc: Any) -> bool:
    return _deep_has(doc, TOO_DEEP) or _deep_has(doc, TOO_BIG)


def _has_surrogate(v: Any) -> bool:
    v = _parsed(v)
    if isinstance(v, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in v)
    if isinstance(v, dict):
        return any(_has_surrogate(k) or _has_surrogate(x) for k, x in v.items())
    if isinstance(v, list):
        return any(_has_surrogate(x) for x in v)
    return False


def _text_ok(v: Any) -> bool:
    v = _parsed(v)
    return isinstance(v, str) and bool(v.strip())


def _caption_type_ok(v: Any) -> bool:  # absent (image) or exactly image / video
    return _parsed(v) is None or _parsed(v) in ("image", "video")


def _label_ok(v: Any) -> bool:  # ids and groups: absent, a non-empty string or an integer
    v = _parsed(v)
    return v is None or _text_ok(v) or (isinstance(v, int) and not isinstance(v, bool))


@dataclass
class Case:
    id: str
    name: str  # the file name (its suffix picks the format)
    data: bytes
    expect: int | None  # 0 valid, 2 rejected, None either


# --- TED JSONL instances --------------------------------------------------------------------------

ROWS = [
    {"id": "x1", "category": "spatial", "caption": "A cup left of a bowl.", "positive": "Cup left of bowl.",
     "negatives": ["Cup right of bowl."]},
    {"id": 7, "category": "Basic Event", "caption": "A man runs.", "positive": "He runs.",
     "negatives": ["He sits.", "He swims.", "He naps."], "caption_type": "video"},
]
_INSTANCE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "id": _label_ok, "category": _text_ok, "caption": _text_ok, "positive": _text_ok,
    "negatives": lambda v: isinstance(_parsed(v), list) and bool(v) and all(_text_ok(x) for x in v),
    "caption_type": _caption_type_ok,
}


def _instance_ok(rec: dict[str, Any]) -> bool:
    required = {"category", "caption", "positive", "negatives"}
    return required <= set(rec) and all(check(rec.get(k)) for k, check in _INSTANCE_CHECKS.items())


def _jsonl(rows: list[Any]) -> bytes:
    return "".join(_dumps(r) + "\n" for r in rows).encode()


def _doc_expect(doc: Any, ok: bool) -> int:
    return 2 if _unparseable(doc) or _has_surrogate(doc) or not ok else 0


def _line_cases(kind: str, name: str, rows: list[Any], rng: random.Random) -> Iterator[Case]:
    """Whole-line and whole-file damage that applies to every JSONL format."""
    good = _jsonl(rows)
    line2 = _dumps(rows[1])
    for i, junk in enumerate([3, "s", [1], None, True, [rows[1]]]):
        yield Case(f"{kind}-line-nonobject-{i}", name, _jsonl([rows[0], junk]), 2)
    for i in range(4):
        cut = rng.randint(1, len(line2) - 1)
        yield Case(f"{kind}-line-truncated-{i}", name, _jsonl([rows[0]]) + line2[:cut].encode() + b"\n", 2)
    for i in range(3):
        junk = b"\x00" + rng.randbytes(rng.randint(1, 40))  # a NUL first: never blank, never JSON
        yield Case(f"{kind}-line-binary-{i}", name, _jsonl([rows[0]]) + junk + b"\n", 2)
    yield Case(f"{kind}-bom-start", name, b"\xef\xbb\xbf" + good, 0)
    yield Case(f"{kind}-bom-line2", name, _jsonl([rows[0]]) + b"\xef\xbb\xbf" + line2.encode() + b"\n", 2)
    yield Case(f"{kind}-crlf", name, good.replace(b"\n", b"\r\n"), 0)
    yield Case(f"{kind}-blank-lines", name, b"\n\n" + good.replace(b"\n", b"\n  \n"), 0)
    yield Case(f"{kind}-latin1", name, _jsonl([rows[0]]) + (line2[:-1] + ', "note": "caf').encode() + b'\xe9"}\n', 2)
    yield Case(f"{kind}-gzip", name + ".gz", gzip.compress(good), 0)
    yield Case(f"{kind}-gzip-named-plain", name, gzip.compress(good), 0)
    yield Case(f"{kind}-gzip-truncated", name + ".gz", gzip.compress(good)[:25], 2)
    yield Case(f"{kind}-empty", name, b"", 2)
    yield Case(f"{kind}-whitespace", name, b" \n\t\n", 2)
    yield Case(f"{kind}-pure-binary", name, rng.randbytes(200), 2)
    yield Case(f"{kind}-deep", name, b"[" * 100_000 + b"\n", 2)


def instance_cases(rng: random.Random) -> Iterator[Case]:
    fields = [*_INSTANCE_CHECKS, "negatives[0]"]
    for field in fields:
        for j, value in enumerate(BAD_VALUES):
            rows = copy.deepcopy(ROWS)
            row = rows[rng.randrange(2)]
            if field == "negatives[0]":
                row["negatives"][0] = value
            else:
                row[field] = value
            ok = all(_instance_ok(r) for r in rows) and (rows[0]["id"] != rows[1].get("id"))
            yield Case(f"jsonl-{field}-{j}", "case.jsonl", _jsonl(rows), _doc_expect(rows, ok))
        rows = copy.deepcopy(ROWS)
        rows[1].pop(field.split("[")[0])
        yield Case(f"jsonl-{field}-missing", "case.jsonl", _jsonl(rows), 0 if _instance_ok(rows[1]) else 2)
    yield Case("jsonl-duplicate-id", "case.jsonl", _jsonl([ROWS[0], {**ROWS[1], "id": "x1"}]), 2)
    yield Case("jsonl-extra-fields", "case.jsonl", _jsonl([{**ROWS[0], "extra": {"deep": [1]}}, ROWS[1]]), 0)
    # records that parse but cannot mean what they say (issue 21, item 7)
    for j, ctype in enumerate(["Video", "IMAGE", " video", "audio"]):
        yield Case(f"jsonl-caption_type-word-{j}", "case.jsonl", _jsonl([ROWS[0], {**ROWS[1], "caption_type": ctype}]), 2)
    yield Case("jsonl-positive-is-a-negative", "case.jsonl",
               _jsonl([ROWS[0], {**ROWS[1], "negatives": ["He sits.", "He runs."]}]), 2)
    yield Case("jsonl-positive-is-a-negative-spaced", "case.jsonl",
               _jsonl([ROWS[0], {**ROWS[1], "negatives": ["He  runs. "]}]), 2)
    yield Case("jsonl-negative-twice", "case.jsonl",
               _jsonl([ROWS[0], {**ROWS[1], "negatives": ["He sits.", "He swims.", "He sits."]}]), 2)
    yield Case("jsonl-negatives-differ-in-case", "case.jsonl",
               _jsonl([ROWS[0], {**ROWS[1], "negatives": ["He sits.", "he sits.", "He runs!"]}]), 0)
    yield from _line_cases("jsonl", "case.jsonl", ROWS, rng)


# --- official TED-6K JSON -------------------------------------------------------------------------

def _official() -> dict[str, Any]:
    ok = {"status": "success"}
    question = {"question": "q", "correct_statement": {**ok, "statement": "He runs."},
                "incorrect_statements": [{**ok, "statement": "He sits."}, {"status": "failed", "statement": "?"}]}
    return {
        "cap-1": {"caption": "A man runs.", "caption_type": "video", "statements": {"Action Recognition": question}},
        "cap-2": {"caption": "A red cup.", "statements": {"Attribute": copy.deepcopy(question)}},
    }


_Q = ("cap-1", "statements", "Action Recognition")


def _no_question(v: Any) -> bool:  # an object without a correct statement: skipped, so valid
    return isinstance(_parsed(v), dict) and _parsed(v).get("correct_statement") is None


# path -> oracle for the value found there (everything else stays valid; cap-2 always yields instances)
_OFFICIAL_CHECKS: dict[tuple[Any, ...], Callable[[Any], bool]] = {
    ("cap-1",): lambda v: False,  # a non-object, or an object without caption and statements
    ("cap-1", "caption"): _text_ok,
    ("cap-1", "caption_type"): _caption_type_ok,
    ("cap-1", "statements"): lambda v: isinstance(_parsed(v), dict) and all(map(_no_question, v.values())),
    _Q: _no_question,
    (*_Q, "correct_statement"): lambda v: _parsed(v) is None,  # null: no statement generated, skipped
    (*_Q, "correct_statement", "status"): _text_ok,  # any status but 'success': the question is skipped
    (*_Q, "correct_statement", "statement"): _text_ok,
    (*_Q, "incorrect_statements"): lambda v: _parsed(v) is None or _parsed(v) == [],
    (*_Q, "incorrect_statements", 0): lambda v: False,  # a non-object, or an object without a status
    (*_Q, "incorrect_statements", 0, "status"): _text_ok,
    (*_Q, "incorrect_statements", 0, "statement"): _text_ok,
    (*_Q, "incorrect_statements", 1, "statement"): lambda v: True,  # a failed statement is never read
}
# paths whose removal leaves a valid file
_OFFICIAL_MISSING_OK = {("cap-1",), ("cap-1", "caption_type"), _Q, (*_Q, "correct_statement"),
                        (*_Q, "incorrect_statements"), (*_Q, "incorrect_statements", 0),
                        (*_Q, "incorrect_statements", 1, "statement")}


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def official_cases(rng: random.Random) -> Iterator[Case]:
    for path, check in _OFFICIAL_CHECKS.items():
        label = ".".join(map(str, path[1:])) or "entry"
        for j, value in enumerate(BAD_VALUES):
            doc = _official()
            _at(doc, path)[path[-1]] = value
            yield Case(f"official-{label}-{j}", "case.json", _dumps(doc).encode(), _doc_expect(doc, check(value)))
        doc = _official()
        _at(doc, path).pop(path[-1])
        yield Case(f"official-{label}-missing", "case.json", _dumps(doc).encode(),
                   0 if path in _OFFICIAL_MISSING_OK else 2)
    good = _dumps(_official()).encode()
    for j, top in enumerate([[], 3, "s", None, [_official()], {}]):
        yield Case(f"official-top-{j}", "case.json", _dumps(top).encode(), 2)
    for j in range(4):
        yield Case(f"official-truncated-{j}", "case.json", good[: rng.randint(1, len(good) - 1)], 2)
    yield Case("official-bom", "case.json", b"\xef\xbb\xbf" + good, 0)
    yield Case("official-gzip", "case.json.gz", gzip.compress(good), 0)
    yield Case("official-two-documents", "case.json", good + b"\n" + good, 2)
    yield Case("official-latin1", "case.json", good.replace(b"A red cup.", b"Un caf\xe9."), 2)
    yield Case("official-surrogate-key", "case.json", good.replace(b'"cap-2"', b'"cap\\ud800"'), 2)
    yield Case("official-binary", "case.json", b"{" + rng.randbytes(100), 2)
    doc = _official()
    doc["cap-1"]["caption_type"] = "Video"
    yield Case("official-caption_type-Video", "case.json", _dumps(doc).encode(), 2)
    doc = _official()
    _at(doc, (*_Q, "incorrect_statements", 0))[0]["statement"] = "He runs."
    yield Case("official-positive-is-a-negative", "case.json", _dumps(doc).encode(), 2)
    doc = _official()
    _at(doc, (*_Q, "incorrect_statements", 1))[1] = {"status": "success", "statement": "He sits."}
    yield Case("official-negative-twice", "case.json", _dumps(doc).encode(), 2)
    doc = _official()
    _at(doc, (*_Q, "incorrect_statements", 1))[1]["statement"] = "He runs."  # a failed statement is never read
    yield Case("official-failed-negative-equals-positive", "case.json", _dumps(doc).encode(), 0)


# --- caption pairs --------------------------------------------------------------------------------

PAIRS = [{"a": "A cat.", "b": "A small cat.", "group": "img-1"}, {"a": "A dog.", "b": "One dog.", "caption_type": "video"}]
OFFICIAL_PAIRS = [{"processed_caption1": "A cat.", "processed_caption2": "A kitten."},
                  {"processed_caption1": "A dog.", "processed_caption2": "A puppy.", "group": 3}]
_PAIR_CHECKS: dict[str, Callable[[Any], bool]] = {
    "a": _text_ok, "b": _text_ok, "processed_caption1": _text_ok, "processed_caption2": _text_ok,
    "group": _label_ok, "caption_type": _caption_type_ok,
}


def pair_cases(rng: random.Random) -> Iterator[Case]:
    for form, base in (("jsonl", PAIRS), ("list", OFFICIAL_PAIRS)):
        name = "pairs.jsonl" if form == "jsonl" else "pairs.json"
        write: Callable[[list[Any]], bytes] = _jsonl if form == "jsonl" else (lambda rs: _dumps(rs).encode())
        for field in [k for k in _PAIR_CHECKS if k in base[0] or k in ("group", "caption_type")]:
            for j, value in enumerate(BAD_VALUES):
                rows = copy.deepcopy(base)
                rows[1][field] = value
                ok = _PAIR_CHECKS[field](value)
                yield Case(f"pairs-{form}-{field}-{j}", name, write(rows), _doc_expect(rows, ok))
        for j, junk in enumerate([3, "s", None, [1]]):
            yield Case(f"pairs-{form}-item-nonobject-{j}", name, write([base[0], junk]), 2)
        yield Case(f"pairs-{form}-gzip", name + ".gz", gzip.compress(write(base)), 0)
        yield Case(f"pairs-{form}-bom", name, b"\xef\xbb\xbf" + write(base), 0)
        text = write(base)
        yield Case(f"pairs-{form}-truncated", name, text[: rng.randint(2, len(text) - 3)], 2)
    yield from _line_cases("pairs", "pairs.jsonl", PAIRS, rng)
    yield Case("pairs-caption_type-Video", "pairs.jsonl", _jsonl([PAIRS[0], {**PAIRS[1], "caption_type": "Video"}]), 2)
    yield Case("pairs-list-empty", "pairs.json", b"[]", 2)
    yield Case("pairs-list-not-json", "pairs.json", b"[{'a': 1}]", 2)


CASES = [*instance_cases(random.Random(0)), *official_cases(random.Random(1)), *pair_cases(random.Random(2))]


def _write(tmp_path: Path, case: Case) -> Path:
    path = tmp_path / case.name
    path.write_bytes(case.data)
    return path


def _check_one_error_line(rc: int, err: str, case: Case, what: str) -> None:
    assert "Traceback" not in err, f"{case.id}: {what} printed a traceback:\n{err}"
    assert rc in (0, 2), f"{case.id}: {what} returned {rc}"
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{case.id}: {what} stderr is not one line:\n{err}"


def test_too_deep_is_too_deep_for_this_interpreter() -> None:
    """The oracle calls the nested literal unparseable; on an interpreter that parses it, every case holding it
    would expect the wrong exit status (seen on Python >= 3.12 when it was 3,000 deep)."""
    with pytest.raises(RecursionError):
        json.loads("[" * DEEP + "]" * DEEP)


def test_cases_cover_every_format() -> None:
    assert 600 <= len(CASES) <= 1200, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
    assert sum(c.expect == 0 for c in CASES) >= 40, "some mutations must stay valid, or nothing checks the oracle"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_rejects_in_one_line(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["validate", str(_write(tmp_path, case))])
    err = capsys.readouterr().err
    _check_one_error_line(rc, err, case, "validate")
    if case.expect is not None:
        assert rc == case.expect, f"{case.id}: validate returned {rc}, expected {case.expect}; stderr: {err}"


RUN_SAMPLE = [c for c in CASES if not c.name.startswith("pairs") and c.id in {
    "jsonl-caption-10", "jsonl-caption_type-13", "jsonl-negatives[0]-5", "jsonl-id-4", "jsonl-bom-start",
    "jsonl-gzip-named-plain", "official-statements.Action Recognition.correct_statement.statement-0", "official-statements.Action Recognition.correct_statement-5",
    "official-bom", "official-caption-10",
}]


def test_run_sample_is_big_enough() -> None:
    assert len(RUN_SAMPLE) == 10, [c.id for c in RUN_SAMPLE]
    assert {c.expect for c in RUN_SAMPLE} == {0, 2}, "the sample holds valid and broken files"


@pytest.mark.parametrize("case", RUN_SAMPLE, ids=[c.id for c in RUN_SAMPLE])
def test_run_agrees_with_validate(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(_write(tmp_path, case))
    validated = main(["validate", path])
    capsys.readouterr()
    # --null-resamples 0: the loaders are under test here, not the permutation null (and it costs time)
    rc = main(["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", path, "--aggregator", "mean-pool",
               "--bootstrap", "0", "--null-resamples", "0", "--extract", "last"])
    err = capsys.readouterr().err
    _check_one_error_line(rc, err, case, "run")
    assert rc == validated, f"{case.id}: validate returned {validated} but run returned {rc}; stderr: {err}"


@pytest.mark.parametrize("case", [c for c in CASES if c.id in {"pairs-jsonl-a-10", "pairs-list-group-16"}],
                         ids=["surrogate", "nested-group"])
def test_bad_train_pairs_fail_before_training(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(_write(tmp_path, case))
    assert main(["validate", path]) == 2
    capsys.readouterr()
    rc = main(["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--train-pairs", path,
               "--aggregator", "context", "--preset", "baby", "--bootstrap", "0", "--null-resamples", "0",
               "--extract", "last"])
    err = capsys.readouterr().err
    _check_one_error_line(rc, err, case, "run")
    assert rc == 2 and path in err
