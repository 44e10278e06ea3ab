"""Built-in data plugin: the shipped registry and tasks, and the instance/pair loaders."""

from __future__ import annotations

from pathlib import Path

from harness import CaptionPair, Instance, TaskSpec, hookimpl, resolve_path
from harness import load_hf_instances, load_instances_file, load_pairs_file

REGISTRY = Path(__file__).resolve().parent / "registry.yaml"  # package data: ships in the wheel


@hookimpl(trylast=True)
def harness_registry_files() -> list[Path]:
    return [REGISTRY]


@hookimpl(trylast=True)
def harness_task_dirs() -> list[Path]:
    import harness_tasks

    return [Path(harness_tasks.__file__).resolve().parent]


@hookimpl(trylast=True)
def harness_category_dirs() -> list[Path]:
    import harness_tasks

    return [Path(harness_tasks.__file__).resolve().parent / "categories"]


@hookimpl(trylast=True)
def harness_load_instances(task: TaskSpec) -> list[Instance] | None:
    if task.format == "hf" and not Path(resolve_path(task.source)).exists():
        return load_hf_instances(task.source, split=task.split, revision=task.revision)
    return load_instances_file(resolve_path(task.source), task.format)


@hookimpl(trylast=True)
def harness_load_pairs(source: str) -> list[CaptionPair] | None:
    return load_pairs_file(resolve_path(source))
