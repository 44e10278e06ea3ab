"""The report's content model (sections of paragraphs, tables and figures) and its two renderings.

`to_markdown` writes GitHub-flavoured Markdown whose figures are PNG files beside it;
`to_html` writes ONE self-contained page: inline CSS, figures as base64 PNG data URIs, no
script, nothing fetched from the network.  Number formatting lives here too, so the Markdown,
the HTML and the terminal agree on every number.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.report.tables import format_p as _format_p

__all__ = [
    "Cell",
    "Figure",
    "Para",
    "Section",
    "Table",
    "format_p",
    "pct",
    "signed",
    "to_html",
    "to_markdown",
]

P_FLOOR = 1e-3


def format_p(p: float | None, *, exact: bool = False, resolution: float = P_FLOOR) -> str:
    """`harness.report.tables.format_p` with the report's dash for a missing value."""
    return _format_p(p, exact=exact, resolution=resolution, missing="–")


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage without the sign: 0.5681 -> "56.8"."""
    return "–" if value is None or math.isnan(value) else f"{100 * value:.{digits}f}"


def signed(value: float, digits: int = 1) -> str:
    """A difference in points with its sign: +1.2, -0.4, +0.0."""
    text = f"{value:+.{digits}f}"
    return "+0." + "0" * digits if text == "-0." + "0" * digits else text


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, and a CSS class (``good``/``bad``/``base``/``dim``) for the HTML."""

    text: str
    css: str = ""


@dataclass(frozen=True)
class Para:
    """A paragraph of plain text (escaped in HTML)."""

    text: str
    css: str = ""


@dataclass(frozen=True)
class Table:
    """A table: header row, body rows (str or `Cell`), optional caption below it."""

    headers: Sequence[str]
    rows: Sequence[Sequence[str | Cell]]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG figure: ``name`` is its file stem in Markdown and its id in HTML."""

    name: str
    png: bytes
    caption: str


Block = Para | Table | Figure


@dataclass
class Section:
    """A titled part of the report; ``id`` anchors it in the HTML."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


def _text(cell: str | Cell) -> str:
    return cell.text if isinstance(cell, Cell) else cell


def _md_cell(cell: str | Cell) -> str:
    return _text(cell).replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, sections: Sequence[Section], *, figure_file: str = "report-{name}.png") -> str:
    """The report as Markdown; figure ``name`` is linked as ``figure_file.format(name=name)``."""
    out = [f"# {title}", ""]
    out += [f"- [{s.title}](#{s.id})" for s in sections] + [""]
    for s in sections:
        out += [f'<a id="{s.id}"></a>', "", f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Para):
                out += [b.text, ""]
            elif isinstance(b, Table):
                out.append("| " + " | ".join(map(_md_cell, b.headers)) + " |")
                out.append("|" + "|".join("---" for _ in b.headers) + "|")
                out += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in b.rows]
                out += ([""] + [f"*{b.caption}*"] if b.caption else []) + [""]
            else:
                out += [f"![{b.caption}]({figure_file.format(name=b.name)})", "", f"*{b.caption}*", ""]
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:1.7rem;margin:.2em 0 .1em}h2{font-size:1.25rem;margin:0 0 .6em;border-bottom:2px solid #dde2ea;padding-bottom:.3em}
nav{margin:.4em 0 1.2em;font-size:.92rem}nav a{margin-right:1.1em;color:#2457a7;text-decoration:none}
section{background:#fff;border:1px solid #e2e6ee;border-radius:10px;padding:18px 22px;margin:18px 0;
box-shadow:0 1px 2px rgba(0,0,0,.04)}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.88rem;margin:.4em 0;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;border-bottom:1px solid #edf0f4;text-align:right;white-space:nowrap}
th{background:#f0f3f8;font-weight:600;position:sticky;top:0}
td.l,th.l{text-align:left}tbody tr:hover{background:#f7f9fc}
.good{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}.base{background:#eef4ff;font-weight:600}
.dim{color:#7a8394}.caption{color:#5b6474;font-size:.85rem;margin:.2em 0 1em}
figure{margin:14px 0}figure img{max-width:100%;height:auto;border:1px solid #eef0f4;border-radius:6px}
figcaption{color:#5b6474;font-size:.85rem}p.note{color:#5b6474;font-size:.9rem}
"""


_NUMERIC = re.compile(r"^[-+–<>\s\d.,\[\]()e%†:/]*$")


def _left_columns(t: Table) -> set[int]:
    """Columns of mostly words (names, paths) are left-aligned; numbers stay right-aligned."""
    left = {0}
    for j in range(len(t.headers)):
        texts = [_text(row[j]) for row in t.rows if j < len(row) and _text(row[j])]
        if texts and sum(not _NUMERIC.match(x) for x in texts) * 2 > len(texts):
            left.add(j)
    return left


def _html_table(t: Table) -> str:
    left = _left_columns(t)
    head = "".join(f'<th class="l">{html.escape(h)}</th>' if j in left else f"<th>{html.escape(h)}</th>"
                   for j, h in enumerate(t.headers))
    body = []
    for row in t.rows:
        cells = []
        for i, c in enumerate(row):
            css = c.css if isinstance(c, Cell) else ""
            css = (css + " l").strip() if i in left else css
            attr = f' class="{css}"' if css else ""
            cells.append(f"<td{attr}>{html.escape(_text(c))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f'<p class="caption">{html.escape(t.caption)}</p>' if t.caption else ""
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>{cap}'


def _html_block(b: Block) -> str:
    if isinstance(b, Para):
        return f'<p class="{b.css}">{html.escape(b.text)}</p>' if b.css else f"<p>{html.escape(b.text)}</p>"
    if isinstance(b, Table):
        return _html_table(b)
    data = base64.b64encode(b.png).decode("ascii")
    return (f'<figure id="fig-{b.name}" data-figure="{b.name}"><img alt="{html.escape(b.caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(b.caption)}</figcaption></figure>')


def to_html(title: str, sections: Sequence[Section], *, subtitle: str = "") -> str:
    """The report as one self-contained HTML page (no script, no external resource)."""
    nav = "".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(subtitle)}</p>' if subtitle else "",
        f"<nav>{nav}</nav>",
    ]
    for s in sections:
        parts.append(f'<section id="{s.id}" data-section="{s.id}"><h2>{html.escape(s.title)}</h2>')
        parts += [_html_block(b) for b in s.blocks]
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(p for p in parts if p) + "\n"
