"""Diagnostic figures of a population fit."""

from __future__ import annotations

import pytest

from medtwin.calibrate.population import (
    NLMEEstimator,
    plot_gof,
    plot_individual_fits,
    plot_vpc,
)
from medtwin.errors import ConfigurationError
from tests.calibrate.population.models import FM3, theoph_data


@pytest.fixture(scope="module")
def fit():
    return NLMEEstimator(FM3, covariance=None).fit(theoph_data())


@pytest.mark.parametrize(
    "draw",
    [
        plot_gof,
        plot_individual_fits,
        lambda fit, path: plot_vpc(fit, path, n_sim=50, bins=6, log_y=True),
        lambda fit, path: plot_vpc(fit, path, n_sim=50, prediction_corrected=True),
    ],
)
def test_figures_are_written(fit, tmp_path, draw):
    out = draw(fit, tmp_path / "figure.png")
    data = out.read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 10_000


def test_svg_and_bad_paths(fit, tmp_path):
    assert plot_gof(fit, tmp_path / "gof.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ConfigurationError, match="needs a suffix"):
        plot_gof(fit, tmp_path / "gof")
    with pytest.raises(ConfigurationError, match="cannot write plot"):
        plot_gof(fit, tmp_path / "gof.xyz")
