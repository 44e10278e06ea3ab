"""A local OpenAI-compatible chat server for tests and benchmarks (standard library only).

    with FakeChatServer(lambda body: Reply(text="hi")) as server:
        backend = OpenAIBackend(LLMOptions(model="m", base_url=server.url))

It speaks ``POST /v1/chat/completions``; ``responder`` sees each request body and returns a
`Reply` (text, or an HTTP error status, and an optional delay).  The server counts requests,
requests per last user message, and the most requests it ever had in flight at once.
``reject_response_format`` makes it answer 400 to any request carrying ``response_format``, as
servers without a JSON mode do.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeChatServer", "Reply", "last_user_text"]


@dataclass(frozen=True)
class Reply:
    text: str = ""
    status: int = 200
    delay_s: float = 0.0
    finish_reason: str = "stop"
    error: str = "scripted failure"


def last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return str(users[-1].get("content", "")) if users else ""


class FakeChatServer:
    """A threaded HTTP server on 127.0.0.1 (a free port), run in a daemon thread."""

    def __init__(self, responder: Callable[[dict[str, Any]], Reply], *, delay_s: float = 0.0,
                 reject_response_format: bool = False) -> None:
        self.responder = responder
        self.delay_s = delay_s
        self.reject_response_format = reject_response_format
        self.lock = threading.Lock()
        self.requests = 0
        self.by_prompt: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeChatServer:  # noqa: PYI034 (typing.Self needs Python 3.11)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
        """(status, JSON body, seconds to wait first) for one request."""
        if self.reject_response_format and "response_format" in body:
            err = {"error": {"message": "response_format is not supported by this server", "type": "BadRequestError"}}
            return 400, err, 0.0
        reply = self.responder(body)
        if reply.status != 200:
            return reply.status, {"error": {"message": reply.error, "type": "server_error"}}, reply.delay_s
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion = len(reply.text.split())
        payload = {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                         "finish_reason": reply.finish_reason}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }
        return 200, payload, reply.delay_s


def _handler_for(server: FakeChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            with server.lock:
                server.requests += 1
                server.by_prompt[last_user_text(body)] += 1
                server.bodies.append(body)
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                status, payload, delay = server.answer(body)
                time.sleep(server.delay_s + delay)
            finally:
                with server.lock:
                    server.in_flight -= 1
            self._send(status, payload)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                pass

    return Handler
