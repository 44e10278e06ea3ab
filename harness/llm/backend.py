"""Chat LLM backends: the types the ``harness_make_llm_backend`` hook deals in.

A backend answers a batch of `ChatRequest` with one `ChatResult` each, in order.  A request
that still fails after retries comes back with ``error`` set -- it is recorded, never raised,
so one bad item never loses a batch.  `harness.llm.factory.make_llm_backend` asks the plugins
for a backend by name and, when ``options.cache_dir`` is set, wraps it in the on-disk response cache
(`harness.llm.cache`), so a rerun or a resumed run asks nothing twice.

No LLM client is imported here: ``openai`` and ``transformers`` live in the plugins that use them.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness._exceptions import ConfigError, unknown_name

__all__ = [
    "ChatRequest",
    "ChatResult",
    "LLMBackend",
    "LLMOptions",
    "Progress",
    "TokenUsage",
    "UsageSummary",
    "fill_prompt",
    "load_prompt",
    "prompt_dirs",
    "prompt_names",
    "request_key",
    "summarize_usage",
]

def prompt_dirs(pm: Any = None) -> list[Path]:
    """The folders of named prompts the plugins contribute (``harness_prompt_dirs``), later plugins
    first; ``pm`` None: the installed plugins."""
    if pm is None:
        from harness.plugins import get_plugin_manager

        pm = get_plugin_manager()
    return [Path(d) for ds in pm.hook.harness_prompt_dirs() for d in ds]


def _named_prompts(pm: Any = None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in prompt_dirs(pm):
        for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
            found.setdefault(path.stem, path)
    return found


def prompt_names(pm: Any = None) -> list[str]:
    """The named prompts (file stems in the plugins' prompt folders)."""
    return sorted(_named_prompts(pm))


def load_prompt(name_or_path: str, pm: Any = None) -> str:
    """The text of a named prompt (``qa-rewrite``, from a plugin's prompt folder) or of a user's file
    (a path, ``$VARS``, ``~``, ``pkg:``).  ``pm``: the run's plugin manager (None: the installed plugins)."""
    from harness.registry import resolve_path

    if "/" in name_or_path or name_or_path.endswith(".txt") or Path(name_or_path).exists():
        path = Path(resolve_path(name_or_path))
        if not path.is_file():
            raise ConfigError(f"Prompt file {name_or_path!r} does not exist; give a file or one of: "
                              f"{', '.join(prompt_names(pm))}")
        return path.read_text(encoding="utf-8")
    named = _named_prompts(pm)
    if name_or_path not in named:
        raise unknown_name("prompt", name_or_path, sorted(named), "Or give the path of a .txt file.")
    return named[name_or_path].read_text(encoding="utf-8")


def fill_prompt(template: str, **fields: object) -> str:
    """Substitute ``$name`` / ``${name}`` fields (`string.Template`: braces in JSON examples stay as they are)."""
    try:
        return string.Template(template).substitute({k: str(v) for k, v in fields.items()})
    except KeyError as exc:
        raise ConfigError(f"Prompt needs the field {exc.args[0]!r}; given: {', '.join(sorted(fields)) or '(none)'}") \
            from None
    except ValueError as exc:
        raise ConfigError(f"Prompt template is malformed: {exc} (write a literal $ as $$)") from None

Message = Mapping[str, str]


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion: ``messages`` as ``[{"role": ..., "content": ...}]`` plus sampling params.

    ``model`` None means the backend's own model.  ``json`` asks for a JSON object where the
    server supports it (``response_format``); the prompt should ask for JSON too.
    """

    messages: Sequence[Message]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float = 0.0
    json: bool = False
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"messages": [dict(m) for m in self.messages], "model": self.model, "max_tokens": self.max_tokens,
                "temperature": self.temperature, "json": self.json, "seed": self.seed}


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class ChatResult:
    """The answer to one request.  ``error`` is set (and ``text`` empty) when it failed after retries.

    ``cached``: read from the response cache (no request sent; ``attempts`` is 0).
    ``attempts``: requests sent for this item, retries and the JSON fallback included.
    """

    text: str = ""
    finish_reason: str | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    cached: bool = False
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None

    def parsed_json(self) -> Any:
        """The text parsed as JSON (a surrounding Markdown code fence is dropped), or None if it is not JSON."""
        text = self.text.strip()
        if text.startswith("```"):
            text = text.split("\n", 1)[-1].rsplit("```", 1)[0]
        try:
            return json.loads(text)
        except ValueError:
            return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatResult:
        usage = data.get("usage") or {}
        return cls(text=str(data.get("text", "")), finish_reason=data.get("finish_reason"),
                   usage=TokenUsage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
                   cached=bool(data.get("cached", False)), error=data.get("error"),
                   attempts=int(data.get("attempts", 1)))


# Called once per request, as soon as its result is known: (index into the batch, result).
# Run on the caller's thread.  If it raises, the backend stops sending and re-raises.
Progress = Callable[[int, ChatResult], None]


@runtime_checkable
class LLMBackend(Protocol):
    """What ``harness_make_llm_backend`` returns."""

    name: str
    model: str  # the default model (a request's ``model`` overrides it), part of every cache key

    def complete(self, requests: Sequence[ChatRequest], *, progress: Progress | None = None) -> list[ChatResult]:
        """Answer every request, in order; failures come back as results with ``error`` set."""
        ...


@dataclass(frozen=True)
class LLMOptions:
    """How to reach or load the model, and how hard to try.  Backends ignore fields they do not use.

    ``base_url``/``api_key`` None: the backend's environment (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``).
    ``json_mode``: ``auto`` sends ``response_format`` when a request asks for JSON and drops it if the
    server rejects it; ``off`` never sends it.  ``cache_dir`` None: no response cache.
    ``extra``: backend-specific settings (``hf``: ``device``, ``dtype``, ``batch_size``).
    """

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    concurrency: int = 8
    max_retries: int = 4
    timeout_s: float = 120.0
    backoff_s: float = 1.0  # first retry waits about this long, doubling each time
    backoff_max_s: float = 30.0
    cache_dir: str | None = None
    json_mode: str = "auto"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"LLM concurrency must be at least 1, got {self.concurrency!r}")
        if self.max_retries < 0:
            raise ConfigError(f"LLM max_retries must be 0 or more, got {self.max_retries!r}")
        if self.json_mode not in ("auto", "off"):
            raise ConfigError(f"LLM json_mode {self.json_mode!r} is not one of: auto, off")


def request_key(backend: str, model: str, request: ChatRequest) -> str:
    """sha256 of the canonical JSON of backend, model, messages and parameters: the cache key."""
    body = request.as_dict()
    body.update(backend=backend, model=request.model or model)
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class UsageSummary:
    """What a batch cost: ``requests`` sent (retries included), tokens of answers not from the cache."""

    items: int
    requests: int
    cache_hits: int
    errors: int
    prompt_tokens: int
    completion_tokens: int

    def cost(self, usd_per_m_prompt: float, usd_per_m_completion: float) -> float:
        """Dollars at the given prices per million tokens."""
        return (self.prompt_tokens * usd_per_m_prompt + self.completion_tokens * usd_per_m_completion) / 1e6

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def summarize_usage(results: Sequence[ChatResult]) -> UsageSummary:
    fresh = [r for r in results if not r.cached]
    return UsageSummary(
        items=len(results), requests=sum(r.attempts for r in fresh), cache_hits=len(results) - len(fresh),
        errors=sum(1 for r in results if r.error is not None),
        prompt_tokens=sum(r.usage.prompt_tokens for r in fresh),
        completion_tokens=sum(r.usage.completion_tokens for r in fresh),
    )
