"""Baselines: methods scored on TED instances like an encoder row, without reading its embeddings.

The QA-style baseline (an LLM answers questions about the caption; ``plugins/baselines/``) is
one; a third party ships more the same way.  A baseline plugin implements

- ``harness_baseline_names()``: its names, run as ``harness run --aggregator NAME`` and shown by
  ``harness list baselines``;
- ``harness_make_baseline(name, options)``: a `Baseline` for ``name`` (None for other names);
- optionally ``harness_add_baseline_options(parser)``: its own ``harness run`` flags.

``harness run`` resolves the encoders and loads the tasks, builds the baseline, calls
``Baseline.run(context)`` with a `BaselineContext`, and writes the returned `RunResult` to
``--output`` like any run's (`harness.cli.outputs.write_outputs`), so ``harness report`` puts it beside
similarity runs.  A baseline never rebuilds the plugin manager or registry and never imports the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from harness.cli.argtypes import non_negative_int, positive_int
from harness._exceptions import unknown_name

if TYPE_CHECKING:
    import pluggy

    from harness.features.store import ProgressFactory
    from harness.registry import Registry
    from harness.evaluation.results import RunResult
    from harness.evaluation.tasks import TaskSet
    from harness.types import EncoderSpec

__all__ = ["Baseline", "BaselineContext", "baseline_names", "make_baseline", "non_negative_int", "positive_int"]
# non_negative_int / positive_int: argparse types for a baseline's flags (a bad value is one line, exit 2)


@dataclass(frozen=True)
class BaselineContext:
    """What ``harness run`` hands a baseline: the run's resolved inputs and its ways to report.

    Built once by the CLI after every name is resolved and every task loaded (``--limit`` applied)."""

    pm: pluggy.PluginManager
    registry: Registry
    encoders: Sequence[EncoderSpec]  # --encoders, resolved, with the encoder flags applied
    tasks: Sequence[TaskSet]  # --tasks, loaded
    task_names: Sequence[str]  # --tasks as given (e.g. to name a file per task selection)
    seeds: Sequence[int]
    bootstrap: int  # bootstrap resamples for CIs (0: none)
    output: Path | None  # --output, already checked; the CLI writes the returned result there
    cache_root: Path  # the harness cache folder ($HARNESS_CACHE_DIR or ~/.cache/ted-harness)
    no_cache: bool  # --no-cache: write no cache of your own either
    options: Mapping[str, Any]  # every `harness run` flag by dest, yours included (as `harness_make_baseline` got)
    progress: Callable[[], AbstractContextManager[ProgressFactory | None]]  # `with ctx.progress() as bar:`
    say: Callable[[str], None]  # print one plain line (no markup)
    show: Callable[[Any], None]  # print a rich renderable, e.g. a table of `harness.report.tables.result_tables`


@runtime_checkable
class Baseline(Protocol):
    """A baseline built by ``harness_make_baseline``; construction is cheap and checks the options."""

    def run(self, context: BaselineContext) -> RunResult:
        """Score every encoder on every task and seed; print tables and notes through ``context``.

        Return the result (`harness.evaluation.results.RunResult`, the usual score records): the CLI writes it
        to ``context.output``.  Raise `harness.ConfigError` for what the user can fix."""
        ...


def baseline_names(pm: Any) -> list[str]:
    """Every baseline name the loaded plugins provide, sorted."""
    return sorted({n for ns in pm.hook.harness_baseline_names() for n in ns})


def make_baseline(pm: Any, name: str, options: Mapping[str, Any]) -> Baseline:
    """Ask the plugins for baseline ``name``; an unknown name says which exist."""
    baseline = pm.hook.harness_make_baseline(name=name, options=options)
    if baseline is None:
        raise unknown_name("baseline", name, baseline_names(pm), "(harness list baselines)")
    return baseline  # type: ignore[no-any-return]
