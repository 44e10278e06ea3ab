"""LLM backends: the real ``openai`` client against a local scripted server, the response cache,
resuming, the ``hf`` backend on a tiny random causal LM, shipped prompts."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness import ChatRequest, ConfigError, LLMOptions, make_llm_backend, summarize_usage
from harness.llm.cache import CACHE_FILE, ResponseCache
from harness.plugins import get_plugin_manager

pytest.importorskip("openai")

from harness_plugins.llm import fill_prompt, load_prompt, prompt_names
from harness_plugins.llm.fake_server import FakeChatServer, Reply, last_user_text
from harness_plugins.llm.openai_backend import OpenAIBackend, backoff_delay

sys.path.insert(0, str(Path(__file__).parent))
from encoder_fixtures import build_tiny_checkpoint

FAST: dict[str, Any] = {"backoff_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 0.5, "max_retries": 2}


def scripted() -> Any:
    """ok:X answers {"answer": X}; bad: not JSON; flaky:X: 429 once, then ok; down: 500 always;
    slow: past any timeout."""
    seen: Counter[str] = Counter()

    def respond(body: dict[str, Any]) -> Reply:
        text = last_user_text(body)
        seen[text] += 1
        kind, _, arg = text.partition(":")
        if kind == "bad":
            return Reply(text="this is not json {")
        if kind == "flaky" and seen[text] == 1:
            return Reply(status=429, error="slow down")
        if kind == "down":
            return Reply(status=500, error="boom")
        if kind == "slow":
            return Reply(text="late", delay_s=3.0)
        return Reply(text=json.dumps({"answer": arg}))

    return respond


def ask(*texts: str, **kw: Any) -> list[ChatRequest]:
    return [ChatRequest(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": t}], **kw)
            for t in texts]


@pytest.fixture
def llm_pm() -> Any:
    return get_plugin_manager(["harness_plugins.llm"])


def test_backends_are_listed(llm_pm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    names = sorted(n for ns in llm_pm.hook.harness_llm_backend_names() for n in ns)
    assert names == ["hf", "openai"]
    from harness.cli.main import main

    assert main(["-p", "harness_plugins.llm", "list", "llm-backends"]) == 0
    out = capsys.readouterr().out
    assert "openai" in out and "hf" in out, out


def test_unknown_backend_names_the_choices(llm_pm: Any) -> None:
    with pytest.raises(ConfigError, match=r"Unknown LLM backend 'opnai'\. Did you mean: openai\?"):
        make_llm_backend(llm_pm, "opnai", LLMOptions(model="m"))


def test_openai_records_every_outcome() -> None:
    with FakeChatServer(scripted()) as server:
        backend = OpenAIBackend(LLMOptions(model="m", base_url=server.url, concurrency=5, **FAST))
        seen: list[int] = []
        ok, bad, flaky, down, slow = backend.complete(ask("ok:a", "bad", "flaky:b", "down", "slow"),
                                                      progress=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1, 2, 3, 4], "progress must report each item once"
    assert ok.parsed_json() == {"answer": "a"} and ok.attempts == 1 and ok.error is None
    assert ok.usage.prompt_tokens == 3 and ok.usage.completion_tokens == 2, ok.usage
    assert bad.error is None and bad.text == "this is not json {" and bad.parsed_json() is None, "malformed is recorded"
    assert flaky.parsed_json() == {"answer": "b"} and flaky.attempts == 2, "429 is retried once"
    assert down.attempts == 3 and down.error is not None and "500" in down.error, down
    assert slow.attempts == 3 and slow.error is not None and "Timeout" in slow.error, slow
    assert server.by_prompt["down"] == 3 and server.by_prompt["flaky:b"] == 2


def test_client_errors_are_not_retried() -> None:
    with FakeChatServer(lambda body: Reply(status=404, error="no such model")) as server:
        (result,) = OpenAIBackend(LLMOptions(model="m", base_url=server.url, **FAST)).complete(ask("x"))
    assert result.attempts == 1 and result.error is not None and "404" in result.error, result


def test_json_mode_sent_and_dropped_when_rejected() -> None:
    with FakeChatServer(scripted()) as server:
        OpenAIBackend(LLMOptions(model="m", base_url=server.url, **FAST)).complete(ask("ok:a", json=True))
    assert server.bodies[0]["response_format"] == {"type": "json_object"}
    assert server.bodies[0]["temperature"] == 0 and server.bodies[0]["model"] == "m"

    with FakeChatServer(scripted(), reject_response_format=True) as server:
        backend = OpenAIBackend(LLMOptions(model="m", base_url=server.url, concurrency=1, **FAST))
        results = backend.complete(ask("ok:a", "ok:b", "ok:c", json=True))
    assert [r.parsed_json() for r in results] == [{"answer": "a"}, {"answer": "b"}, {"answer": "c"}]
    assert [r.attempts for r in results] == [2, 1, 1], "only the first item pays for the fallback"
    assert ["response_format" in b for b in server.bodies] == [True, False, False, False]


def test_concurrency_is_bounded() -> None:
    with FakeChatServer(scripted(), delay_s=0.05) as server:
        backend = OpenAIBackend(LLMOptions(model="m", base_url=server.url, concurrency=4, **FAST))
        results = backend.complete(ask(*(f"ok:{i}" for i in range(24))))
    assert [r.parsed_json() for r in results] == [{"answer": str(i)} for i in range(24)], "results keep input order"
    assert server.max_in_flight == 4, f"{server.max_in_flight} requests in flight with concurrency 4"


def test_cache_makes_a_rerun_free(llm_pm: Any, tmp_path: Path) -> None:
    opts = LLMOptions(model="m", concurrency=3, cache_dir=str(tmp_path), **FAST)
    with FakeChatServer(scripted()) as server:
        opts = dataclasses.replace(opts, base_url=server.url)
        first = make_llm_backend(llm_pm, "openai", opts).complete(ask("ok:a", "ok:b", "flaky:c", "down", "ok:a"))
        sent = server.requests
        second = make_llm_backend(llm_pm, "openai", opts).complete(ask("ok:a", "ok:b", "flaky:c", "down"))
    assert sent == 1 + 1 + 2 + 3, "a duplicate request in one batch is sent once"
    assert server.requests == sent + 3, "only the failed item is asked again"
    assert [r.text for r in second[:3]] == [r.text for r in first[:3]] and all(r.cached for r in second[:3])
    s1, s2 = summarize_usage(first), summarize_usage(second)
    assert (s1.items, s1.requests, s1.cache_hits, s1.errors) == (5, 7, 1, 1), s1
    assert (s1.prompt_tokens, s1.completion_tokens) == (9, 6), s1
    assert (s2.items, s2.requests, s2.cache_hits, s2.errors) == (4, 3, 3, 1), s2
    assert s2.prompt_tokens == 0 and s1.cost(1e6, 2e6) == pytest.approx(9 + 12)


def test_cache_key_covers_parameters_and_tolerates_a_torn_line(tmp_path: Path) -> None:
    with FakeChatServer(scripted()) as server:
        opts = LLMOptions(model="m", base_url=server.url, cache_dir=str(tmp_path), **FAST)
        backend = make_llm_backend(get_plugin_manager(["harness_plugins.llm"]), "openai", opts)
        backend.complete(ask("ok:a") + ask("ok:a", max_tokens=5) + ask("ok:a", json=True) + ask("ok:a", seed=1))
        assert server.requests == 4, "each parameter change is a new key"
        with open(tmp_path / CACHE_FILE, "ab") as f:
            f.write(b'{"key": "abc", "result": {"te')  # a kill mid-write
        cache = ResponseCache(tmp_path)
        assert len(cache) == 4
        backend = make_llm_backend(get_plugin_manager(["harness_plugins.llm"]), "openai", opts)
        backend.complete(ask("ok:a", "ok:z"))
        assert server.requests == 5
    assert len(ResponseCache(tmp_path)) == 5, "the line after a torn one is read back"


def test_interrupted_run_resumes_without_reasking(llm_pm: Any, tmp_path: Path) -> None:
    texts = [f"ok:{i}" for i in range(10)]
    with FakeChatServer(scripted()) as server:
        opts = LLMOptions(model="m", base_url=server.url, concurrency=1, cache_dir=str(tmp_path), **FAST)
        answered: list[str] = []

        def stop_after_four(i: int, result: Any) -> None:
            answered.append(texts[i])
            if len(answered) == 4:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            make_llm_backend(llm_pm, "openai", opts).complete(ask(*texts), progress=stop_after_four)
        time.sleep(0.2)  # let the one request already in flight land
        results = make_llm_backend(llm_pm, "openai", opts).complete(ask(*texts))
    assert all(server.by_prompt[t] == 1 for t in answered), server.by_prompt
    assert server.requests <= len(texts) + 1, "at most the one in-flight request is asked twice"
    assert [r.parsed_json() for r in results] == [{"answer": str(i)} for i in range(10)]


def test_killed_process_resumes_without_reasking(llm_pm: Any, tmp_path: Path) -> None:
    texts = [f"ok:{i}" for i in range(30)]
    with FakeChatServer(scripted(), delay_s=0.1) as server:
        code = textwrap.dedent(f"""
            from harness import ChatRequest, LLMOptions, make_llm_backend
            from harness.plugins import get_plugin_manager
            opts = LLMOptions(model="m", base_url={server.url!r}, concurrency=2, cache_dir={str(tmp_path)!r})
            reqs = [ChatRequest(messages=[{{"role": "user", "content": t}}]) for t in {texts!r}]
            make_llm_backend(get_plugin_manager(["harness_plugins.llm"]), "openai", opts).complete(reqs)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code])
        cache_file = tmp_path / CACHE_FILE
        deadline = time.time() + 60
        while time.time() < deadline and (not cache_file.exists() or cache_file.read_bytes().count(b"\n") < 6):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = ResponseCache(tmp_path)
        assert 6 <= len(done) < len(texts), f"{len(done)} answers cached before the kill"
        before = server.requests
        opts = LLMOptions(model="m", base_url=server.url, concurrency=4, cache_dir=str(tmp_path))
        results = make_llm_backend(llm_pm, "openai", opts).complete(
            [ChatRequest(messages=[{"role": "user", "content": t}]) for t in texts])
    assert sum(r.cached for r in results) == len(done)
    assert server.requests - before == len(texts) - len(done), "a finished item was asked again"


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint("causal-lm", tmp_path_factory.mktemp("llm"))


