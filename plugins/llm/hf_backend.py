"""The ``hf`` backend: a local ``transformers`` causal LM (or a VLM's generative class, text only).

Prompts go through the tokenizer's chat template; batches are left-padded and generated greedily
(``temperature`` 0), so an answer does not depend on what it was batched with.  Options:
``model`` (a hub id or a folder) and ``extra``: ``device`` (default: cuda when there is one),
``dtype`` (``float32``/``bfloat16``/``float16``; default: the checkpoint's), ``batch_size`` (8),
``revision``.  ``json`` is not enforced here: the prompt must ask for JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness import ChatRequest, ChatResult, ConfigError, EncoderError, LLMOptions, TokenUsage
from harness.api import Progress

__all__ = ["HFBackend"]

DEFAULT_MAX_NEW_TOKENS = 256


class HFBackend:
    """Batched generation with a local transformers model."""

    name = "hf"

    def __init__(self, options: LLMOptions) -> None:
        if not options.model:
            raise ConfigError("LLM backend 'hf' needs a model: a hub id or a local checkpoint folder")
        try:
            import torch
            import transformers
        except ImportError:
            raise ConfigError("LLM backend 'hf' needs transformers: pip install 'ted-harness[hf]'") from None
        extra = dict(options.extra)
        self.model = options.model
        self.batch_size = int(extra.get("batch_size", 8))
        self.device = str(extra.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
        kw: dict[str, Any] = {"revision": extra.get("revision")}
        if extra.get("dtype"):
            kw["dtype"] = getattr(torch, str(extra["dtype"]))
        net: Any
        try:
            self.tokenizer: Any = transformers.AutoTokenizer.from_pretrained(options.model, revision=kw["revision"])
            try:
                net = transformers.AutoModelForCausalLM.from_pretrained(options.model, **kw)
            except ValueError:  # a VLM checkpoint: its generative class, used for text only
                net = transformers.AutoModelForImageTextToText.from_pretrained(options.model, **kw)
        except OSError as exc:
            raise EncoderError(f"LLM backend 'hf' cannot load {options.model!r}: {exc}") from exc
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise ConfigError(f"LLM backend 'hf': the tokenizer of {options.model!r} has no chat template "
                              "(use an instruct/chat checkpoint)")
        self.tokenizer.padding_side = "left"  # generation continues from the right edge
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.net: Any = net.to(self.device).eval()
        self._torch = torch

    def complete(self, requests: Sequence[ChatRequest], *, progress: Progress | None = None) -> list[ChatResult]:
        for r in requests:
            if r.model is not None and r.model != self.model:
                raise ConfigError(f"LLM backend 'hf' holds {self.model!r}; a request asked for {r.model!r}")
        prompts = [self.tokenizer.apply_chat_template([dict(m) for m in r.messages], tokenize=False,
                                                      add_generation_prompt=True) for r in requests]
        # Batch requests that share sampling settings, longest prompts together (less padding).
        order = sorted(range(len(requests)), key=lambda i: (_settings(requests[i]), -len(prompts[i])))
        results: list[ChatResult | None] = [None] * len(requests)
        start = 0
        while start < len(order):
            first = _settings(requests[order[start]])
            end = start
            while end < len(order) and end - start < self.batch_size and _settings(requests[order[end]]) == first:
                end += 1
            chunk = order[start:end]
            for i, result in zip(chunk, self._generate([prompts[i] for i in chunk], requests[chunk[0]])):
                results[i] = result
                if progress is not None:
                    progress(i, result)
            start = end
        return [r for r in results if r is not None]

    def _generate(self, prompts: list[str], request: ChatRequest) -> list[ChatResult]:
        torch = self._torch
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        max_new = request.max_tokens or DEFAULT_MAX_NEW_TOKENS
        sample = request.temperature > 0
        if request.seed is not None:
            torch.manual_seed(request.seed)
        kw: dict[str, Any] = {"do_sample": sample, "max_new_tokens": max_new,
                              "pad_token_id": self.tokenizer.pad_token_id}
        if sample:
            kw["temperature"] = request.temperature
        else:  # silence the checkpoint's sampling defaults
            kw.update(temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.net.generate(**batch, **kw)
        new = out[:, batch["input_ids"].shape[1]:]
        eos = _eos_ids(self.net, self.tokenizer)
        results = []
        for row, mask in zip(new.tolist(), batch["attention_mask"]):
            stop = next((k for k, t in enumerate(row) if t in eos), None)
            kept = row if stop is None else row[:stop]
            # After EOS generate pads with pad_token_id; without EOS, every token is the answer.
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            results.append(ChatResult(
                text=text, finish_reason="stop" if stop is not None else "length",
                usage=TokenUsage(int(mask.sum()), len(kept) + (stop is not None)),
            ))
        return results


def _settings(request: ChatRequest) -> tuple[int | None, float, int | None]:
    return request.max_tokens, request.temperature, request.seed


def _eos_ids(net: Any, tokenizer: Any) -> set[int]:
    ids = getattr(net.generation_config, "eos_token_id", None)
    found = set(ids if isinstance(ids, list) else [] if ids is None else [ids])
    if tokenizer.eos_token_id is not None:
        found.add(tokenizer.eos_token_id)
    return found
