"""Data: instances, caption pairs and statement categories.

Owns the file loaders (`loaders`: TED JSONL, the official TED-6K JSON, ``datasets``; caption pairs),
reading task YAMLs (`task_yaml`: ``include:`` chains, key checks, data paths),
pairs made from a ``datasets`` dataset (`pairs`), the statement categories as data (`categories`,
`category_defs`) and ``harness build-data`` (`build`: an LLM writes positives and negatives,
validated, resumable, reviewed).
"""
