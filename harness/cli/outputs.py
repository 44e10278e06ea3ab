"""Write a finished run's folder: results.json and samples.jsonl, layer-weight figures, report.md/.html.

Shared by ``harness run`` and every baseline (`harness.baselines`), so a baseline's results read
back, report and compare like any run's.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness._exceptions import HarnessError
from harness.evaluation.results import RunResult, write_results

__all__ = ["write_outputs"]


def write_outputs(result: RunResult, out_dir: str | Path, say: Callable[[str], None]) -> list[Path]:
    """Write ``result`` to ``out_dir`` and ``say`` which files were written; return their paths.

    On a late failure (disk full, folder gone) the results are kept in a temporary folder and a
    `HarnessError` names it, so a finished run is never lost."""
    from harness.report.plots import write_layer_weights
    from harness.report.page import write_report

    try:
        paths = write_results(result, out_dir) + write_layer_weights(result.training, out_dir)
        paths += write_report([(Path(out_dir).resolve().name, result)], out_dir)  # report.md, .html, figures
    except OSError as exc:
        keep = Path(tempfile.gettempdir()) / f"ted-harness-results-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        try:
            write_results(result, keep)
        except OSError:
            raise HarnessError(f"cannot write results to {str(out_dir)!r} ({exc.strerror or exc}), nor to "
                               f"{str(keep)!r}; the tables above are all that is left of this run") from None
        raise HarnessError(f"cannot write results to {str(out_dir)!r} ({exc.strerror or exc}); they are kept in "
                           f"{str(keep)!r}") from None
    say("wrote " + ", ".join(str(p) for p in paths))
    return [Path(p) for p in paths]
