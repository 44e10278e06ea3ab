"""Requests per second of the ``openai`` backend against a local server, at concurrency 1 and 16.

    python bench/bench_llm.py                       # 128 requests, the server sleeps 50 ms each
    python bench/bench_llm.py --requests 256 --delay-ms 20 --concurrency 1,4,16,64

The server (`harness_plugins.llm.fake_server`) answers every request after ``--delay-ms``, like
a model server busy generating; the client is the real ``openai`` client.  With the wait on the
server side, requests/s should grow about linearly with concurrency: the ratio printed for 16
vs 1 should be near 16 (the target is >= 10).  No cache.  This is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import time

from harness_plugins.llm.fake_server import FakeChatServer, Reply
from harness_plugins.llm.openai_backend import OpenAIBackend

from harness import ChatRequest, LLMOptions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=128)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    ap.add_argument("--concurrency", default="1,16", help="comma-separated levels; the ratio is last/first")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    rates = {}
    with FakeChatServer(lambda body: Reply(text=json.dumps({"answer": "yes"})), delay_s=args.delay_ms / 1000) as server:
        for level in levels:
            backend = OpenAIBackend(LLMOptions(model="bench", base_url=server.url, concurrency=level))
            backend.complete([ChatRequest(messages=[{"role": "user", "content": "warm-up"}])])
            reqs = [ChatRequest(messages=[{"role": "user", "content": f"question {i}"}]) for i in range(args.requests)]
            start, before = time.perf_counter(), server.max_in_flight
            results = backend.complete(reqs)
            seconds = time.perf_counter() - start
            assert all(r.error is None for r in results), [r.error for r in results if r.error][:3]
            rates[level] = len(reqs) / seconds
            print(f"concurrency {level:3d}: {len(reqs)} requests in {seconds:6.2f} s = {rates[level]:7.1f} requests/s "
                  f"(max in flight so far: {max(before, server.max_in_flight)})")
    first, last = levels[0], levels[-1]
    print(f"ratio concurrency {last} / {first}: {rates[last] / rates[first]:.1f}x "
          f"(server delay {args.delay_ms:g} ms; ideal {last / first:g}x)")


if __name__ == "__main__":
    main()
