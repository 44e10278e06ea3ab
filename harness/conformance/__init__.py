"""Conformance checks: what a plugin's own tests call to check it against the harness's contracts.

One call per kind, each raising `AssertionError` that says what is wrong: `check_encoder`,
`check_category`, `check_scorer`, `check_aggregator`.  `harness.testing` re-exports them with the
`FakeEncoder`, and ``harness check PLUGIN_OR_PATH`` runs them on an installed plugin or a folder.
"""

from __future__ import annotations

from harness.conformance.aggregator import CHECK_AGGREGATOR_OPTIONS, check_aggregator, check_features
from harness.conformance.category import CategoryCheck, check_category
from harness.conformance.encoder import check_encoder
from harness.conformance.scorer import CHECK_ROW, check_scorer

__all__ = ["CHECK_AGGREGATOR_OPTIONS", "CHECK_ROW", "CategoryCheck", "check_aggregator", "check_category",
           "check_encoder", "check_features", "check_scorer"]
