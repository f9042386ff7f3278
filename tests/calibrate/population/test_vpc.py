"""Simulation from a population model and the visual predictive check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medtwin.calibrate.population import (
    Additive,
    PopulationData,
    PopulationModel,
    simulate_observations,
    vpc,
)
from medtwin.errors import ConfigurationError
from tests.calibrate.population.models import linear_predict, simulate_linear

OMEGA = np.array([[1.0, 0.2], [0.2, 0.09]])
ETAS = ["eta_a", "eta_b"]
TRUTH = PopulationModel(
    linear_predict,
    {"a": 10.0, "b": -1.0},
    pd.DataFrame(OMEGA, index=ETAS, columns=ETAS),
    Additive(0.5),
)


def test_simulations_have_the_models_moments():
    frame = pd.DataFrame({"ID": 1, "TIME": [0.0, 4.0], "DV": 0.0})
    sims = simulate_observations(TRUTH, PopulationData.from_frame(frame), 20000, seed=2)
    y = sims[:, 0, :]
    z = np.array([[1.0, 0.0], [1.0, 4.0]])
    cov = z @ OMEGA @ z.T + 0.25 * np.eye(2)
    np.testing.assert_allclose(y.mean(axis=0), [10.0, 6.0], atol=0.05)
    np.testing.assert_allclose(np.cov(y.T), cov, rtol=0.05)
    # the same seed gives the same draws
    again = simulate_observations(TRUTH, PopulationData.from_frame(frame), 20000, seed=2)
    np.testing.assert_array_equal(sims, again)


def test_padding_is_nan():
    frame = simulate_linear(5, seed=0, omega=OMEGA, sd=0.5)
    data = PopulationData.from_frame(frame)
    sims = simulate_observations(TRUTH, data, 3)
    assert np.isnan(sims[:, ~data.mask]).all()
    assert np.isfinite(sims[:, data.mask]).all()


def test_vpc_of_the_true_model_covers_the_data():
    frame = simulate_linear(200, seed=0, omega=OMEGA, sd=0.5)
    data = PopulationData.from_frame(frame)
    table = vpc(TRUTH, data, n_sim=200, bins=[-0.5, 0.5, 1.5, 3.0, 5.0, 7.0], seed=1)
    assert table["bin"].tolist() == [0, 1, 2, 3, 4]
    assert table["time"].tolist() == [0.0, 1.0, 2.0, 4.0, 6.0]
    for p in ("p5", "p50", "p95"):
        inside = (table[f"obs_{p}"] >= table[f"sim_{p}_lower"]) & (
            table[f"obs_{p}"] <= table[f"sim_{p}_upper"]
        )
        assert inside.sum() >= 4, (p, table)
    # and a misspecified model does not: a slope of -0.5 instead of -1
    wrong = TRUTH.replace(theta={"b": -0.5})
    late = vpc(wrong, data, n_sim=200, bins=[-0.5, 0.5, 1.5, 3.0, 5.0, 7.0], seed=1).iloc[-1]
    assert late["obs_p50"] < late["sim_p50_lower"]


def test_prediction_corrected_vpc_runs_and_bins_by_quantile():
    frame = simulate_linear(50, seed=5, omega=OMEGA, sd=0.5)
    table = vpc(
        TRUTH, PopulationData.from_frame(frame), n_sim=20, bins=3, prediction_corrected=True
    )
    assert len(table) == 3
    assert table["n_obs"].sum() == len(frame)


def test_vpc_input_errors():
    with pytest.raises(ConfigurationError, match="needs data="):
        vpc(TRUTH)
    with pytest.raises(ConfigurationError, match="NLMEEstimator or a PopulationModel"):
        vpc("fit")
    data = PopulationData.from_frame(simulate_linear(5, seed=0, omega=OMEGA, sd=0.5))
    with pytest.raises(ConfigurationError, match="increasing"):
        vpc(TRUTH, data, bins=[3.0, 1.0])
    with pytest.raises(ConfigurationError, match="n_rep"):
        simulate_observations(TRUTH, data, 0)
