"""A self-contained HTML report: one page, figures inlined as base64 PNG, tables as HTML.

Plain string templating with :func:`html.escape` on every value that comes from outside; no
scripts, no CDN, no external files, so the page opens offline and can be archived or mailed as is.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["format_value", "html_table", "render_report", "write_report"]

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1d2733; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d8dee6; }
.meta { color: #5b6876; font-size: .9rem; }
dl.scenario { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dl.scenario dt { font-weight: 600; }
dl.scenario dd { margin: 0; }
img.figure { max-width: 100%; height: auto; border: 1px solid #d8dee6; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0 1rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e3e8ee; text-align: right; }
th { background: #f3f6f9; position: sticky; top: 0; }
td:first-child, th:first-child { text-align: left; }
tr:hover td { background: #fafbfc; }
"""


def format_value(value: Any) -> str:
    """Format a table cell: integers as is, reals to 2 decimals (1 from 10 up), NaN as a dash."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        v = float(value)
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(value)


def html_table(frame: pd.DataFrame, *, caption: str | None = None) -> str:
    """``frame`` as an HTML table (index first), every cell escaped.

    >>> import pandas as pd
    >>> print(html_table(pd.DataFrame({"TIR": [81.34]}, index=pd.Index(["a<b"], name="patient"))))
    <table>
    <thead><tr><th>patient</th><th>TIR</th></tr></thead>
    <tbody>
    <tr><td>a&lt;b</td><td>81.3</td></tr>
    </tbody>
    </table>
    """
    esc = html.escape
    index_name = " / ".join(str(n) for n in frame.index.names if n is not None)
    head = "".join(f"<th>{esc(str(c))}</th>" for c in (index_name, *frame.columns))
    rows = []
    for key, row in zip(frame.index, frame.itertuples(index=False, name=None), strict=True):
        label = " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)
        cells = "".join(f"<td>{esc(format_value(v))}</td>" for v in row)
        rows.append(f"<tr><td>{esc(label)}</td>{cells}</tr>")
    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{esc(caption)}</caption>")
    parts += [f"<thead><tr>{head}</tr></thead>", "<tbody>", *rows, "</tbody>", "</table>"]
    return "\n".join(parts)


def render_report(
    *,
    title: str,
    scenario: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
    figure_png: bytes | None = None,
    tables: Sequence[tuple[str, pd.DataFrame]] = (),
    notes: str | None = None,
    generated: datetime | None = None,
    figures: Sequence[tuple[str, bytes]] = (),
) -> str:
    """Render the report as one HTML document: title, scenario, inlined figures and tables.

    Parameters
    ----------
    title:
        The page title and heading.
    scenario:
        What was simulated, as (label, value) pairs shown in a definition list.
    figure_png:
        PNG bytes, embedded as a ``data:`` URI so the page needs no other file.
    tables:
        (heading, table) pairs, each rendered with :func:`html_table`.
    notes:
        A paragraph of plain text under the title.
    generated:
        The time stamp shown (default: now, UTC).
    figures:
        (heading, PNG bytes) pairs shown after the tables, each embedded as a ``data:`` URI.

    Examples
    --------
    >>> page = render_report(title="t <1>", scenario={"patients": 3})
    >>> "<title>t &lt;1&gt;</title>" in page and "http" not in page
    True

    """
    esc = html.escape
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    items = scenario.items() if isinstance(scenario, Mapping) else scenario
    body = [f"<h1>{esc(title)}</h1>", f'<p class="meta">medtwin report, generated {esc(when)}</p>']
    if notes:
        body.append(f"<p>{esc(notes)}</p>")
    pairs = [f"<dt>{esc(str(k))}</dt><dd>{esc(format_value(v))}</dd>" for k, v in items]
    if pairs:
        body += ["<h2>Scenario</h2>", '<dl class="scenario">', *pairs, "</dl>"]
    if figure_png is not None:
        data = base64.b64encode(figure_png).decode("ascii")
        body += [
            "<h2>Glucose</h2>",
            f'<img class="figure" alt="simulated glucose" src="data:image/png;base64,{data}">',
        ]
    for heading, frame in tables:
        body += [f"<h2>{esc(heading)}</h2>", html_table(frame)]
    for heading, png in figures:
        data = base64.b64encode(png).decode("ascii")
        body += [
            f"<h2>{esc(heading)}</h2>",
            f'<img class="figure" alt="{esc(heading)}" src="data:image/png;base64,{data}">',
        ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(path: str | Path, **kwargs: Any) -> Path:
    """Render with :func:`render_report` (same keyword arguments) and write UTF-8 to ``path``."""
    path = Path(path)
    path.write_text(render_report(**kwargs), encoding="utf-8")
    return path
