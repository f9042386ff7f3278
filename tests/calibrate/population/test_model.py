"""PopulationModel and the residual error models: declarations checked when built."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from medtwin.calibrate.population import Additive, Combined, PopulationModel, Proportional
from medtwin.errors import ModelDefinitionError, ParameterError


def predict(theta, eta, s):
    return theta["a"] + eta["e"] + 0.0 * s["time"]


def test_error_models_give_their_variance():
    f = jnp.array([0.0, 2.0, 10.0])
    np.testing.assert_allclose(Additive(0.5).variance(f, jnp.array([0.5])), [0.25] * 3)
    np.testing.assert_allclose(Proportional(0.1).variance(f, jnp.array([0.1])), [0, 0.04, 1.0])
    np.testing.assert_allclose(
        Combined(0.5, 0.1).variance(f, jnp.array([0.5, 0.1])), [0.25, 0.29, 1.25]
    )
    assert Combined(0.5, 0.1).names == ("add_sd", "prop_cv")
    assert Combined(0.5, 0.1).replace((1.0, 0.2)) == Combined(1.0, 0.2)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), "0.5"])
def test_error_parameters_must_be_positive(bad):
    with pytest.raises(ParameterError, match="sd must be a finite number > 0"):
        Additive(bad)


def test_full_omega_from_a_dataframe():
    omega = pd.DataFrame([[0.1, 0.02], [0.02, 0.2]], index=["e", "f"], columns=["e", "f"])
    m = PopulationModel(predict, {"a": 1.0}, omega, Additive(1.0))
    assert m.diagonal is False
    assert m.eta_names == ("e", "f")
    np.testing.assert_allclose(m.omega_matrix, omega.to_numpy())


@pytest.mark.parametrize(
    ("omega", "kwargs", "error", "match"),
    [
        ({"e": -0.1}, {}, ParameterError, "positive definite"),
        ({}, {}, ModelDefinitionError, "at least one random effect"),
        (
            pd.DataFrame([[0.1, 0.02], [0.02, 0.2]], index=["e", "f"], columns=["e", "f"]),
            {"diagonal": True},
            ParameterError,
            "diagonal=False",
        ),
        (
            pd.DataFrame([[0.1, 0.0], [0.0, 0.2]], index=["e", "f"], columns=["e", "g"]),
            {},
            ModelDefinitionError,
            "same labels",
        ),
        ({"a": 0.1}, {}, ModelDefinitionError, r"\['a'\] appear more than once"),
    ],
)
def test_bad_declarations_are_rejected(omega, kwargs, error, match):
    with pytest.raises(error, match=match):
        PopulationModel(predict, {"a": 1.0}, omega, Additive(1.0), **kwargs)


def test_theta_must_be_finite_and_present():
    with pytest.raises(ParameterError, match="finite"):
        PopulationModel(predict, {"a": float("inf")}, {"e": 0.1}, Additive(1.0))
    with pytest.raises(ModelDefinitionError, match="at least one fixed effect"):
        PopulationModel(predict, {}, {"e": 0.1}, Additive(1.0))
    with pytest.raises(ModelDefinitionError, match="predict must be a function"):
        PopulationModel("f", {"a": 1.0}, {"e": 0.1}, Additive(1.0))


def test_replace_keeps_the_structure():
    m = PopulationModel(predict, {"a": 1.0}, {"e": 0.1}, Combined(1.0, 0.1))
    new = m.replace(
        theta={"a": 2.0}, omega=np.array([[0.3]]), sigma={"add_sd": 2.0, "prop_cv": 0.3}
    )
    assert new.theta == {"a": 2.0}
    assert new.omega_matrix.tolist() == [[0.3]]
    assert new.sigma == {"add_sd": 2.0, "prop_cv": 0.3}
    assert m.theta == {"a": 1.0}  # the original is unchanged
