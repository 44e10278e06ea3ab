"""Downstream: TED scores next to a generator's.

Owns the TED and downstream rows (`rows`: reading results and downstream CSV/JSON, writing
``downstream.csv``) and ``harness correlate`` (`correlate`: the join, Pearson/Spearman/Kendall with
intervals, per category, the scatter).  Scorers themselves are plugins (``harness_make_scorer``).
"""
