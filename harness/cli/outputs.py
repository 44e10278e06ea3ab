"""Output places of every command, and a finished run's folder.

One mechanism for every ``--out``/``--output``: `check_output_place` refuses, before any work, a place
that cannot take the output (a folder where a file is expected or the reverse, a path under a file,
``/proc/x``, a read-only or permission-denied folder), in one line naming the flag; `atomic_write`
writes one file (text or bytes: JSON, CSV, PNG, HTML) under a unique temporary name beside it and
renames it over, removing the temporary name on any failure; `staged_folder` has a command write all
its files into a fresh folder and moves them into place only when every one is written, removing the
command's own stale files (figures of an earlier run) so a folder never mixes two runs.

`write_outputs` writes a finished run's folder (results.json and samples.jsonl, layer-weight figures,
report.md/.html); shared by ``harness run`` and every baseline (`harness.baselines`), so a baseline's
results read back, report and compare like any run's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from harness._atomic import OutputError, atomic_path, atomic_write, umask
from harness._exceptions import ConfigError, HarnessError
from harness.evaluation.results import RunResult, write_results

__all__ = ["RUN_FILES", "REPORT_FILES", "OutputError", "atomic_path", "atomic_write", "check_output_place",
           "staged_folder", "write_outputs"]

REPORT_FILES = ("report.md", "report.html", "report-*.png")  # what `harness report` writes (figures vary by data)
RUN_FILES = (*REPORT_FILES, "layer_weights.json", "layer_weights.png", "config.yaml")  # a run's own files besides results


def check_output_place(path: str | Path, flag: str, *, kind: str = "folder") -> Path:
    """Refuse now, before any work, an output place that cannot take ``kind`` ("folder" or "file"):
    one `ConfigError` naming ``flag``, what was given and what to do.  Nothing is left behind (a
    folder created to probe it is removed again)."""
    text = str(path)
    if not text.strip():
        raise ConfigError(f"{flag} is empty; give a {kind} path")
    target = Path(text)
    if kind == "file":
        if target.is_dir():
            raise ConfigError(f"{flag} {text!r} is a folder; give a file path (e.g. {str(target / 'pairs.jsonl')!r})")
        folder = target.parent
    else:
        if target.exists() and not target.is_dir():
            raise ConfigError(f"{flag} {text!r} is a file; give a folder")
        folder = target
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"{flag} {text!r}: {str(existing)!r} is a file, not a folder; choose another {flag}")
    created: list[Path] = []
    try:
        for missing in reversed([folder, *folder.parents][:len(folder.parts) - len(existing.parts)]):
            try:
                missing.mkdir()
                created.append(missing)
            except FileExistsError:  # made meanwhile by another process (a torchrun rank, a parallel run)
                if not missing.is_dir():
                    raise
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{flag} {text!r} cannot be written ({exc.strerror or exc}); choose another {flag}") from None
    finally:
        for made in reversed(created):
            with contextlib.suppress(OSError):
                made.rmdir()
    return target


@contextlib.contextmanager
def staged_folder(out: str | Path, flag: str, *, ours: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a fresh folder inside ``out`` to write every output file into; when the block ends
    normally each is renamed into ``out`` and ``out``'s files matching ``ours`` (glob patterns of this
    command's own files) that this write did not produce are removed; when it fails nothing in ``out``
    changes.  An `OSError` becomes one `ConfigError` naming ``flag``."""
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
    except OSError as exc:
        raise OutputError(f"{flag} {str(folder)!r} cannot be written ({exc.strerror or exc}); "
                          f"choose another {flag}", str(exc.strerror or exc)) from None
    try:
        yield stage
        written = sorted(p.name for p in stage.iterdir() if p.is_file())
        for name in written:
            os.chmod(stage / name, 0o666 & ~umask())
            os.replace(stage / name, folder / name)
        for pattern in ours:
            for old in folder.glob(pattern):
                if old.name not in written and old.is_file():
                    old.unlink()
    except (OSError, OutputError) as exc:
        why = exc.reason if isinstance(exc, OutputError) else str(exc.strerror or exc)
        raise OutputError(f"cannot write {flag} {str(folder)!r} ({why}); nothing in it was changed", why) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_outputs(result: RunResult, out_dir: str | Path, say: Callable[[str], None], *,
                  files: Mapping[str, str] | None = None) -> list[Path]:
    """Write ``result`` to ``out_dir`` and ``say`` which files were written; return their paths.
    ``files``: more text files (name -> content) written with the figures, e.g. the run's config.yaml.

    On a late failure (disk full, folder gone) the results are kept in a temporary folder and a
    `HarnessError` names it, so a finished run is never lost."""
    from harness.report.plots import write_layer_weights
    from harness.report.page import write_report

    try:
        with staged_folder(out_dir, "--output", ours=RUN_FILES) as stage:  # figures and report: all, or none
            staged = write_layer_weights(result.training, stage)
            staged += write_report([(Path(out_dir).resolve().name, result)], stage)  # report.md, .html, figures
            for name, text in (files or {}).items():
                (stage / name).write_text(text, encoding="utf-8")
                staged.append(stage / name)
            paths = write_results(result, out_dir)  # atomically, each; the staged files follow only after them
        paths += [Path(out_dir) / Path(p).name for p in staged]
    except (OSError, OutputError) as exc:
        why = exc.reason if isinstance(exc, OutputError) else exc.strerror or exc
        keep = Path(tempfile.gettempdir()) / f"ted-harness-results-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        try:
            write_results(result, keep)
        except OSError:
            raise HarnessError(f"cannot write results to {str(out_dir)!r} ({why}), nor to "
                               f"{str(keep)!r}; the tables above are all that is left of this run") from None
        raise HarnessError(f"cannot write results to {str(out_dir)!r} ({why}); they are kept in "
                           f"{str(keep)!r}") from None
    say("wrote " + ", ".join(str(p) for p in paths))
    return paths
