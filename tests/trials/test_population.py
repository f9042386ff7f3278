import numpy as np
import pytest

from medtwin.errors import ParameterError
from medtwin.models import LogNormal, Normal
from medtwin.models.pk import (
    CovariateModel,
    Linear,
    OneCompartmentOral,
    Regimen,
    TwoCompartmentOral,
)
from medtwin.simulate import RK4
from medtwin.trials import CovariateDistribution, PopulationModel, exposures, simulate_population

OMEGA = np.array([[0.09, 0.03, 0.0], [0.03, 0.04, 0.0], [0.0, 0.0, 0.16]])


def population_model():
    covariates = CovariateDistribution(
        {"WT": LogNormal(70.0, 0.2), "AGE": Normal(50.0, 15.0, 18.0, 90.0)},
        correlation=[[1.0, 0.4], [0.4, 1.0]],
    )
    cov_model = CovariateModel.allometric(TwoCompartmentOral) + CovariateModel(
        (Linear("CL", "AGE", 50.0, -0.005),)
    )
    return PopulationModel(
        TwoCompartmentOral,
        theta={"CL": 6.0},
        omega=OMEGA,
        eta_names=("CL", "V1", "KA"),
        covariates=covariates,
        covariate_model=cov_model,
    )


def test_same_seed_gives_the_same_population_on_one_and_two_workers():
    model = population_model()
    one = model.sample(25_000, seed=11, chunk_size=10_000, workers=1)
    two = model.sample(25_000, seed=11, chunk_size=10_000, workers=2)
    for name in one.params:
        np.testing.assert_array_equal(one.params[name], two.params[name])
    np.testing.assert_array_equal(one.eta, two.eta)
    other = model.sample(25_000, seed=12, chunk_size=10_000)
    assert not np.array_equal(one.eta, other.eta)
    # results too: the same chunks through the same compiled code
    t = np.linspace(0.5, 48.0, 12)
    regimen = Regimen.oral(500, every_h=12, doses=4)
    small = model.sample(300, seed=3, chunk_size=100)
    a = simulate_population(small, regimen, t, chunk_size=100, workers=1)
    b = simulate_population(small, regimen, t, chunk_size=100, workers=2)
    np.testing.assert_array_equal(a, b)


def test_empirical_omega_and_covariate_correlation_for_100000_subjects():
    pop = population_model().sample(100_000, seed=2024)
    empirical = np.cov(pop.eta, rowvar=False)
    np.testing.assert_allclose(np.diag(empirical), np.diag(OMEGA), rtol=0.02)  # done-when: 2%
    assert empirical[0, 1] == pytest.approx(0.03, abs=0.002)
    wt, age = pop.covariates["WT"], pop.covariates["AGE"]
    assert age.min() >= 18.0 and age.max() <= 90.0
    assert np.median(wt) == pytest.approx(70.0, rel=0.01)
    assert np.corrcoef(np.log(wt), age)[0, 1] == pytest.approx(0.4, abs=0.03)
    # individual CL = 6 (WT/70)^0.75 (1 - 0.005 (AGE - 50)) exp(eta_CL)
    typical = 6.0 * (wt / 70) ** 0.75 * (1 - 0.005 * (age - 50))
    np.testing.assert_allclose(pop.params["CL"], typical * np.exp(pop.eta[:, 0]), rtol=1e-12)
    assert (pop.params["Q2"] != pop.params["Q2"][0]).any()  # allometry reaches every clearance


def test_closed_form_and_ode_populations_agree_and_exposures_summarise_them():
    pop = PopulationModel(OneCompartmentOral, omega={"CL": 0.09, "V": 0.04, "KA": 0.1}).sample(
        200, seed=5
    )
    regimen = Regimen.oral(400, every_h=12, doses=5)
    t = np.linspace(0.25, 60.0, 40)
    closed = simulate_population(pop, regimen, t)
    ode = simulate_population(pop, regimen, t, method="ode", solver=RK4(dt=0.02))
    np.testing.assert_allclose(ode, closed, rtol=1e-6)
    table = exposures(pop, regimen)
    assert table.columns.tolist() == ["auc_mg_h_l", "cmax_mg_l", "tmax_h", "cmin_mg_l"]
    assert (table.cmin_mg_l < table.cmax_mg_l).all() and (table.tmax_h >= 48.0).all()
    # the interval AUC at near steady state approaches dose / CL
    ratio = table.auc_mg_h_l / (400.0 / pop.params["CL"])
    assert ratio.median() == pytest.approx(1.0, abs=0.1)


def test_bad_population_models_are_rejected():
    with pytest.raises(ParameterError, match="positive definite"):
        PopulationModel(OneCompartmentOral, omega=[[0.1, 0.2], [0.2, 0.1]], eta_names=("CL", "V"))
    with pytest.raises(ParameterError, match="no parameter"):
        PopulationModel(OneCompartmentOral, omega={"Q9": 0.1})
    with pytest.raises(ParameterError, match="does not draw"):
        PopulationModel(
            OneCompartmentOral, covariate_model=CovariateModel.allometric(OneCompartmentOral)
        )
    with pytest.raises(ParameterError, match="diagonal"):
        CovariateDistribution({"WT": LogNormal(70, 0.2), "AGE": Normal(50, 10)}, [[2, 0], [0, 2]])
