"""The ``--tasks`` of a run, loaded (`load_task_sets` -> `TaskSet`), and the pairs that train its
aggregators (`training_options`): the part of a run that is settled before any encoder loads."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pluggy

from harness._exceptions import ConfigError, unknown_name
from harness.data.categories import category_slug
from harness.data.loaders import absent_categories, data_place, file_sha256, select_categories
from harness.evaluation.results import TaskProvenance, TaskSetProvenance
from harness.options import TrainingOptions
from harness.registry import Registry, resolve_path
from harness.types import Instance

__all__ = ["PAIRS_HELP", "TaskSet", "load_task_sets", "training_options"]

log = logging.getLogger("harness")
PAIRS_HELP = ("give --train-pairs FILE: caption pairs of the same image or video, JSONL {a, b, group} or the "
              "official processed_caption1/2 records; make them from a datasets dataset with several captions per "
              "item with `harness pairs DATASET --caption-column C --id-column ID --out pairs.jsonl`; or name a "
              "shipped pair set (`harness list pairs`: open = real human captions of videos and images, demo = synthetic); "
              "--aggregator mean-pool needs no pairs")


@dataclass(frozen=True)
class TaskSet:
    """One ``--tasks`` entry: its instances (groups are unions of their tasks) and where they came from."""

    name: str
    instances: list[Instance]
    provenance: TaskSetProvenance
    train_pairs: str | None = None  # the pair set every task names as its default (None: none, or they differ)


def load_task_sets(pm: pluggy.PluginManager, registry: Registry, names: Sequence[str], *,
                   limit: int | None = None, say: Callable[[str], None] | None = None,
                   official_filters: bool = False) -> list[TaskSet]:
    """Resolve and load every ``--tasks`` entry (at most ``limit`` instances per category).

    ``official_filters`` drops image captions' temporal instances first, as the official evaluator's
    ``filter_data`` does (``say`` gets how many; recorded as ``official_filtered``).

    A name that expands to several tasks (a group such as ``ted6k``, a folder of task YAMLs) runs
    the categories its data has: a task whose category the data lacks is left out and ``say`` (else
    the log) gets one line naming them; only when none is left does it stop.  A task named alone
    stops on a missing category (`select_categories`).
    """
    loaded: dict[tuple[str, str], list[Instance]] = {}
    out = []
    for name in names:
        instances: list[Instance] = []
        sources = {}
        specs = registry.resolve_tasks([name])
        partial = len(specs) > 1
        absent: dict[str, list[str]] = {}  # data place -> the categories it lacks
        for task in specs:
            key = (task.source, task.format)
            if key not in loaded:
                got = pm.hook.harness_load_instances(task=task)
                if got is None:
                    raise ConfigError(f"No plugin loads task {task.name!r} (format {task.format!r})")
                loaded[key] = got
            keep = select_categories(task, loaded[key], partial=partial)
            missing = absent_categories(task, loaded[key])
            if missing:
                absent.setdefault(data_place(task), []).extend(category_slug(c) for c in missing)
            if not keep:
                continue
            instances.extend(keep)
            path = resolve_path(task.source)
            sources[task.name] = TaskProvenance(source=task.source, format=task.format, revision=task.revision,
                                                sha256=file_sha256(path) if os.path.isfile(path) else None,
                                                version=task.version, category_version=task.category_version)
        if absent:
            lacks = "; ".join(f"{where} has no instance of {', '.join(cats)}" for where, cats in absent.items())
            have = sorted({i.category for i in instances})
            if not instances:
                raise ConfigError(f"--tasks {name!r}: {lacks}, so none of its tasks has data; give a file with "
                                  "those categories")
            note = (f"--tasks {name!r}: {lacks}; running the {len(have)} categories it has "
                    f"({', '.join(have)})")
            if say is not None:
                say(note)
            else:
                log.warning("%s", note)
        instances, dropped = _official_filter(name, instances, say) if official_filters else (instances, 0)
        instances = _limit(instances, limit)
        short = Path(name).stem if os.path.exists(name) else name  # a file or folder is named by its stem
        defaults = {t.train_pairs for t in specs}
        out.append(TaskSet(short, instances, TaskSetProvenance(tasks=sources, n=len(instances),
                                                               official_filtered=dropped),
                           train_pairs=defaults.pop() if len(defaults) == 1 else None))
    return out


def _official_filter(name: str, instances: list[Instance],
                     say: Callable[[str], None] | None) -> tuple[list[Instance], int]:
    """The official evaluator's ``filter_data``: no instance of an image caption in the temporal category."""
    kept = [i for i in instances if not (i.caption_type == "image" and i.category == "temporal")]
    dropped = len(instances) - len(kept)
    if not kept:
        raise ConfigError(f"--tasks {name!r}: --official-filters drops all {dropped} instances (image x temporal); "
                          "drop --official-filters")
    note = (f"--official-filters: dropped {dropped} of {len(instances)} instances of --tasks {name!r} "
            "(image captions x temporal, as the official evaluator's filter_data)")
    if say is not None:
        say(note)
    else:
        log.warning("%s", note)
    return kept, dropped


def _limit(instances: list[Instance], limit: int | None) -> list[Instance]:
    if limit is None:
        return instances
    seen: dict[str, int] = {}
    kept = []
    for inst in instances:
        if seen.get(inst.category, 0) < limit:
            seen[inst.category] = seen.get(inst.category, 0) + 1
            kept.append(inst)
    return kept


def training_options(registry: Registry, *, train_pairs: str | None, max_pairs: int | None = None,
                     tasks: Sequence[TaskSet] = (), trains: bool = True, aggregator: str = "context",
                     retrain: bool = False, ckpt_dir: str | None = None,
                     strict_contamination: bool = False) -> TrainingOptions:
    """Which pairs train the aggregators: ``train_pairs`` (a file or source, or a named pair set such as
    ``open``), else the pair set every task names as its default (``train_pairs:`` in its YAML), cut to
    that set's ``default_max`` unless ``max_pairs`` is given.  A set named explicitly is used whole;
    ``max_pairs`` 0 means all.  ``strict_contamination``: pairs that overlap the evaluated instances
    stop the run (`harness.data.contamination`)."""
    pairs = train_pairs
    if pairs is None and trains:
        defaults = {t.train_pairs for t in tasks}
        default = defaults.pop() if len(defaults) == 1 else None
        if default is None:
            why = ", and the tasks name no default pair set" if tasks else ""
            raise ConfigError(f"aggregator {aggregator!r} is trained on caption pairs{why}: {PAIRS_HELP}")
        if registry.pair_set(default) is None:
            raise unknown_name("pair set", default, registry.pairs, hint="(a task's train_pairs must name one of these)")
        pairs = default
        if max_pairs is None:
            # The default keeps the embedded run within minutes on 2 CPU cores; --max-pairs 0 lifts it.
            max_pairs = registry.pairs[default].default_max
    preset = registry.pair_set(pairs) if pairs is not None else None
    if pairs is not None and preset is None and not any(c in pairs for c in "/.:~$") and not os.path.exists(pairs):
        # a bare word is a pair set's name: say which exist rather than "file not found"
        raise unknown_name("pair set", pairs, registry.pairs,
                           hint="(or give a pairs file: JSONL {a, b, group})")
    return TrainingOptions(train_pairs=pairs, pairs_source=preset.source if preset else None,
                           max_pairs=max_pairs or None, retrain=retrain, ckpt_dir=ckpt_dir,
                           strict_contamination=strict_contamination)
