"""Built-in data plugin: the shipped registry and tasks, and the instance/pair loaders."""

from __future__ import annotations

from pathlib import Path

from harness import CaptionPair, Instance, TaskSpec, hookimpl, resolve_path
from harness.data import load_hf_instances, load_instances_file, load_pairs_file

_ROOT = Path(__file__).resolve().parent.parent  # the source checkout (editable install)


@hookimpl(trylast=True)
def harness_registry_files() -> list[Path]:
    path = _ROOT / "registry.yaml"
    return [path] if path.exists() else []


@hookimpl(trylast=True)
def harness_task_dirs() -> list[Path]:
    import harness_tasks

    return [Path(harness_tasks.__file__).resolve().parent]


@hookimpl(trylast=True)
def harness_load_instances(task: TaskSpec) -> list[Instance] | None:
    if task.format == "hf" and not Path(resolve_path(task.source)).exists():
        return load_hf_instances(task.source, split=task.split, revision=task.revision)
    return load_instances_file(resolve_path(task.source), task.format)


@hookimpl(trylast=True)
def harness_load_pairs(source: str) -> list[CaptionPair] | None:
    return load_pairs_file(resolve_path(source))
