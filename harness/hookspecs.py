"""Every hook a ted-harness plugin can implement.

A plugin is a module of plain functions decorated with ``harness.hookimpl``
and registered through the ``harness.plugins`` entry-point group -- the
built-in plugins included.  Contribution hooks return lists (all results are
collected); factory hooks are ``firstresult`` and return None for names they
do not own.  Built-ins implement factories with ``trylast=True`` so a
third-party plugin can override them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse

    from harness.baselines import Baseline
    from harness.llm.backend import LLMBackend, LLMOptions
    from harness.options import AggregatorOptions
    from harness.types import (
        Aggregator,
        CaptionPair,
        Encoder,
        EncoderSpec,
        ExtractorSpec,
        Instance,
        Scorer,
        TaskSpec,
    )

PROJECT = "harness"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def harness_registry_files() -> list[Path]:
    """Return registry YAML files whose ``encoders:`` entries you contribute.

    Called once when the registry is built.  Later files override earlier
    entries of the same name; files given with ``--registry`` come last.
    """
    raise NotImplementedError


@hookspec
def harness_task_dirs() -> list[Path]:
    """Return folders of task YAML files (one task per file, stem = task name); a missing folder adds nothing.

    Called, with no arguments, whenever the registry is built (every command that resolves
    ``--tasks``) and by ``harness list tasks``.  A task in a later folder replaces one of the same
    name; ``--include-path`` folders come last.
    """
    raise NotImplementedError


@hookspec
def harness_category_dirs() -> list[Path]:
    """Return folders of statement-category YAML files (one category per file; see `harness.data.category_defs`).

    Called when categories are listed or data is built.  A later folder's category replaces an
    earlier one of the same slug; built-ins (``trylast``) come first.
    """
    raise NotImplementedError


@hookspec
def harness_encoder_families() -> list[str]:
    """Return the encoder family names your ``harness_load_encoder`` builds.

    Called, with no arguments, when the registry is built (an ad hoc ``FAMILY:PATH`` encoder name
    is accepted only for a listed family), when no plugin builds an encoder (for 'did you mean')
    and by ``harness list families``.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def harness_load_encoder(spec: EncoderSpec) -> Encoder | None:
    """Build the encoder described by ``spec``, or return None if its family is not yours.

    Called once per encoder per run, before its texts are encoded, with the `EncoderSpec` the
    registry resolved (name, family, checkpoint, revision and every `EncoderOptions` field, the
    command-line overrides applied).  Return an object satisfying `harness.types.Encoder`
    (`harness.testing.check_encoder` checks it); raise `harness.EncoderError` or
    `harness.ConfigError` for a checkpoint or option you cannot honour.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def harness_wrap_model(model: Any, tokenizer: Any, spec: EncoderSpec) -> Encoder | None:
    """Wrap a model already in memory (e.g. a ``transformers`` model and its tokenizer) as an encoder,
    or return None if you do not know that kind of object.

    Called by `harness.evaluate` once per in-memory model it is given, before the run.  ``spec``
    carries the name and options to use; an empty ``spec.family`` means "infer it from the model".
    Use the model as it is (same object, device and dtype; put its train/eval mode back after each
    batch) so a training loop can evaluate the encoder it is training.
    """
    raise NotImplementedError


@hookspec
def harness_extractor_names() -> list[str]:
    """Return the ``--extract`` names you understand (for listings and 'did you mean').

    Called, with no arguments, when no plugin's ``harness_make_extractor`` knows an ``--extract``
    name (to list the known ones) and by ``harness list extractors``.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def harness_make_extractor(name: str, arg: str | None) -> ExtractorSpec | None:
    """Turn ``--extract NAME[:ARG]`` into an `ExtractorSpec`, or return None if the name is not yours.

    Called once per ``--extract`` item, before any encoder loads, with its ``name`` and ``arg``
    (the text after the first colon; None without one).  Raise `harness.ConfigError` for an
    ``arg`` you cannot use.
    """
    raise NotImplementedError


@hookspec
def harness_aggregator_names() -> list[str]:
    """Return the ``--aggregator`` names you provide.

    Called, with no arguments, when ``harness run`` / ``harness train`` checks ``--aggregator``
    before any work (a name no plugin lists is refused, with 'did you mean'), and by
    ``harness list aggregators``.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def harness_make_aggregator(
    name: str, width: int, n_layers_in: int, options: AggregatorOptions
) -> Aggregator | None:
    """Build the aggregator ``name`` for features of ``width``, or None if ``name`` is not yours.

    Called once per (encoder, extractor) before any encoding.  ``n_layers_in`` is 1,
    or the number of normalised layers a ``learned`` extractor hands over to be
    weighted inside the aggregator.  ``options`` holds the user's overrides (``None``
    fields: your preset's value).  The result satisfies `harness.Aggregator`; build
    weights lazily in ``fit``/``load``, because construction must be cheap.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def harness_aggregator_trains(name: str) -> bool | None:
    """Return whether aggregator ``name`` is trained on caption pairs (True/False), or None if ``name`` is not yours.

    Called once per run, before any work, with the ``--aggregator`` name: True makes the run load
    and check the training pairs first (and tell the user early that ``--train-pairs`` is needed).
    It must agree with the aggregator's ``trainable``.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def harness_load_instances(task: TaskSpec) -> list[Instance] | None:
    """Load the instances of ``task`` (all categories; core filters), or return None if the format is not yours.

    Called once per distinct (source, format) when ``--tasks`` load, before any encoder loads, with
    the resolved `TaskSpec` (``source`` a path, ``pkg:`` resource or hub id; ``format``; ``split``,
    ``revision``).  Return a list of `harness.Instance`.  Raise `harness.DataError` naming file,
    line and field on bad records.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def harness_load_pairs(source: str) -> list[CaptionPair] | None:
    """Load caption pairs for aggregator training from ``source``, or return None if it is not yours.

    Called once per run that trains an aggregator, before any model loads, with ``--train-pairs``
    (or the file a named pair set points at).  Return a list of `harness.CaptionPair`; raise
    `harness.DataError` naming file, line and field on bad records.
    """
    raise NotImplementedError


