"""Build TED data from your captions with an LLM: ``harness build-data`` (paper Figs. 11-13 in spirit).

For every (caption, category) an LLM writes one true statement (or null: nothing of that kind in
the caption) and then three minimally different false ones.  Each answer is checked
(`check_positive`, `check_negatives`); an invalid one is re-asked with a reminder naming the
problem, a bounded number of times, then reported per item -- never raised.  Outputs: TED JSONL,
the official TED-6K JSON layout, a review sheet for people, and ``build_report.json``.
"""

from harness.data.build._cli import add_build_data_parser, run_build_data
from harness.data.build._io import (
    OUTPUT_FILES,
    REVIEW_APPLIED_FILE,
    REVIEW_COLUMNS,
    ReviewReport,
    apply_review,
    apply_saved_review,
    read_captions,
    screen_captions,
    write_outputs,
)
from harness.data.build._pipeline import (
    ITEMS_FILE,
    BuildOptions,
    BuildReport,
    CaptionItem,
    ItemRecord,
    build_statements,
    read_records,
)
from harness.data.build._validate import check_negatives, check_positive

__all__ = [
    "ITEMS_FILE",
    "OUTPUT_FILES",
    "REVIEW_APPLIED_FILE",
    "REVIEW_COLUMNS",
    "BuildOptions",
    "BuildReport",
    "CaptionItem",
    "ItemRecord",
    "ReviewReport",
    "add_build_data_parser",
    "apply_review",
    "apply_saved_review",
    "build_statements",
    "check_negatives",
    "check_positive",
    "read_captions",
    "read_records",
    "run_build_data",
    "screen_captions",
    "write_outputs",
]
