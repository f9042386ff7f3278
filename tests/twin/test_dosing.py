"""Model-informed precision dosing: hand-checkable doses, MAP Bayes, PTA with its MC error."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from medtwin.calibrate.population import Additive
from medtwin.errors import ConfigurationError, NotCalibratedError, ParameterError, ScheduleError
from medtwin.models.pk import Dose, OneCompartment, Regimen, TwoCompartment, concentration
from medtwin.twin.dosing import (
    DosingTwin,
    ExposureLimit,
    ExposureTarget,
    PopulationPK,
    TDMHistory,
    vancomycin_goti2018,
)

CL, V = 5.0, 50.0


def one_compartment(theta, eta, cov):
    return {
        "CL": theta["CL"] * jnp.exp(eta["eta_CL"]),
        "V": theta["V"] * jnp.exp(eta["eta_V"]),
    }


def known(omega: float = 1e-14, sd: float = 0.5) -> PopulationPK:
    """One compartment, CL 5 L/h and V 50 L; omega ~ 0 means no uncertainty."""
    return PopulationPK(
        name="known",
        pk_model=OneCompartment,
        individual=one_compartment,
        theta={"CL": CL, "V": V},
        omega={"eta_CL": omega, "eta_V": omega},
        error=Additive(sd),
        covariates={},
    )


@pytest.fixture(scope="module")
def exact():
    return DosingTwin(known(), n_samples=100).fit(TDMHistory({}))


def test_bolus_dose_for_an_auc_target_is_analytic(exact):
    # AUC_tau at steady state = dose / CL, so AUC24 = 500 with tau = 12 h needs
    # dose = 500 * CL * tau / 24 = 1250 mg
    dose = exact.dose_for_target(12.0)
    assert dose == pytest.approx(500.0 * CL * 12.0 / 24.0, rel=1e-7)
    assert exact.dose_for_target(24.0, value=400.0) == pytest.approx(400.0 * CL, rel=1e-7)


def test_bolus_steady_state_exposures_are_analytic(exact):
    k, tau, dose = CL / V, 12.0, 1250.0
    row = exact.compare([Regimen.bolus(dose, every_h=tau)]).iloc[0]
    accumulation = 1.0 / (1.0 - math.exp(-k * tau))
    assert row["auc24_median"] == pytest.approx(dose / CL * 24 / tau, rel=1e-7)
    assert row["peak_median"] == pytest.approx(dose / V * accumulation, rel=1e-6)
    assert row["trough_median"] == pytest.approx(
        dose / V * math.exp(-k * tau) * accumulation, rel=1e-6
    )
    assert row["daily_dose_mg"] == 2500.0
    # no uncertainty: the target is met for sure, and the MC error is zero
    assert row["pta"] == pytest.approx(1.0) and row["pta_mcse"] == pytest.approx(0.0, abs=1e-12)
    assert row["p_toxic"] == pytest.approx(0.0)  # trough 10.8 mg/L < 20


def test_infusion_steady_state_exposures_are_analytic(exact):
    # trough at steady state of a 1-h infusion every 8 h (Gibaldi & Perrier, ch. 3):
    # (D / (T CL)) (1 - e^-kT) e^-k(tau - T) / (1 - e^-k tau); peak at the end of the infusion
    k, tau, t_inf, dose = CL / V, 8.0, 1.0, 1000.0
    row = exact.compare([Regimen.infusion(dose, t_inf, every_h=tau)]).iloc[0]
    rate_term = dose / (t_inf * CL) * (1 - math.exp(-k * t_inf)) / (1 - math.exp(-k * tau))
    assert row["trough_median"] == pytest.approx(rate_term * math.exp(-k * (tau - t_inf)), rel=1e-6)
    assert row["peak_median"] == pytest.approx(rate_term, rel=1e-6)
    assert row["auc24_median"] == pytest.approx(dose / CL * 3, rel=1e-7)


def test_pta_and_its_monte_carlo_error():
    twin = DosingTwin(known(omega=0.09), n_samples=2000, seed=3).fit(TDMHistory({}))
    regimen = Regimen.bolus(1250.0, every_h=12.0)
    row = twin.compare([regimen]).iloc[0]
    # AUC24 = 500 exp(-eta_CL), eta_CL ~ N(0, 0.3^2): P(400 <= AUC24 <= 600) in closed form
    from scipy.stats import norm

    exact_pta = norm.cdf(math.log(500 / 400) / 0.3) - norm.cdf(math.log(500 / 600) / 0.3)
    p = row["pta"]
    assert row["pta_mcse"] == pytest.approx(math.sqrt(p * (1 - p) / 2000), rel=1e-9)
    assert abs(p - exact_pta) < 4 * row["pta_mcse"]
    # another seed: a different estimate, within the stated errors
    other = DosingTwin(known(omega=0.09), n_samples=2000, seed=4).fit(TDMHistory({}))
    q = other.compare([regimen]).iloc[0]
    assert q["pta"] != p
    assert abs(q["pta"] - p) < 4 * math.hypot(row["pta_mcse"], q["pta_mcse"])


# -- vancomycin (Goti et al. 2018) ----------------------------------------------------------------

PATIENT = {"WT": 80.0, "CRCL": 60.0, "DIAL": 0.0}
GIVEN = Regimen.infusion(1000.0, 1.0, every_h=12.0, doses=4)
TRUE_ETA = {"eta_CL": math.log(0.7), "eta_V1": math.log(1.2), "eta_V2": 0.0}


def levels(times):
    model = vancomycin_goti2018()
    p = model.parameters(PATIENT, TRUE_ETA)
    c = concentration(TwoCompartment, p, GIVEN.to_doses(TwoCompartment), jnp.asarray(times))
    return np.asarray(c)


def test_goti_model_reproduces_table_2():
    m = vancomycin_goti2018()
    ref = m.parameters({"WT": 70.0, "CRCL": 120.0, "DIAL": 0.0})
    assert ref == pytest.approx({"CL": 4.5, "V1": 58.4, "Q2": 6.5, "V2": 38.4})
    dial = m.parameters({"WT": 70.0, "CRCL": 120.0, "DIAL": 1.0})
    assert dial["CL"] == pytest.approx(4.5 * 0.7) and dial["V1"] == pytest.approx(58.4 * 0.5)
    # CrCL is truncated at 150 mL/min; CL scales as (CrCL/120)^0.8
    assert m.parameters({"WT": 70.0, "CRCL": 200.0, "DIAL": 0.0})["CL"] == pytest.approx(
        4.5 * (150 / 120) ** 0.8
    )
    assert m.population.omega_matrix[0, 0] == pytest.approx(math.log1p(0.398**2))
    assert m.error.values == (3.4, 0.227)
    assert "Ther Drug Monit" in m.reference


def test_map_bayes_recovers_a_patient_from_precise_levels():
    # one compartment, levels with a 0.1 mg/L error: the MAP estimate is the truth
    model = known(omega=0.09, sd=0.1)
    truth = {"CL": 3.5, "V": 60.0}
    given = Regimen.bolus(500.0, every_h=12.0, doses=3)
    times = np.array([1.0, 4.0, 8.0, 11.9, 25.0, 30.0])
    c = concentration(OneCompartment, truth, given.to_doses(OneCompartment), jnp.asarray(times))
    twin = DosingTwin(model, n_samples=200).fit(TDMHistory({}, given, times, np.asarray(c)))
    assert twin.params_ == pytest.approx(truth, rel=0.01)
    assert twin.eta_["eta_CL"] == pytest.approx(math.log(0.7), abs=0.01)
    # and the dose for AUC24 = 500 follows the patient's own clearance
    assert twin.dose_for_target(24.0) == pytest.approx(500.0 * twin.params_["CL"], rel=0.01)


def test_vancomycin_levels_move_the_posterior_towards_the_patient():
    times = np.array([13.5, 16.0, 20.0, 23.5, 37.5, 40.0, 44.0, 47.5])
    twin = DosingTwin(seed=0).fit(TDMHistory(PATIENT, GIVEN, times, levels(times)))
    model = vancomycin_goti2018()
    truth = model.parameters(PATIENT, TRUE_ETA)
    typical = model.parameters(PATIENT)
    # the residual error (3.4 mg/L + 22.7 %) keeps eight levels from pinning CL down, but the
    # estimate moves from the typical value towards the truth, with a narrower distribution
    assert truth["CL"] < twin.params_["CL"] < typical["CL"]
    prior_sd = math.sqrt(model.population.omega_matrix[0, 0])
    assert math.sqrt(twin.eta_cov_.loc["eta_CL", "eta_CL"]) < 0.8 * prior_sd
    assert set(twin.parameters_.index) == {"CL", "V1", "Q2", "V2"}
    lo, hi = twin.parameters_.loc["CL", ["lower_90", "upper_90"]]
    assert lo < truth["CL"] < hi


def test_worked_example_recommends_a_regimen_with_its_mc_error():
    # two levels after the 4th dose of 1 g q12h: 1 h after the end of the infusion, and a trough
    times = [38.0, 47.5]
    measured = [27.5, 21.0]  # the truth gives 26.9 and 20.6 mg/L
    twin = DosingTwin(seed=0).fit(TDMHistory(PATIENT, GIVEN, times, measured))
    assert twin.n_levels_ == 2 and twin.ess_ == pytest.approx(4000)
    rec = twin.recommend()
    best = rec.summary
    assert best["pta"] == rec.candidates["pta"].max()
    assert 0 < best["pta_mcse"] < 0.02
    assert 400 <= best["auc24_median"] <= 600
    assert str(rec).startswith(f"{best['dose_mg']:g} mg every {best['tau_h']:g} h")
    # the given 1 g q12h overshoots this patient (CL below typical): the twin doses less per day
    given = twin.compare([Regimen.infusion(1000.0, 1.0, every_h=12.0)]).iloc[0]
    assert given["auc24_median"] > 600 and best["daily_dose_mg"] < 2000
    assert best["pta"] > given["pta"]


def test_importance_sampling_agrees_with_laplace_when_the_data_are_rich():
    times = np.array([13.5, 16.0, 20.0, 23.5, 37.5, 40.0, 44.0, 47.5])
    history = TDMHistory(PATIENT, GIVEN, times, levels(times))
    regimen = [Regimen.infusion(1000.0, 1.0, every_h=24.0)]
    lap = DosingTwin(seed=1).fit(history).compare(regimen).iloc[0]
    imp_twin = DosingTwin(seed=1, posterior="importance").fit(history)
    imp = imp_twin.compare(regimen).iloc[0]
    assert 0.3 * imp_twin.n_samples < imp_twin.ess_ < imp_twin.n_samples
    assert abs(lap["pta"] - imp["pta"]) < 4 * math.hypot(lap["pta_mcse"], imp["pta_mcse"]) + 0.02
    # the weighted MC error is larger than the equal-weight one of the same n
    p = imp["pta"]
    assert imp["pta_mcse"] > math.sqrt(p * (1 - p) / imp_twin.n_samples)


def test_toxicity_constraint_and_target_objects():
    twin = DosingTwin(
        known(omega=0.09),
        n_samples=500,
        target=ExposureTarget("auc24", 400.0, 600.0),
        toxicity=ExposureLimit("peak", 40.0),
    ).fit(TDMHistory({}))
    free = twin.recommend(intervals_h=(12.0, 24.0))
    capped = twin.recommend(intervals_h=(12.0, 24.0), max_toxicity=0.05)
    assert capped.summary["p_toxic"] <= 0.05 < free.summary["p_toxic"]
    assert str(ExposureTarget("trough", 10.0, 15.0)) == "trough 10-15 mg/L"
    assert str(ExposureLimit("auc24", 700.0)) == "auc24 > 700 mg.h/L"


def test_errors():
    with pytest.raises(NotCalibratedError, match="fit"):
        DosingTwin().compare([GIVEN])
    with pytest.raises(NotCalibratedError):
        _ = DosingTwin().params_
    with pytest.raises(ParameterError, match=r"missing \['CRCL'\]"):
        DosingTwin().fit(TDMHistory({"WT": 80.0, "DIAL": 0.0}))
    with pytest.raises(ConfigurationError, match="posterior"):
        DosingTwin(posterior="mcmc").fit(TDMHistory(PATIENT))
    with pytest.raises(ScheduleError, match="need the doses"):
        TDMHistory(PATIENT, None, [1.0], [10.0])
    with pytest.raises(ParameterError, match="same length"):
        TDMHistory(PATIENT, GIVEN, [1.0, 2.0], [10.0])
    with pytest.raises(ConfigurationError, match="low < high"):
        ExposureTarget("auc24", 600.0, 400.0)
    with pytest.raises(ConfigurationError, match="metric"):
        ExposureLimit("cmax", 40.0)
    twin = DosingTwin(n_samples=50).fit(TDMHistory(PATIENT))
    with pytest.raises(ScheduleError, match="one repeated administration"):
        twin.compare([GIVEN + Regimen.bolus(500.0, start_h=100.0)])
    with pytest.raises(ScheduleError, match="must end within the interval"):
        twin.compare([Regimen.infusion(1000.0, 13.0, every_h=12.0)])
    # doses as records work like a regimen
    records = [Dose(0.0, 1000.0, 1, duration_h=1.0), Dose(12.0, 1000.0, 1, duration_h=1.0)]
    fitted = DosingTwin(n_samples=50).fit(TDMHistory(PATIENT, records, [23.5], [12.0]))
    assert fitted.n_levels_ == 1


def test_oral_recommendation_for_an_oral_model():
    from medtwin.models.pk import OneCompartmentOral

    def oral(theta, eta, cov):
        return {"KA": theta["KA"], "CL": theta["CL"] * jnp.exp(eta["eta_CL"]), "V": theta["V"]}

    model = PopulationPK(
        "oral", OneCompartmentOral, oral, {"KA": 1.0, "CL": 5.0, "V": 50.0},
        {"eta_CL": 1e-14}, Additive(0.5), {},
    )  # fmt: skip
    twin = DosingTwin(model, n_samples=20).fit(TDMHistory({}))
    rec = twin.recommend(route="oral", doses_mg=[1000.0, 1250.0], intervals_h=(12.0,))
    # F = 1: AUC24 = 24/tau dose / CL, so 1250 mg q12h gives 500 mg.h/L
    assert rec.summary["dose_mg"] == 1250.0 and rec.summary["infusion_h"] == 0.0
    assert rec.summary["auc24_median"] == pytest.approx(500.0, rel=1e-6)
    assert "infused" not in str(rec)


def test_bands_are_the_weighted_quantiles_of_the_draws_concentrations():
    twin = DosingTwin(seed=0, n_samples=400).fit(
        TDMHistory(PATIENT, GIVEN, [38.0, 47.5], [27.5, 21.0])
    )
    table = GIVEN.to_doses(TwoCompartment)
    times = np.linspace(0.0, 48.0, 25)
    conc, w = twin.concentrations(table, times)
    bands = twin.bands(table, times, (0.05, 0.5, 0.95))
    assert bands.shape == (3, len(times))
    assert np.all(bands[0] <= bands[1]) and np.all(bands[1] <= bands[2])
    # the median at each time splits the weight in half
    j = len(times) // 2
    below = w[conc[:, j] < bands[1, j]].sum() / w.sum()
    assert below <= 0.5 + 1e-9
    assert below + w[conc[:, j] == bands[1, j]].sum() / w.sum() >= 0.5 - 1e-9
