"""`make_llm_backend`: a backend by name from the plugins, wrapped in the response cache."""

from __future__ import annotations

from typing import Any

from harness._exceptions import unknown_name
from harness.llm.backend import LLMBackend, LLMOptions
from harness.llm.cache import CachedBackend, ResponseCache

__all__ = ["make_llm_backend"]


def make_llm_backend(pm: Any, name: str, options: LLMOptions) -> LLMBackend:
    """Ask the plugins for backend ``name``; wrap it in the response cache when ``options.cache_dir`` is set."""
    backend = pm.hook.harness_make_llm_backend(name=name, options=options)
    if backend is None:
        names = sorted({n for ns in pm.hook.harness_llm_backend_names() for n in ns})
        raise unknown_name("LLM backend", name, names,
                           "" if names else "(none loaded: pip install -e ., or -p harness_plugins.llm)")
    if options.cache_dir:
        return CachedBackend(backend, ResponseCache(options.cache_dir))
    return backend  # type: ignore[no-any-return]
