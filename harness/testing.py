"""Offline helpers for testing plugins: a seeded `FakeEncoder`, a 5-row task and the conformance checks.

Register ``harness.testing`` as a plugin (``-p harness.testing``) to get the
encoder family ``fake`` (registry name ``fake``) and the task ``tiny``.

A plugin's own tests check what it contributes against the harness's contracts with one call
per kind; each raises `AssertionError` saying what is wrong::

    from harness.testing import check_aggregator, check_category, check_encoder, check_scorer

    def test_my_plugin_conforms():
        check_encoder(my_plugin.harness_load_encoder, EncoderSpec(name="x", family="mine", checkpoint=...))
        check_category("my_plugin/categories/weather.yaml")
        check_scorer(my_plugin.harness_make_scorer, "my-scorer")
        check_aggregator(my_plugin.harness_make_aggregator, "my-pool", trains=False)

``harness check PLUGIN_OR_PATH`` runs the same checks on an installed plugin or a source folder.
"""

from __future__ import annotations

from pathlib import Path

from harness._fake import CHECK_TEXTS, DATA_DIR, NOT_YOURS, TINY_PAIRS, TINY_TASK, FakeEncoder
from harness.conformance import (
    CHECK_AGGREGATOR_OPTIONS,
    CHECK_ROW,
    CategoryCheck,
    check_aggregator,
    check_category,
    check_encoder,
    check_features,
    check_scorer,
)
from harness.hookspecs import hookimpl
from harness.types import EncoderSpec

__all__ = ["CHECK_AGGREGATOR_OPTIONS", "CHECK_ROW", "CHECK_TEXTS", "CategoryCheck", "DATA_DIR", "FakeEncoder",
           "NOT_YOURS", "TINY_PAIRS", "TINY_TASK", "check_aggregator", "check_category", "check_encoder",
           "check_features", "check_scorer", "harness_encoder_families", "harness_load_encoder",
           "harness_registry_files", "harness_task_dirs"]


@hookimpl
def harness_encoder_families() -> list[str]:
    return ["fake"]


@hookimpl
def harness_load_encoder(spec: EncoderSpec) -> FakeEncoder | None:
    if spec.family != "fake":
        return None
    seed = int(spec.checkpoint.rsplit("-", 1)[-1]) if spec.checkpoint.startswith("seed-") else 0
    return FakeEncoder(spec.name, seed=seed, options=spec.options, revision=spec.revision)


@hookimpl
def harness_registry_files() -> list[Path]:
    return [DATA_DIR / "_registry.yaml"]


@hookimpl
def harness_task_dirs() -> list[Path]:
    return [DATA_DIR]
