"""Baselines as plugins (`harness.baselines`): the built-in QA baselines listed and dispatched through
``harness_make_baseline``, their numbers unchanged on the scripted server, and a third-party baseline
loaded with ``-p`` that runs through ``harness run --aggregator NAME`` with a flag of its own."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import Baseline
from harness.cli.main import main
from harness.plugins import get_plugin_manager
from harness.evaluation.results import read_results

# A third party's whole baseline: the two hooks, a flag of its own, and the public harness API only.
OVERLAP_PLUGIN = '''
from harness import hookimpl
from harness.evaluation.results import Provenance, RunResult
from harness.evaluation.scoring import slice_records


class WordOverlap:
    """Correct when the positive shares more caption words than every negative."""

    def __init__(self, min_len):
        self.min_len = min_len

    def words(self, text):
        return {w.strip(".,").lower() for w in text.split() if len(w.strip(".,")) >= self.min_len}

    def run(self, context):
        result = RunResult(provenance=Provenance(options={"aggregator": "word-overlap", "min_len": self.min_len}))
        for spec in context.encoders:
            for ts in context.tasks:
                for seed in context.seeds:
                    oks = []
                    for inst in ts.instances:
                        cap = self.words(inst.caption)
                        hits = [len(cap & self.words(c)) for c in inst.candidates]
                        oks.append(all(hits[0] > h for h in hits[1:]))
                    result.scores.extend(slice_records((spec.name, "words", "word-overlap"), ts.name, ts.instances,
                                                       oks, seed=seed, n_boot=context.bootstrap))
        context.say(f"word-overlap: {len(context.tasks)} task(s), words of >= {self.min_len} letters")
        return result


@hookimpl
def harness_baseline_names():
    return ["word-overlap"]


@hookimpl
def harness_make_baseline(name, options):
    return WordOverlap(options["overlap_min_len"]) if name == "word-overlap" else None


@hookimpl
def harness_add_baseline_options(parser):
    parser.add_argument_group("word-overlap baseline").add_argument("--overlap-min-len", type=int, default=1)
'''


@pytest.fixture
def overlap_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "acme_overlap.py").write_text(textwrap.dedent(OVERLAP_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "acme_overlap"
    sys.modules.pop("acme_overlap", None)


def test_list_baselines_shows_qa(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "baselines"]) == 0
    out = capsys.readouterr().out
    assert "qa" in out.split() and "qa-choice" in out.split(), out
    assert main(["list", "aggregators"]) == 0
    assert "qa-choice" not in capsys.readouterr().out, "a baseline is not an aggregator"


def test_builtin_qa_is_a_baseline_plugin() -> None:
    pm = get_plugin_manager()
    baseline = pm.hook.harness_make_baseline(name="qa-choice", options={})
    assert isinstance(baseline, Baseline), baseline
    assert pm.hook.harness_make_baseline(name="context", options={}) is None


def test_unknown_aggregator_suggests_a_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--aggregator",
                 "qa-choise"]) == 2
    assert "Did you mean: qa-choice" in capsys.readouterr().err


def test_baseline_trains_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-p", "harness.testing", "train", "--encoders", "fake", "--aggregator", "qa"]) == 2
    assert "trains nothing" in capsys.readouterr().err


def test_blocked_baseline_plugin_takes_its_names_and_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-p", "no:builtin-baselines", "list", "baselines"]) == 0
    assert "qa-choice" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["-p", "no:builtin-baselines", "run", "--qa-mode", "choice"])


def test_third_party_baseline_listed_and_runs(overlap_plugin: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-p", overlap_plugin, "list", "baselines"]) == 0
    listed = capsys.readouterr().out.split()
    assert {"word-overlap", "qa", "qa-choice"} <= set(listed), listed
    out = tmp_path / "out"
    assert main(["-p", "harness.testing", "-p", overlap_plugin, "run", "--encoders", "fake", "--tasks", "tiny",
                 "--aggregator", "word-overlap", "--overlap-min-len", "4", "--bootstrap", "0",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "word-overlap: 1 task(s), words of >= 4 letters" in printed, "the plugin's flag reached it"
    res = read_results(out)
    overall = [(r.encoder, r.extractor, r.aggregator, r.n) for r in res.scores
               if r.category == "all" and r.caption_type == "all"]
    assert overall == [("fake", "words", "word-overlap", 5)], overall
    assert (out / "report.md").is_file(), "the CLI writes a baseline's result like any run's"


# --- the QA baselines' numbers through the hook, pinned on the scripted server --------------------------

def _qa_run(tmp_path: Path, *extra: str) -> tuple[Any, int]:
    """One ``harness run`` of a QA baseline against the scripted server (test_qa's responder: tiny-3 answers
    badly, tiny-4 names a letter with no option); the results read back and the requests it received."""
    pytest.importorskip("openai")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_qa import FakeChatServer, responder

    respond = responder(bad_answer=frozenset({"tiny-3"}), bad_letter=frozenset({"tiny-4"}))
    with FakeChatServer(respond) as server:
        rc = main(["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--bootstrap", "50",
                   "--qa-rewriter", "big-llm", "--llm-base-url", server.url, "--qa-answer-base-url", server.url,
                   "--no-cache", "--out", str(tmp_path / "out"), *extra])
        requests = server.requests
    assert rc == 0
    return read_results(tmp_path / "out"), requests


def test_qa_open_numbers_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res, requests = _qa_run(tmp_path, "--aggregator", "qa")
    cells = {(r.category, r.caption_type): r.value for r in res.scores}
    assert set(cells.values()) == {1.0} and len(cells) == 13, f"open answers judged right: every slice 1 ({cells})"
    qa = res.provenance.options["qa"]
    assert (qa["mode"], qa["judge"], qa["unanswerable"]) == ("open", "big-llm", {"fake/tiny/seed 0": 0}), qa
    usage = qa["usage"]
    assert [usage[k]["requests"] for k in ("rewrite", "judge", "total")] == [5, 5, 15] and requests == 15, usage
    assert usage["total"]["prompt_tokens"] == 1346 and usage["total"]["completion_tokens"] == 81, "prompts drifted"
    assert "llm_api_key" not in res.provenance.options, "the API key is never recorded"
    assert "LLM total: 15 requests, 1346 prompt + 81 completion tokens" in capsys.readouterr().out


def test_qa_choice_control_numbers_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res, requests = _qa_run(tmp_path, "--aggregator", "qa-choice", "--seeds", "0,1,2,3,4",
                               "--qa-shuffle-control")
    overall = [(r.seed, r.control, r.value, r.ci_low, r.ci_high) for r in res.scores
               if r.category == "all" and r.caption_type == "all"]
    ci = {0: (0.2, 1.0), 1: (0.2, 0.955), 2: (0.045, 1.0), 3: (0.4, 1.0), 4: (0.045, 1.0)}
    want = [(s, c, 0.6, *ci[s]) for s in range(5) for c in (None, "qa-shuffled-captions")]
    assert overall == [pytest.approx(w) for w in want], "QA scores or bootstrap CIs drifted"
    qa = res.provenance.options["qa"]
    assert set(qa["unanswerable"].values()) == {2} and len(qa["unanswerable"]) == 10, qa["unanswerable"]
    assert qa["usage"]["total"]["requests"] == requests == 95, qa["usage"]["total"]
    assert qa["usage"]["total"]["prompt_tokens"] == 6073, "prompts drifted"
    out = capsys.readouterr().out
    assert "qa-shuffled-captions (fake, tiny): min 60.0% max 60.0% mean 60.0% over 5 seeds" in out, out
