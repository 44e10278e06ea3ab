"""Built-in chat LLM backends (``harness list llm-backends``) and the prompts shipped as files.

``openai``: any OpenAI-compatible chat endpoint (vLLM, SGLang, TGI, llama.cpp, hosted APIs) through
the official ``openai`` client.  ``hf``: a local ``transformers`` causal LM, generating greedily.
This module holds the hooks and imports neither client until a backend is asked for.
"""

from __future__ import annotations

import string
from pathlib import Path

from harness import ConfigError, LLMBackend, LLMOptions, hookimpl, resolve_path, unknown_name

__all__ = ["NAMES", "PROMPT_DIR", "fill_prompt", "harness_llm_backend_names", "harness_make_llm_backend",
           "load_prompt", "prompt_names"]

NAMES = ("hf", "openai")
PROMPT_DIR = Path(__file__).with_name("prompts")


@hookimpl(trylast=True)
def harness_llm_backend_names() -> list[str]:
    return list(NAMES)


@hookimpl(trylast=True)
def harness_make_llm_backend(name: str, options: LLMOptions) -> LLMBackend | None:
    if name == "openai":
        from harness_plugins.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(options)
    if name == "hf":
        from harness_plugins.llm.hf_backend import HFBackend

        return HFBackend(options)
    return None


def prompt_names() -> list[str]:
    """The shipped prompts, by name (file stem under ``prompts/``)."""
    return sorted(p.stem for p in PROMPT_DIR.glob("*.txt"))


def load_prompt(name_or_path: str) -> str:
    """The text of a shipped prompt (``qa-rewrite``) or of a user's file (a path, ``$VARS``, ``~``, ``pkg:``)."""
    if "/" in name_or_path or name_or_path.endswith(".txt") or Path(name_or_path).exists():
        path = Path(resolve_path(name_or_path))
        if not path.is_file():
            raise ConfigError(f"Prompt file {name_or_path!r} does not exist; give a file or one of: "
                              f"{', '.join(prompt_names())}")
        return path.read_text(encoding="utf-8")
    shipped = PROMPT_DIR / f"{name_or_path}.txt"
    if not shipped.is_file():
        raise unknown_name("prompt", name_or_path, prompt_names(), "Or give the path of a .txt file.")
    return shipped.read_text(encoding="utf-8")


def fill_prompt(template: str, **fields: object) -> str:
    """Substitute ``$name`` / ``${name}`` fields (`string.Template`: braces in JSON examples stay as they are)."""
    try:
        return string.Template(template).substitute({k: str(v) for k, v in fields.items()})
    except KeyError as exc:
        raise ConfigError(f"Prompt needs the field {exc.args[0]!r}; given: {', '.join(sorted(fields)) or '(none)'}") \
            from None
    except ValueError as exc:
        raise ConfigError(f"Prompt template is malformed: {exc} (write a literal $ as $$)") from None
