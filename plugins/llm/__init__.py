"""Built-in chat LLM backends (``harness list llm-backends``) and the prompts shipped as files.

``openai``: any OpenAI-compatible chat endpoint (vLLM, SGLang, TGI, llama.cpp, hosted APIs) through
the official ``openai`` client.  ``hf``: a local ``transformers`` causal LM, generating greedily.
This module holds the hooks and imports neither client until a backend is asked for.
"""

from __future__ import annotations

from pathlib import Path

from harness import LLMBackend, LLMOptions, hookimpl
from harness import fill_prompt, load_prompt, prompt_names  # the one loader; re-exported here

__all__ = ["NAMES", "PROMPT_DIR", "fill_prompt", "harness_llm_backend_names", "harness_make_llm_backend",
           "harness_prompt_dirs", "load_prompt", "prompt_names"]

NAMES = ("hf", "openai")
PROMPT_DIR = Path(__file__).with_name("prompts")


@hookimpl(trylast=True)
def harness_prompt_dirs() -> list[Path]:
    """The shipped prompts: qa-rewrite, judge and build-data's."""
    return [PROMPT_DIR]


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
