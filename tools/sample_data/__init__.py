"""Procedural scene graphs -> captions and verified TED-style statements.

See tools/README_sample_data.md; the entry point is tools/make_sample_data.py.
"""
