"""LLM backends as the core sees them: the `LLMBackend` protocol, requests and results, usage and
cost, prompt files (`backend`), and the on-disk response cache that wraps every backend (`cache`).
The backends themselves (openai, hf) are plugins (``harness_make_llm_backend``).
"""
