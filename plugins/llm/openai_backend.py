"""The ``openai`` backend: any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Works with vLLM, SGLang, TGI, llama.cpp's server and hosted APIs.  The client's own retries are
off (``max_retries=0``); this module retries 408/409/429/5xx, timeouts and connection errors
itself, with capped exponential back-off and jitter, so every item records its attempts and a
request that keeps failing becomes a result with ``error`` set.  Up to ``concurrency`` requests
are in flight at once (a thread pool; the client is thread-safe).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from harness import ChatRequest, ChatResult, ConfigError, LLMOptions, TokenUsage
from harness.api import Progress

__all__ = ["OpenAIBackend", "backoff_delay"]

RETRY_STATUS = (408, 409, 429)


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): ``base * 2**(attempt-1)``, capped, times 0.5-1 jitter."""
    ceiling = min(max_s, base_s * 2 ** (attempt - 1))
    jitter = rng.random() if rng is not None else random.random()
    return float(ceiling * (0.5 + 0.5 * jitter))


class OpenAIBackend:
    """Chat completions through the official ``openai`` client, batched with bounded concurrency."""

    name = "openai"

    def __init__(self, options: LLMOptions) -> None:
        try:
            import openai
        except ImportError:
            raise ConfigError("LLM backend 'openai' needs the openai client: pip install 'ted-harness[llm]'") from None
        if not options.model:
            raise ConfigError("LLM backend 'openai' needs a model: the name the server serves it under "
                              "(e.g. --llm-model Qwen/Qwen2.5-7B-Instruct)")
        base_url = options.base_url or os.environ.get("OPENAI_BASE_URL")
        # Local servers (vLLM, llama.cpp) accept any key; the client insists on one.
        api_key = options.api_key or os.environ.get("OPENAI_API_KEY") or ("EMPTY" if base_url else None)
        if not api_key:
            raise ConfigError("LLM backend 'openai' needs an API key: set OPENAI_API_KEY, or give base_url "
                              "for a local server (OPENAI_BASE_URL=http://127.0.0.1:8000/v1)")
        self.model = options.model
        self.options = options
        self._openai = openai
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=options.timeout_s)
        self._json_supported = options.json_mode == "auto"
        self._lock = threading.Lock()

    def complete(self, requests: Sequence[ChatRequest], *, progress: Progress | None = None) -> list[ChatResult]:
        results: list[ChatResult | None] = [None] * len(requests)
        pool = ThreadPoolExecutor(max_workers=self.options.concurrency, thread_name_prefix="llm")
        try:
            pending: dict[Future[ChatResult], int] = {pool.submit(self._ask, r): i for i, r in enumerate(requests)}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    results[i] = fut.result()
                    if progress is not None:
                        progress(i, results[i])  # type: ignore[arg-type]
        finally:
            # On an exception (a progress callback, Ctrl-C) nothing queued is sent; in-flight calls finish.
            pool.shutdown(wait=False, cancel_futures=True)
        return [r for r in results if r is not None]

    def _ask(self, request: ChatRequest) -> ChatResult:
        """One item: send, retry what is worth retrying, and turn what is left into a recorded error."""
        openai = self._openai
        attempts = 0
        retries = 0
        while True:
            attempts += 1
            use_json = request.json and self._json_supported
            try:
                response = self._client.chat.completions.create(**self._params(request, use_json))
            except openai.BadRequestError as exc:
                if use_json and "response_format" in str(exc):
                    with self._lock:  # the server has no JSON mode: stop asking for it, for every item
                        self._json_supported = False
                    continue
                return self._failed(exc, attempts)
            except (openai.APIConnectionError, openai.APIStatusError) as exc:  # timeouts are connection errors
                status = getattr(exc, "status_code", None)
                retryable = status is None or status in RETRY_STATUS or status >= 500
                if not retryable or retries >= self.options.max_retries:
                    return self._failed(exc, attempts)
                retries += 1
                time.sleep(self._delay(retries, exc))
                continue
            except openai.OpenAIError as exc:  # e.g. a reply that is not a chat completion
                return self._failed(exc, attempts)
            return self._result(response, attempts)

    def _params(self, request: ChatRequest, use_json: bool) -> dict[str, Any]:
        params: dict[str, Any] = {"model": request.model or self.model, "messages": [dict(m) for m in request.messages],
                                  "temperature": request.temperature}
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        if request.seed is not None:
            params["seed"] = request.seed
        if use_json:
            params["response_format"] = {"type": "json_object"}
        return params

    def _delay(self, retry: int, exc: Exception) -> float:
        delay = backoff_delay(retry, self.options.backoff_s, self.options.backoff_max_s)
        response = getattr(exc, "response", None)
        after = response.headers.get("retry-after") if response is not None else None
        try:  # honour the server's Retry-After (seconds form), within the cap
            return max(delay, min(float(after), self.options.backoff_max_s)) if after else delay
        except ValueError:
            return delay

    @staticmethod
    def _failed(exc: Exception, attempts: int) -> ChatResult:
        status = getattr(exc, "status_code", None)
        kind = type(exc).__name__ + (f" {status}" if status else "")
        return ChatResult(error=f"{kind}: {exc}"[:500], attempts=attempts, finish_reason=None)

    @staticmethod
    def _result(response: Any, attempts: int) -> ChatResult:
        choices = getattr(response, "choices", None) or []
        if not choices:
            return ChatResult(error=f"the server answered with no choices: {str(response)[:200]}", attempts=attempts)
        choice = choices[0]
        usage = getattr(response, "usage", None)
        tokens = TokenUsage(int(getattr(usage, "prompt_tokens", 0) or 0),
                            int(getattr(usage, "completion_tokens", 0) or 0))
        text = choice.message.content if choice.message is not None else None
        return ChatResult(text=text or "", finish_reason=choice.finish_reason, usage=tokens, attempts=attempts)
