"""Evaluation: a run from start to finish, and what it produces.

Owns the runner (`harness.evaluation.runner.run`: encoders x extractors x seeds on tasks), the
``--tasks`` loaded and the pairs that train (`tasks`), scoring
instances and slices (chance, permutation null, paired comparisons), the statistics (bootstrap,
McNemar, correlations on scipy), the typed results and their JSON form, aggregator checkpoints, and
the paper's reference rows a result is compared with.
"""
