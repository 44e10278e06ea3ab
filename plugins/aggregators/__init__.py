"""Built-in aggregators (``--aggregator``): GRAN-TED's trained ``context``, the untrained
``mean-pool`` and the official code's trained ``mean-pool-trained`` head.

Models live in `context` and `mean_pool`, what trained ones share (config, presets, losses,
loop, save format) in `training`; this module holds the hooks and imports none of them until
one is asked for (they import torch).
"""

from __future__ import annotations

from harness import Aggregator, AggregatorOptions, hookimpl

__all__ = ["NAMES", "harness_aggregator_names", "harness_aggregator_trains", "harness_make_aggregator"]

NAMES = ("context", "mean-pool", "mean-pool-trained")
TRAINED = ("context", "mean-pool-trained")


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
    if name == "mean-pool-trained":
        from harness_plugins.aggregators.mean_pool import TrainedMeanPoolAggregator

        return TrainedMeanPoolAggregator(width, n_layers_in, options)
    return None


@hookimpl(trylast=True)
def harness_aggregator_trains(name: str) -> bool | None:
    return (name in TRAINED) if name in NAMES else None
