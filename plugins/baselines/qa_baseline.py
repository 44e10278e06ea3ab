"""``harness run --aggregator qa|qa-choice``: the QA baseline as a `harness.Baseline`.

`QABaseline.from_options` reads the ``--qa-*`` / ``--llm-*`` flags (added by this package's
``harness_add_baseline_options``) into `QAOptions`; ``run`` builds the LLM backends, calls the
engine (`harness_plugins.baselines.qa.run_qa`) and prints its tables, n/a rows, unanswerable
counts and cost.  The CLI writes the result it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import BaselineContext, ConfigError, EncoderSpec, LLMBackend, LLMOptions, make_llm_backend
from harness.api import RunResult

__all__ = ["GENERATIVE_FAMILIES", "QABaseline", "QAOptions"]

GENERATIVE_FAMILIES = ("causal-lm", "mllm")  # families whose own checkpoint can answer through the ``hf`` backend
_SECRET = ("llm_api_key",)  # flags never recorded in results.json


@dataclass(frozen=True)
class QAOptions:
    """The QA flags of one ``harness run``, read once from the parsed options."""

    mode: str  # open | choice
    rewriter: str | None = None
    judge: str | None = None  # default: the rewriter
    answer_base_url: str | None = None
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_concurrency: int = 8
    questions: str | None = None
    shuffle_control: bool = False
    retries: int = 2
    device: str | None = None  # for answerers and LLMs loaded here through ``hf``
    dtype: str | None = None


class QABaseline:
    """``qa`` (default mode open) or ``qa-choice`` (default mode choice); see `harness_plugins.baselines.qa`."""

    def __init__(self, name: str, options: QAOptions, recorded: Mapping[str, Any]) -> None:
        self.name, self.options, self.recorded = name, options, dict(recorded)

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> QABaseline:
        """Read the run's flags; refuse the similarity control before any work."""
        if options.get("control"):
            raise ConfigError("--control shuffled-captions is the similarity control; for the QA baseline use "
                              "--qa-shuffle-control")
        o = options.get
        qa = QAOptions(mode=o("qa_mode") or ("choice" if name == "qa-choice" else "open"), rewriter=o("qa_rewriter"),
                       judge=o("qa_judge") or o("qa_rewriter"), answer_base_url=o("qa_answer_base_url"),
                       llm_base_url=o("llm_base_url"), llm_api_key=o("llm_api_key"),
                       llm_concurrency=o("llm_concurrency") or 8, questions=o("qa_questions"),
                       shuffle_control=bool(o("qa_shuffle_control")), retries=o("qa_retries", 2),
                       device=o("device"), dtype=o("dtype"))
        return cls(name, qa, {k: v for k, v in options.items() if k not in ("command", *_SECRET)})

    def _backend(self, ctx: BaselineContext, model: str, *, base_url: str | None,
                 revision: str | None = None) -> LLMBackend:
        cache = None if ctx.no_cache else str(ctx.cache_root / "llm")
        if model.startswith("hf:"):
            extra = {"device": self.options.device, "dtype": self.options.dtype, "revision": revision}
            return make_llm_backend(ctx.pm, "hf", LLMOptions(model=model[3:], cache_dir=cache,
                                                             extra={k: v for k, v in extra.items() if v}))
        return make_llm_backend(ctx.pm, "openai", LLMOptions(model=model, base_url=base_url,
                                                             api_key=self.options.llm_api_key,
                                                             concurrency=self.options.llm_concurrency, cache_dir=cache))

    def _answerer(self, ctx: BaselineContext, spec: EncoderSpec) -> LLMBackend | None:
        if self.options.answer_base_url:
            return self._backend(ctx, spec.checkpoint, base_url=self.options.answer_base_url)
        if spec.family in GENERATIVE_FAMILIES:
            return self._backend(ctx, f"hf:{spec.checkpoint}", base_url=None, revision=spec.revision)
        return None

    def questions_file(self, ctx: BaselineContext) -> Path:
        """--qa-questions, else OUTPUT/qa-questions.jsonl, else one file per task selection in the cache."""
        if self.options.questions:
            return Path(self.options.questions)
        if ctx.output is not None:
            return ctx.output / "qa-questions.jsonl"
        return ctx.cache_root / "qa" / f"{'+'.join(ctx.task_names)}.jsonl"

    def run(self, context: BaselineContext) -> RunResult:
        """Rewrite, answer, judge and score; print the tables, n/a rows, unanswerable counts and cost."""
        from harness.api import comparison_table, result_tables
        from harness_plugins.baselines.qa import control_summary, run_qa, split_control

        ctx, opts = context, self.options
        questions = self.questions_file(ctx)
        rewriter = None if not opts.rewriter else self._backend(ctx, opts.rewriter, base_url=opts.llm_base_url)
        judge = None if opts.mode == "choice" or not opts.judge else self._backend(ctx, opts.judge,
                                                                                   base_url=opts.llm_base_url)
        with ctx.progress() as bar:
            result = run_qa(ctx.pm, encoders=ctx.encoders, tasks=ctx.tasks, rewriter=rewriter,
                            answerer_for=lambda spec: self._answerer(ctx, spec), judge=judge,
                            questions_file=questions, mode=opts.mode, seeds=ctx.seeds, bootstrap=ctx.bootstrap,
                            shuffle_control=opts.shuffle_control, retries=opts.retries,
                            recorded_options=self.recorded, progress=bar)
        real, shuffled = split_control(result)
        for table in result_tables(real) + result_tables(shuffled):
            ctx.show(table)
        comp = comparison_table(result)
        if comp is not None and len(result.comparisons) <= 30:
            ctx.show(comp)
        qa = result.provenance.options["qa"]
        for line in control_summary(result):
            ctx.say(line)
        for name, why in qa["not_applicable"].items():
            ctx.say(f"{name}: n/a ({why})")
        for cell, n in qa["unanswerable"].items():
            if n:
                ctx.say(f"{cell}: {n} unanswerable (malformed after {opts.retries} re-asks; counted wrong)")
        ctx.say(f"questions: {qa['questions']} in {questions}")
        usage = qa["usage"]
        for role, u in [("rewrite", usage["rewrite"]), ("judge", usage["judge"]),
                        *((f"answer {k}", v) for k, v in usage["answer"].items()), ("total", usage["total"])]:
            ctx.say(f"LLM {role}: {u['requests']} requests, {u['prompt_tokens']} prompt + {u['completion_tokens']} "
                    f"completion tokens, {u['cache_hits']} cached, {u['errors']} errors")
        return result
