"""Example ted-harness plugin: the statement category ``weather``, one YAML file plus its data.

A category is data: this module only tells the harness where the folder of category YAMLs is.
``categories/weather.yaml`` gives the category its own task ``weather`` (``data:``), which also
joins the group ``examples`` (``harness run --tasks weather`` or ``--tasks examples``).
"""

from __future__ import annotations

from pathlib import Path

from harness import hookimpl


@hookimpl
def harness_category_dirs() -> list[Path]:
    return [Path(__file__).resolve().parent / "categories"]
