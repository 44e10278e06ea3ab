"""The paper's own numbers as reference rows, matched to the rows of a run.

`harness/evaluation/paper_reference.csv` (package data of the core) holds GRAN-TED's Tables 1, 2 and 7 (and the TED-6K column of
Table 3): ``table, encoder, checkpoint, extractor, aggregator, category, value, paper_name, note``,
values in percent.  A row of a run has a reference when it was evaluated on TED-6K itself (the
``ted6k`` tasks, or a file named ``TED-6k.json``) without ``--limit``, its encoder is the paper's
(same checkpoint, or same registry name) and its extractor and aggregator are the paper's setting;
the paper's overall values need all nine categories in the run (per-category ones need theirs).  The paper's
aggregators were trained on ~500k unreleased caption pairs, so a difference says as much about
the pairs as about the code; the report says so.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from harness._exceptions import ConfigError
from harness.data.categories import CATEGORIES
from harness.evaluation.results import RunResult

__all__ = ["PAPER_REFERENCE", "PaperValue", "is_ted6k_task", "load_reference", "reference_for"]

PAPER_REFERENCE = str(Path(__file__).with_name("paper_reference.csv"))  # the paper's numbers, shipped with the core
_FIELDS = ("table", "encoder", "checkpoint", "extractor", "aggregator", "category", "value", "paper_name", "note")
_TED6K_TASK = re.compile(r"^ted6k(-[a-z_-]+)?$")


@dataclass(frozen=True)
class PaperValue:
    """One number the paper prints: accuracy (%) of an encoder setting on TED-6K (overall or one category)."""

    table: str
    encoder: str
    checkpoint: str
    extractor: str
    aggregator: str
    category: str
    value: float
    paper_name: str
    note: str = ""


def load_reference(path: str | Path | None = None) -> list[PaperValue]:
    """Read the reference rows (default: the shipped paper tables)."""
    from harness.registry import resolve_path

    file = Path(resolve_path(str(path or PAPER_REFERENCE)))
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    reader = csv.DictReader(text.splitlines())
    missing = [f for f in _FIELDS if f not in (reader.fieldnames or [])]
    if missing:
        raise ConfigError(f"{file}: missing column(s) {missing}; expected {list(_FIELDS)}")
    out = []
    for line, row in enumerate(reader, 2):
        try:
            value = float(row["value"])
        except ValueError:
            raise ConfigError(f"{file}:{line}: field 'value' must be a number, got {row['value']!r}") from None
        out.append(PaperValue(**{k: row[k] or "" for k in _FIELDS if k != "value"}, value=value))
    return out


def is_ted6k_task(result: RunResult, task: str) -> bool:
    """Was ``task`` of ``result`` TED-6K itself (the shipped ``ted6k`` tasks or a ``TED-6k.json`` file)?"""
    prov = result.provenance.tasks.get(task)
    names = list(prov.tasks) if prov is not None and prov.tasks else [task]
    return all(_TED6K_TASK.match(n) or n.lower().replace("_", "-") == "ted-6k" for n in names)


def reference_for(result: RunResult, reference: list[PaperValue] | None = None
                  ) -> dict[tuple[str, str, str, str, str], PaperValue]:
    """``(task, encoder, extractor, aggregator, category) -> PaperValue`` for every row of ``result``
    that has one.  The first row of the file wins where two tables print the same setting."""
    refs = load_reference() if reference is None else reference
    out: dict[tuple[str, str, str, str, str], PaperValue] = {}
    limited = result.provenance.options.get("limit") is not None
    covered = {(r.task, r.category) for r in result.scores}
    for r in result.scores:
        if r.caption_type != "all" or r.control or limited or not is_ted6k_task(result, r.task):
            continue  # --limit: a subset of the instances, comparable to nothing the paper prints
        if r.category == "all" and not all((r.task, c) in covered for c in CATEGORIES):
            continue  # the paper's overall is over all nine categories (a partial file, or one category's task)
        enc = result.provenance.encoders.get(r.encoder)
        ckpt = enc.checkpoint if enc is not None else ""
        key = (r.task, r.encoder, r.extractor, r.aggregator, r.category)
        if key in out:
            continue
        for ref in refs:
            same_encoder = ref.encoder == r.encoder or (ref.checkpoint and ref.checkpoint == ckpt)
            same_setting = ref.aggregator == r.aggregator and (ref.extractor in (r.extractor, "-"))
            if same_encoder and same_setting and ref.category == r.category:
                out[key] = ref
                break
    return out
