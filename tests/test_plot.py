"""Glucose figures, on hand-made solutions (no simulation needed)."""

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from medtwin.errors import ConfigurationError
from medtwin.plot import glucose_figure, plot_glucose, png_bytes
from medtwin.simulate import Schedule, Solution

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fake_solution(n: int) -> Solution:
    t = np.arange(0, 1441, 5.0)
    rng = np.random.default_rng(0)
    bump = 80 * np.exp(-(((t - 480) / 60) ** 2))
    glucose = 120 + bump + rng.normal(0, 10, (n, 1)) + rng.normal(0, 2, (n, t.size))
    insulin = np.full((n, t.size), 0.08)
    insulin[:, 84] += 5.0
    cho = np.zeros((n, t.size))
    cho[:, 84] = 60.0
    return Solution(
        t=t,
        values={"Gsub": glucose, "insulin_delivered": insulin, "cho_announced": cho},
        units={"Gsub": "mg/dL", "insulin_delivered": "U", "cho_announced": "g"},
        patient_ids=tuple(f"p{i}" for i in range(n)),
        final_state={},
        model_name="Fake",
    )


def test_plot_writes_a_png(tmp_path):
    path = plot_glucose(fake_solution(3), Schedule().meal(420, 60), tmp_path / "g.png")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def test_many_patients_draw_a_band_not_every_trace():
    fig = glucose_figure(fake_solution(50), None)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 1  # the median
    assert any(isinstance(c, PolyCollection) for c in ax.collections)  # band (and target)
    assert "median" in ax.get_title()


def test_few_patients_draw_every_trace_and_meals_from_the_solution():
    fig = glucose_figure(fake_solution(3), None)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3
    assert [t.get_text() for t in ax.texts] == ["60 g"]
    assert len(fig.axes) == 2  # glucose and insulin panels


def test_png_bytes_and_other_formats(tmp_path):
    assert png_bytes(glucose_figure(fake_solution(1))).startswith(PNG_SIGNATURE)
    assert plot_glucose(fake_solution(1), None, tmp_path / "g.svg").read_text().find("<svg") >= 0


def test_bad_requests_raise_configuration_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="not recorded"):
        glucose_figure(fake_solution(1), observation="sensor")
    with pytest.raises(ConfigurationError, match="suffix"):
        plot_glucose(fake_solution(1), None, tmp_path / "noext")
    with pytest.raises(ConfigurationError, match="cannot write plot"):
        plot_glucose(fake_solution(1), None, tmp_path / "g.xyz")
