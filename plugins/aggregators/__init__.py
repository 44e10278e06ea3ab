"""Built-in aggregators (``--aggregator``): GRAN-TED's trained ``context`` and the untrained ``mean-pool``.

Each lives in its own module (`context`, `mean_pool`); this module holds the hooks
and imports neither until one is asked for (they import torch).
"""

from __future__ import annotations

from harness import Aggregator, AggregatorOptions, hookimpl

__all__ = ["NAMES", "harness_aggregator_names", "harness_make_aggregator"]

NAMES = ("context", "mean-pool")


@hookimpl(trylast=True)
def harness_aggregator_names() -> list[str]:
    return list(NAMES)


@hookimpl(trylast=True)
def harness_make_aggregator(name: str, width: int, n_layers_in: int, options: AggregatorOptions) -> Aggregator | None:
    if name == "context":
        from harness_plugins.aggregators.context import ContextAggregator

        return ContextAggregator(width, n_layers_in, options)
    if name == "mean-pool":
        from harness_plugins.aggregators.mean_pool import MeanPoolAggregator

        return MeanPoolAggregator(options)
    return None
