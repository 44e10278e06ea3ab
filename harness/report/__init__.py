"""Reports: the terminal tables of a run and ``harness report``'s page.

Owns the rich tables (`tables`), the report's sections (`sections`: leaderboard, categories,
sweeps, seeds), its figures (`figures`, `plots`), the page builder (`page`: every section, the
provenance and the paper comparison) and rendering to Markdown and self-contained HTML (`render`).
"""
