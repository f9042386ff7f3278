"""The self-contained HTML report."""

import base64
import re

import numpy as np
import pandas as pd

from medtwin.report import format_value, html_table, render_report, write_report


def test_values_are_formatted_and_cells_escaped():
    assert format_value(3) == "3" and format_value(np.int64(4)) == "4"
    assert format_value(154.33) == "154.3" and format_value(2.345) == "2.35"
    assert format_value(float("nan")) == "–" and format_value("x") == "x"
    table = html_table(pd.DataFrame({"<b>": ["<script>"]}, index=pd.Index(["a&b"], name="p")))
    assert "<script>" not in table and "&lt;script&gt;" in table and "a&amp;b" in table


def test_report_is_one_self_contained_page(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    metrics = pd.DataFrame(
        {"tir_70_180_percent": [91.0, 75.5]},
        index=pd.Index(["adult#001", "child#001"], name="patient"),
    )
    path = write_report(
        tmp_path / "r.html",
        title="Demo <day>",
        scenario={"meals": "07:00 45 g", "patients": 2},
        figure_png=png,
        tables=[("Per patient", metrics)],
        notes="Glucose & insulin",
    )
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>Demo &lt;day&gt;</title>" in page and "Glucose &amp; insulin" in page
    assert "07:00 45 g" in page and "adult#001" in page and "91.0" in page
    # nothing is fetched from elsewhere
    assert not re.search(r"https?://|<script|<link|@import", page)
    embedded = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert embedded and base64.b64decode(embedded.group(1)) == png


def test_report_without_figure_or_tables():
    page = render_report(title="empty")
    assert "<img" not in page and "<table" not in page