@hookspec
def harness_scorer_names() -> list[str]:
    """Return the downstream scorer names your ``harness_make_scorer`` builds (``harness list scorers``).

    Called, with no arguments, when ``--downstream`` / ``harness score --scorer`` names a scorer (a
    listed name is built by name, anything else is read as a results file) and by
    ``harness list scorers``.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def harness_make_scorer(name: str, options: Mapping[str, Any]) -> Scorer | None:
    """Build the downstream scorer ``name`` for ``harness correlate`` / ``harness score``, or None if
    ``name`` is not yours.

    Called once per ``--downstream`` or ``harness score --scorer``.  ``options`` holds what the user
    gave: ``{"path": FILE}`` for a recorded-results file, ``{"arg": ARG}`` for ``NAME:ARG``, and the
    ``--option KEY=VALUE`` pairs; ``harness score`` adds ``out_dir``, ``progress`` and, when training logs
    are on, ``tensorboard`` (a folder: a scorer that trains writes each training's events to
    ``tensorboard/<run>/`` through `harness.api.open_training_log`).  The result satisfies `harness.Scorer`.  Raise `harness.ConfigError`
    or `harness.DataError` for bad options.  A scorer that reads a row's encoder or features gives
    itself an optional ``bind(context)``: ``harness score`` calls it once, before any row, with the
    command's `harness.downstream.context.ScoreContext` (its plugin manager and registry, each row's
    encoder as its run recorded it, features through the run's cache); never rebuild those yourself.
    """
    raise NotImplementedError


@hookspec
def harness_prompt_dirs() -> list[Path]:
    """Return folders of prompt files (``NAME.txt``) that `harness.load_prompt` finds by ``NAME``.

    Called each time a prompt is looked up by name (``--qa-rewrite-prompt qa-rewrite``, build-data's
    prompts), with no arguments; return a list of folders (empty: none).  The built-in LLM plugin
    ships ``qa-rewrite``, ``judge`` and the build-data prompts this way; a later plugin's file of the
    same name wins.
    """
    raise NotImplementedError


@hookspec
def harness_llm_backend_names() -> list[str]:
    """Return the LLM backend names your ``harness_make_llm_backend`` builds (``harness list llm-backends``).

    Called, with no arguments, by ``harness list llm-backends`` and when no plugin builds a
    requested backend (for 'did you mean').
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def harness_make_llm_backend(name: str, options: LLMOptions) -> LLMBackend | None:
    """Build the chat LLM backend ``name``, or return None if ``name`` is not yours.

    Called once per backend per command.  The result satisfies `harness.LLMBackend`: it answers a
    batch in order, reports each result through ``progress`` as it arrives, and records a request
    that failed after retries as a result with ``error`` set instead of raising.  Core adds the
    response cache (``options.cache_dir``) around it.  Import your client inside this hook, and
    raise `harness.ConfigError` naming the missing package or option.
    """
    raise NotImplementedError


@hookspec
def harness_baseline_names() -> list[str]:
    """Return the baseline names your ``harness_make_baseline`` builds.

    Called when ``harness run --aggregator NAME`` decides whether NAME is a baseline (before any
    work), for 'did you mean', and by ``harness list baselines``.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def harness_make_baseline(name: str, options: Mapping[str, Any]) -> Baseline | None:
    """Build the baseline ``name``, or return None if ``name`` is not yours.

    Called once by ``harness run --aggregator NAME``, after the encoders are resolved and before
    the tasks load.  ``options`` holds every parsed ``harness run`` flag by its argparse dest, yours
    from ``harness_add_baseline_options`` included.  Check them here and raise `harness.ConfigError`,
    so a bad flag costs nothing.  The result satisfies `harness.Baseline`; the CLI then calls its
    ``run(context)`` with a `harness.BaselineContext` and writes the result it returns.
    """
    raise NotImplementedError


@hookspec
def harness_add_baseline_options(parser: argparse.ArgumentParser) -> None:
    """Add your baseline's flags to ``harness run`` (return nothing).

    Called once when the command-line parser is built, after entry points and ``-p`` plugins have
    loaded, with the ``run`` sub-command's parser.  Put the flags in an argument group named for
    your baseline and prefix them with its name (``--qa-mode``); their values reach
    ``harness_make_baseline`` in ``options``.
    """
    raise NotImplementedError
