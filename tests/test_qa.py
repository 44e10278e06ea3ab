"""The QA baseline: rewriter, answers, judge and the §4.4 shuffle control against the local fake server,
on the shipped tiny task (fake encoder: n/a) and with a tiny random causal LM answering through ``hf``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import LLMOptions, make_llm_backend
from harness.cli.main import main
from harness.plugins import get_plugin_manager
from harness.evaluation.results import read_results
from harness.evaluation.tasks import load_task_sets

pytest.importorskip("openai")

from harness_plugins.baselines.qa import QA_CONTROL, load_questions, run_qa
from harness_plugins.llm.fake_server import FakeChatServer, Reply

sys.path.insert(0, str(Path(__file__).parent))
from encoder_fixtures import build_tiny_checkpoint

TINY = [json.loads(line) for line in (Path(__file__).parent.parent / "harness/testing_data/tiny.jsonl").open()]
POSITIVE = {r["id"]: r["positive"] for r in TINY}
FAST = {"backoff_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5.0, "max_retries": 1}


def responder(*, bad_answer: frozenset[str] = frozenset(), bad_letter: frozenset[str] = frozenset(),
              flaky_rewrite: frozenset[str] = frozenset(), always_a: bool = False) -> Any:
    """Rewriter: "Question about <positive>?" (malformed once for statements in ``flaky_rewrite``).
    Choice answerer: the letter of the positive (or "not sure" / "Z" for the ids given; "A" with ``always_a``).
    Open answerer: the positive.  Judge: the number of the option equal to the answer."""
    positives = {v: k for k, v in POSITIVE.items()}

    def respond(body: dict[str, Any]) -> Reply:
        text = body["messages"][0]["content"]
        retry = len(body["messages"]) > 1
        if "POSITIVE:" in text:
            pos = re.search(r"POSITIVE: (.*)", text).group(1)  # type: ignore[union-attr]
            if pos in flaky_rewrite and not retry:
                return Reply(text="sure! here is a question")
            return Reply(text=json.dumps({"question": f"Question about {pos}?"}))
        if text.startswith("You judge"):
            answer = re.search(r"CAPTION: (.*)", text).group(1)  # type: ignore[union-attr]
            nums = dict(re.findall(r"^(\d+)\. (.*)$", text, re.MULTILINE))
            return Reply(text=json.dumps({"answer": next((int(k) for k, v in nums.items() if v == answer), None)}))
        pos = re.search(r"QUESTION: Question about (.*)\?", text).group(1)  # type: ignore[union-attr]
        iid = positives.get(pos, "")
        if "OPTIONS:" in text:
            if iid in bad_answer:
                return Reply(text="not sure")
            if iid in bad_letter:
                return Reply(text="Z")
            if always_a:
                return Reply(text="A")
            letter = next(k for k, v in re.findall(r"^([A-Z])\. (.*)$", text, re.MULTILINE) if v == pos)
            return Reply(text=f"{letter}.")
        return Reply(text=pos)

    return respond


def run_cli(tmp_path: Path, url: str, *extra: str, out: str = "out") -> int:
    return main(["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--bootstrap", "50",
                 "--qa-rewriter", "big-llm", "--llm-base-url", url, "--out", str(tmp_path / out), *extra])


def test_choice_counts_bad_output_and_a_rerun_asks_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    respond = responder(bad_answer=frozenset({"tiny-3"}), bad_letter=frozenset({"tiny-4"}),
                        flaky_rewrite=frozenset({POSITIVE["tiny-5"]}))
    with FakeChatServer(respond) as server:
        assert run_cli(tmp_path, server.url, "--aggregator", "qa-choice", "--qa-answer-base-url", server.url) == 0
        first = server.requests
        out = capsys.readouterr().out
        assert run_cli(tmp_path, server.url, "--aggregator", "qa-choice", "--qa-answer-base-url", server.url,
                       out="again") == 0
        rerun_out = capsys.readouterr().out
    # rewriter: 5 + 1 re-ask; answers: 5 + 2 bad ids x 2 re-asks
    assert first == 6 + 5 + 4, f"{first} requests: retries are bounded"
    assert server.requests == first, "a rerun asks nothing: questions file + response cache"
    res = read_results(tmp_path / "out")
    overall = [r for r in res.scores if r.category == "all" and r.caption_type == "all"]
    assert [(r.aggregator, r.value, r.n) for r in overall] == [("qa-choice", pytest.approx(0.6), 5)], overall
    qa = res.provenance.options["qa"]
    assert qa["unanswerable"] == {"fake/tiny/seed 0": 2}, "malformed and non-existent letters count separately"
    assert qa["usage"]["answer"]["fake"]["requests"] == 9 and qa["usage"]["rewrite"]["requests"] == 6, qa["usage"]
    assert "2 unanswerable" in out and "LLM total: 15 requests" in out, out
    assert "LLM total: 0 requests" in rerun_out and "15 cached" in rerun_out, rerun_out
    saved = load_questions(tmp_path / "out" / "qa-questions.jsonl")
    assert saved["tiny-5"].question == f"Question about {POSITIVE['tiny-5']}?", "the re-asked rewrite is saved"
    assert len(saved) == 5 and saved["tiny-1"].options[0] == POSITIVE["tiny-1"]


def test_encoder_that_cannot_generate_is_na_not_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeChatServer(responder()) as server:
        assert run_cli(tmp_path, server.url, "--aggregator", "qa-choice") == 0
    out = capsys.readouterr().out
    res = read_results(tmp_path / "out")
    assert res.scores == [], "no score at all: never a 0"
    assert "fake: n/a" in out and "cannot generate" in res.provenance.options["qa"]["not_applicable"]["fake"], out


def _backends(url: str, cache: Path) -> tuple[Any, Any]:
    pm = get_plugin_manager(["harness.testing"])
    opts = LLMOptions(model="big-llm", base_url=url, cache_dir=str(cache), **FAST)
    return pm, make_llm_backend(pm, "openai", opts)


def test_open_mode_judge_and_edited_questions(tmp_path: Path, registry: Any) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(json.dumps({"id": "tiny-1", "question": f"Question about {POSITIVE['tiny-1']}?",
                                 "options": ["edited right", "edited wrong", "edited wrong 2"], "answer": 0}) + "\n")
    with FakeChatServer(responder(bad_answer=frozenset())) as server:
        pm, llm = _backends(server.url, tmp_path / "cache")
        tasks = load_task_sets(pm, registry, ["tiny"])
        result = run_qa(pm, encoders=[registry.encoder("fake")], tasks=tasks, rewriter=llm, judge=llm,
                        answerer_for=lambda spec: llm, questions_file=qfile, mode="open", bootstrap=0)
        rewrites = [b for b in server.bodies if "POSITIVE:" in b["messages"][0]["content"]]
    assert len(rewrites) == 4, "the saved question of tiny-1 is not asked again"
    judged = [b["messages"][0]["content"] for b in server.bodies if b["messages"][0]["content"].startswith("You judge")]
    assert any("edited right" in j for j in judged), "the edited options reach the judge"
    overall = {(r.category, r.caption_type): r.value for r in result.scores}
    # tiny-1's answer (its positive) matches none of the edited options: the judge says null -> wrong
    assert overall[("all", "all")] == pytest.approx(0.8) and overall[("spatial", "all")] == 0.0, overall
    assert result.provenance.options["qa"]["unanswerable"] == {"fake/tiny/seed 0": 0}
    assert result.scores[0].aggregator == "qa"


def test_bad_judge_output_is_unanswerable(tmp_path: Path, registry: Any) -> None:
    good = responder()

    def respond(body: dict[str, Any]) -> Reply:
        judge = body["messages"][0]["content"].startswith("You judge")
        return Reply(text='{"answer": 7}') if judge else good(body)

    with FakeChatServer(respond) as server:
        pm, llm = _backends(server.url, tmp_path / "cache")
        tasks = load_task_sets(pm, registry, ["tiny"])
        result = run_qa(pm, encoders=[registry.encoder("fake")], tasks=tasks, rewriter=llm, judge=llm,
                        answerer_for=lambda spec: llm, questions_file=tmp_path / "q.jsonl", mode="open",
                        bootstrap=0, retries=1)
    assert result.provenance.options["qa"]["unanswerable"] == {"fake/tiny/seed 0": 5}, "option 7 does not exist"
    assert all(r.value == 0.0 for r in result.scores)


def test_shuffle_control_over_five_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    four = tmp_path / "four.jsonl"
    with four.open("w") as fh:
        for r in TINY:
            negs = (r["negatives"] + ["Nothing else is shown.", "Something else is shown."])[:3]
            fh.write(json.dumps({**r, "negatives": negs}) + "\n")
    with FakeChatServer(responder(always_a=True)) as server:
        args = ["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", str(four), "--bootstrap", "0",
                "--aggregator", "qa-choice", "--qa-rewriter", "big-llm", "--llm-base-url", server.url,
                "--qa-answer-base-url", server.url, "--out", str(tmp_path / "out")]
        assert main([*args, "--seeds", "0,1,2,3", "--qa-shuffle-control"]) == 2, "fewer than 5 seeds is refused"
        assert "at least 5 seeds" in capsys.readouterr().err
        assert main([*args, "--seeds", "0,1,2,3,4", "--qa-shuffle-control"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith(QA_CONTROL))
    assert re.search(r"min \d+\.\d% max \d+\.\d% mean \d+\.\d% over 5 seeds; chance \(1/k\) 25\.0%", line), line
    res = read_results(tmp_path / "out")
    ctrl = [s for s in res.seed_summary if s.control == QA_CONTROL and s.category == "all" and s.caption_type == "all"]
    assert len(ctrl) == 1 and ctrl[0].n_seeds == 5, ctrl
    assert {r.chance for r in res.scores} == {0.25}
    assert not [c for c in res.comparisons if "shuffled" in c.row], "the control is not compared as an encoder"


def test_tiny_causal_lm_answers_through_hf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = build_tiny_checkpoint("causal-lm", tmp_path / "lm")
    with FakeChatServer(responder()) as server:
        assert main(["-p", "harness.testing", "run", "--encoders", f"causal-lm:{ckpt},fake", "--tasks", "tiny",
                     "--bootstrap", "0", "--aggregator", "qa-choice", "--qa-rewriter", "big-llm", "--llm-base-url",
                     server.url, "--device", "cpu", "--out", str(tmp_path / "out")]) == 0
        assert server.requests == 5, "only the rewriter goes to the server"
    res = read_results(tmp_path / "out")
    qa = res.provenance.options["qa"]
    (bad,) = qa["unanswerable"].values()
    assert 0 <= bad <= 5 and len(res.samples) == 5, "random answers: plumbing and counts only"
    (usage,) = qa["usage"]["answer"].values()
    assert 5 <= usage["requests"] <= 15 and "fake" in qa["not_applicable"], usage
    assert "fake: n/a" in capsys.readouterr().out