def _hf(path: Path, batch_size: int) -> Any:
    from harness_plugins.llm.hf_backend import HFBackend

    return HFBackend(LLMOptions(model=str(path), extra={"device": "cpu", "batch_size": batch_size}))


def test_hf_backend_greedy_batched_equals_one_by_one(tiny_lm: Path) -> None:
    reqs = ask("a red cat sits on the mat", "two dogs", "the sun sets over the green field while people walk",
               max_tokens=6)
    batched = _hf(tiny_lm, 3).complete(reqs)
    single = _hf(tiny_lm, 1).complete(reqs)
    assert [r.text for r in batched] == [r.text for r in single], "left padding changed a greedy answer"
    assert [r.text for r in _hf(tiny_lm, 3).complete(reqs)] == [r.text for r in batched], "greedy is deterministic"
    assert all(r.error is None and r.finish_reason in ("stop", "length") for r in batched)
    assert all(0 < r.usage.completion_tokens <= 6 for r in batched)
    assert batched[2].usage.prompt_tokens > batched[1].usage.prompt_tokens > 0


def test_server_answering_from_a_tiny_lm(llm_pm: Any, tiny_lm: Path) -> None:
    """The same model behind the HTTP server and through ``hf`` gives the same greedy text."""
    local = make_llm_backend(llm_pm, "hf", LLMOptions(model=str(tiny_lm), extra={"device": "cpu"}))

    def generate(body: dict[str, Any]) -> Reply:
        (r,) = local.complete([ChatRequest(messages=body["messages"], max_tokens=body.get("max_tokens"))])
        return Reply(text=r.text, finish_reason=r.finish_reason or "stop")

    reqs = ask("a red cat", "a blue bird flies", max_tokens=5)
    with FakeChatServer(generate) as server:
        remote = OpenAIBackend(LLMOptions(model="tiny", base_url=server.url, concurrency=2, **FAST)).complete(reqs)
    assert [r.text for r in remote] == [r.text for r in local.complete(reqs)]
    assert all(r.text for r in remote), "the tiny model said nothing"


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    import random

    rng = random.Random(0)
    delays = [backoff_delay(k, 1.0, 5.0, rng) for k in range(1, 7)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0
    assert all(2.5 <= d <= 5.0 for d in delays[3:]), delays


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="concurrency must be at least 1"):
        LLMOptions(concurrency=0)
    with pytest.raises(ConfigError, match="needs a model"):
        OpenAIBackend(LLMOptions(base_url="http://127.0.0.1:9/v1"))
    saved = {k: os.environ.pop(k, None) for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    try:
        with pytest.raises(ConfigError, match="needs an API key"):
            OpenAIBackend(LLMOptions(model="m"))
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})


def test_prompts_ship_and_load(tmp_path: Path) -> None:
    assert {"judge", "qa-rewrite"} <= set(prompt_names())
    text = fill_prompt(load_prompt("qa-rewrite"), positive="a red cat", negatives="- a blue cat")
    assert "a red cat" in text and "- a blue cat" in text and '{"question"' in text
    assert "$caption" in load_prompt("judge")
    mine = tmp_path / "mine.txt"
    mine.write_text("Say $x", encoding="utf-8")
    assert fill_prompt(load_prompt(str(mine)), x="hi") == "Say hi"
    assert load_prompt("pkg:harness_plugins.llm/prompts/judge.txt") == load_prompt("judge")
    with pytest.raises(ConfigError, match=r"Unknown prompt 'qa-rewriter'\. Did you mean: qa-rewrite\?"):
        load_prompt("qa-rewriter")
    with pytest.raises(ConfigError, match="needs the field 'negatives'"):
        fill_prompt(load_prompt("qa-rewrite"), positive="x")
