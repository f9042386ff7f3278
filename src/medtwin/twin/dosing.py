r"""Model-informed precision dosing: a patient's PK twin picks the dose and the interval.

A :class:`DosingTwin` holds a published population PK model (:class:`PopulationPK`), is fitted to
one patient's covariates, doses and measured concentrations (therapeutic drug monitoring,
:class:`TDMHistory`), and compares candidate regimens by the probability that the patient's
steady-state exposure lands in a target window (probability of target attainment, PTA) and the
probability that it exceeds a toxicity threshold, both with their Monte-Carlo standard errors.

The steps:

1. **MAP-Bayesian individualisation.**  The patient's random effects ``eta`` have the prior
   ``Normal(0, Omega)`` of the population model and the likelihood of the measured levels under
   its residual error; the posterior mode and its Laplace covariance come from
   :func:`~medtwin.calibrate.population.empirical_bayes` (with no levels: the prior).
2. **Posterior draws.**  ``posterior="laplace"`` draws ``eta ~ Normal(eta^, Sigma^)`` with equal
   weights; ``"importance"`` draws from a multivariate t (4 degrees of freedom) around the same
   mode and weights each draw by ``p(y | eta) p(eta) / q(eta)`` (self-normalised importance
   sampling: the exact posterior of a nonlinear model, ``ess_`` reports the effective size).
3. **Exposure at steady state** of each candidate regimen, for every draw: the concentration
   profile over one dosing interval ``tau`` after infinitely many doses (NONMEM ``SS=1``, in closed
   form), ``AUC24 = AUC_tau * 24 / tau`` by Simpson's rule (split at the end of the infusion),
   the trough just before the next dose and the peak.  These are the patient's true exposures
   (the posterior predictive of the exposure, without assay error).
4. **Probabilities with Monte-Carlo error.**  With normalised weights ``w_k`` and indicator
   ``I_k`` (draw ``k`` in the window), ``PTA = sum w_k I_k`` and its MC standard error
   ``sqrt(sum w_k^2 (I_k - PTA)^2)`` (``sqrt(PTA (1 - PTA) / n)`` for equal weights).

For a linear model every exposure is proportional to the dose, so the dose reaching a value
``X`` of a metric at a chosen posterior quantile is ``X / quantile(metric per mg)``
(:meth:`DosingTwin.dose_for_target`).  Hand check (one compartment, intravenous bolus every
``tau``, no uncertainty): ``AUC_tau,ss = dose / CL``, so ``dose = AUC24_target * CL * tau / 24``.

The worked example is vancomycin with the two-compartment model of Goti et al. (2018, Ther Drug
Monit 40:212-221; :func:`vancomycin_goti2018`) and the AUC24 window 400-600 mg.h/L of the 2020
consensus guideline (Rybak MJ et al., Am J Health Syst Pharm 77:835-864).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.special import gammaln

from medtwin.calibrate.population import (
    Combined,
    PopulationData,
    PopulationModel,
    ResidualError,
    empirical_bayes,
)
from medtwin.errors import ConfigurationError, NotCalibratedError, ParameterError, ScheduleError
from medtwin.models.pk import (
    DOSE_KINDS,
    Administration,
    Dose,
    DoseTable,
    PKModel,
    Regimen,
    TwoCompartment,
    concentration,
    dose_kinds,
)
from medtwin.twin._twin import weighted_quantile

__all__ = [
    "METRICS",
    "DosingRecommendation",
    "DosingTwin",
    "ExposureLimit",
    "ExposureTarget",
    "PopulationPK",
    "TDMHistory",
    "vancomycin_goti2018",
]

Metric = Literal["auc24", "trough", "peak"]
METRICS: dict[str, str] = {"auc24": "mg.h/L", "trough": "mg/L", "peak": "mg/L"}
"""Steady-state exposure metrics and their units."""

IndividualFunction = Callable[
    [Mapping[str, jax.Array], Mapping[str, jax.Array], Mapping[str, jax.Array]],
    dict[str, jax.Array],
]
"""``individual(theta, eta, covariates) -> PK parameters`` (JAX)."""

_T_DOF = 4.0  # degrees of freedom of the importance-sampling proposal
_SIMPSON_INTERVALS = 120  # per segment of the dosing interval (even)


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ConfigurationError(f"metric must be one of {list(METRICS)}, got {metric!r}")


@dataclass(frozen=True, slots=True)
class ExposureTarget:
    """A target window for a steady-state exposure metric: ``low <= metric <= high``.

    >>> ExposureTarget("auc24", 400.0, 600.0).contains(np.array([350.0, 500.0]))
    array([False,  True])
    """

    metric: Metric
    low: float
    high: float = math.inf

    def __post_init__(self) -> None:
        _check_metric(self.metric)
        if not (0 <= self.low < self.high):
            raise ConfigurationError(
                f"a target window needs 0 <= low < high, got low={self.low}, high={self.high}"
            )

    def contains(self, values: np.ndarray) -> np.ndarray:
        """Whether each value lies in the window."""
        return (values >= self.low) & (values <= self.high)

    def __str__(self) -> str:
        hi = "" if math.isinf(self.high) else f"-{self.high:g}"
        return f"{self.metric} {self.low:g}{hi} {METRICS[self.metric]}"


@dataclass(frozen=True, slots=True)
class ExposureLimit:
    """A toxicity threshold: exposure above ``above`` counts as toxic.

    >>> ExposureLimit("trough", 20.0).exceeded(np.array([15.0, 25.0]))
    array([False,  True])
    """

    metric: Metric
    above: float

    def __post_init__(self) -> None:
        _check_metric(self.metric)
        if not (math.isfinite(self.above) and self.above > 0):
            raise ConfigurationError(f"a toxicity threshold must be > 0, got {self.above!r}")

    def exceeded(self, values: np.ndarray) -> np.ndarray:
        """Whether each value exceeds the threshold."""
        return values > self.above

    def __str__(self) -> str:
        return f"{self.metric} > {self.above:g} {METRICS[self.metric]}"


# ---------------------------------------------------------------------------------------------
# The population model for dosing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PopulationPK:
    """A population PK model for dosing: PK structure, covariate model, variability.

    Parameters
    ----------
    name, reference:
        Identifier and literature source.
    pk_model:
        The linear PK model with a closed form (:class:`~medtwin.models.pk.TwoCompartment`...).
    individual:
        ``individual(theta, eta, covariates) -> {"CL": ..., "V1": ...}``: the patient's PK
        parameters (JAX).
    theta, omega, error:
        Fixed effects, random-effect variances (by eta name) and the residual error, as in
        :class:`~medtwin.calibrate.population.PopulationModel`.
    covariates:
        Covariate name -> unit; every one must be given for a patient.
    """

    name: str
    pk_model: type[PKModel]
    individual: IndividualFunction
    theta: Mapping[str, float]
    omega: Mapping[str, float] | pd.DataFrame
    error: ResidualError
    covariates: Mapping[str, str]
    reference: str = ""

    @property
    def population(self) -> PopulationModel:
        """The :class:`~medtwin.calibrate.population.PopulationModel` (predicts concentrations).

        Its prediction takes every dose kind the PK model can receive; :meth:`population_for`
        gives one compiled for fewer (faster to compile and run).
        """
        kinds = DOSE_KINDS if self.pk_model.depot is not None else DOSE_KINDS - {"depot"}
        return _population(self, frozenset(kinds))

    def population_for(self, doses: DoseTable) -> PopulationModel:
        """The population model restricted to the dose kinds present in ``doses``."""
        return _population(self, dose_kinds(self.pk_model, doses))

    def parameters(
        self, covariates: Mapping[str, float], eta: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        """The PK parameters of a patient with ``covariates`` (typical values when no ``eta``)."""
        cov = _covariates(self, covariates)
        e = {n: jnp.asarray(float((eta or {}).get(n, 0.0))) for n in self.population.eta_names}
        theta = {k: jnp.asarray(v) for k, v in self.population.theta.items()}
        out = self.individual(theta, e, {k: jnp.asarray(v) for k, v in cov.items()})
        return {k: float(v) for k, v in out.items()}


@functools.cache
def _population(model: PopulationPK, kinds: frozenset[str]) -> PopulationModel:
    pk, individual = model.pk_model, model.individual

    def predict(theta: Any, eta: Any, subject: Any) -> jax.Array:
        params = individual(theta, eta, subject)
        return concentration(pk, params, subject["doses"], subject["time"], kinds=kinds)

    return PopulationModel(predict, model.theta, model.omega, model.error)


@functools.cache
def vancomycin_goti2018() -> PopulationPK:
    """Vancomycin, two-compartment model of Goti et al. (2018), Table 2 final model.

    Covariates: ``WT`` (kg), ``CRCL`` (Cockcroft-Gault, mL/min, truncated at 150), ``DIAL``
    (1 on intermittent haemodialysis)::

        CL = 4.5 (CRCL/120)^0.8 0.7^DIAL exp(eta_CL)   L/h      IIV 39.8 % CV
        V1 = 58.4 (WT/70) 0.5^DIAL exp(eta_V1)         L        IIV 81.6 % CV
        V2 = 38.4 (WT/70) exp(eta_V2)                  L        IIV 57.1 % CV
        Q  = 6.5                                       L/h
        residual: 3.4 mg/L additive + 22.7 % proportional

    Goti V, Chaturvedula A, Fossler MJ, Mok S, Jacob JT. Ther Drug Monit 2018;40(2):212-221.
    The values and their conversion are in ``medtwin/twin/data/README.md``.

    >>> m = vancomycin_goti2018()
    >>> p = m.parameters({"WT": 70.0, "CRCL": 120.0, "DIAL": 0.0})
    >>> round(p["CL"], 3), round(p["V1"], 1), round(p["V2"], 1), round(p["Q2"], 1)
    (4.5, 58.4, 38.4, 6.5)
    """
    spec = json.loads(
        resources.files("medtwin.twin").joinpath("data/vancomycin_goti2018.json").read_text()
    )
    omega = {k: math.log1p((cv / 100.0) ** 2) for k, cv in spec["iiv_cv_percent"].items()}
    residual = spec["residual"]
    return PopulationPK(
        name=spec["name"],
        pk_model=TwoCompartment,
        individual=_goti2018_individual,
        theta=spec["theta"],
        omega=omega,
        error=Combined(residual["add_sd_mg_l"], residual["prop_cv"]),
        covariates={k: v["unit"] for k, v in spec["covariates"].items()},
        reference=spec["reference"],
    )


def _goti2018_individual(theta: Any, eta: Any, cov: Any) -> dict[str, jax.Array]:
    crcl = jnp.minimum(cov["CRCL"], 150.0)
    size = cov["WT"] / 70.0
    dial = cov["DIAL"]
    cl = (
        theta["CL_L_h"]
        * (crcl / 120.0) ** theta["CRCL_ON_CL"]
        * theta["DIAL_ON_CL"] ** dial
        * jnp.exp(eta["eta_CL"])
    )
    v1 = theta["V1_L"] * size * theta["DIAL_ON_V1"] ** dial * jnp.exp(eta["eta_V1"])
    v2 = theta["V2_L"] * size * jnp.exp(eta["eta_V2"])
    return {"CL": cl, "V1": v1, "Q2": jnp.asarray(theta["Q_L_h"]), "V2": v2}


def _covariates(model: PopulationPK, given: Mapping[str, float]) -> dict[str, float]:
    missing = [k for k in model.covariates if k not in given]
    if missing:
        need = ", ".join(f"{k} ({u})" for k, u in model.covariates.items())
        raise ParameterError(f"{model.name} needs the covariates {need}; missing {missing}")
    out = {}
    for k in model.covariates:
        v = given[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ParameterError(f"covariate {k} must be a finite number, got {v!r}")
        out[k] = float(v)
    return out


# ---------------------------------------------------------------------------------------------
# The patient's data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TDMHistory:
    """One patient's covariates, the doses given and the concentrations measured (TDM).

    ``doses`` is a :class:`~medtwin.models.pk.Regimen`, a sequence of
    :class:`~medtwin.models.pk.Dose` records, or a one-subject
    :class:`~medtwin.models.pk.DoseTable`; times are hours from the first dose.  No levels
    (empty ``time_h``) gives a priori dosing from the covariates alone.
    """

    covariates: Mapping[str, float]
    doses: Regimen | Sequence[Dose] | DoseTable | None = None
    time_h: Sequence[float] | np.ndarray = ()
    conc_mg_l: Sequence[float] | np.ndarray = ()

    def __post_init__(self) -> None:
        t = np.asarray(self.time_h, dtype=float).reshape(-1)
        c = np.asarray(self.conc_mg_l, dtype=float).reshape(-1)
        if t.shape != c.shape:
            raise ParameterError(
                f"time_h and conc_mg_l must have the same length, got {t.size} and {c.size}"
            )
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(c))):
            raise ParameterError("TDM times and concentrations must be finite numbers")
        if np.any(c < 0) or np.any(t < 0):
            raise ParameterError("TDM times and concentrations must be >= 0")
        if t.size and self.doses is None:
            raise ScheduleError("measured levels need the doses that produced them (doses=)")
        object.__setattr__(self, "time_h", t)
        object.__setattr__(self, "conc_mg_l", c)

    @property
    def n_levels(self) -> int:
        """Number of measured concentrations."""
        return int(np.asarray(self.time_h).size)

    def dose_table(self, pk_model: type[PKModel]) -> DoseTable:
        """The doses as a ``(1, D)`` table for ``pk_model``'s compartments."""
        doses = self.doses
        if isinstance(doses, Regimen):
            table = doses.to_doses(pk_model)
        elif isinstance(doses, DoseTable):
            table = doses
        elif doses is None:
            raise ScheduleError("this history has no doses")
        else:
            table = DoseTable.from_doses([list(doses)])
        table.check_model(pk_model)
        return table.broadcast(1)

    def to_data(self, model: PopulationPK) -> PopulationData:
        """The levels as one-subject :class:`~medtwin.calibrate.population.PopulationData`."""
        cov = _covariates(model, self.covariates)
        t = np.asarray(self.time_h)
        return PopulationData(
            ids=np.array(["patient"], dtype=object),
            time=t[None, :],
            dv=np.asarray(self.conc_mg_l)[None, :],
            mask=np.ones((1, t.size), dtype=bool),
            covariates={k: np.array([v]) for k, v in cov.items()},
            doses=self.dose_table(model.pk_model),
        )


# ---------------------------------------------------------------------------------------------
# The twin
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DosingRecommendation:
    """The regimen chosen by :meth:`DosingTwin.recommend`, its row, and every candidate's."""

    regimen: Regimen
    summary: pd.Series
    candidates: pd.DataFrame

    def __str__(self) -> str:
        s = self.summary
        how = f" (infused over {s['infusion_h']:g} h)" if s["infusion_h"] > 0 else ""
        return (
            f"{s['dose_mg']:g} mg every {s['tau_h']:g} h{how}: "
            f"PTA {s['pta']:.1%} +- {s['pta_mcse']:.1%} (MC SE), "
            f"P(toxic) {s['p_toxic']:.1%} +- {s['p_toxic_mcse']:.1%}, "
            f"median AUC24 {s['auc24_median']:.0f} mg.h/L"
        )


_RESULTS = frozenset(
    {
        "eta_",
        "eta_cov_",
        "params_",
        "parameters_",
        "draws_",
        "weights_",
        "ess_",
        "n_levels_",
        "history_",
        "covariates_",
    }
)


class DosingTwin:
    """A patient's PK twin for dose selection (see the module docstring), scikit-learn style.

    Parameters
    ----------
    model:
        The population model (default :func:`vancomycin_goti2018`).
    target:
        The exposure window aimed at (default AUC24 400-600 mg.h/L).
    toxicity:
        The threshold whose exceedance is reported (default trough > 20 mg/L); ``None`` for none.
    posterior:
        ``"laplace"`` (normal approximation at the MAP) or ``"importance"`` (exact, weighted).
    n_samples:
        Posterior draws (Monte-Carlo sample size).
    seed:
        Seed of the draws.

    Attributes
    ----------
    eta_, eta_cov_ :
        MAP random effects and their Laplace covariance (the prior with no levels).
    params_ : dict[str, float]
        The patient's PK parameters at the MAP estimate.
    parameters_ : pandas.DataFrame
        Per PK parameter: ``map``, ``typical`` (eta = 0), ``lower_90`` and ``upper_90``.
    draws_, weights_, ess_ :
        Posterior draws of eta (n, q), their normalised weights, the effective sample size.

    Examples
    --------
    A priori (no levels yet): 80 kg, creatinine clearance 90 mL/min, not on dialysis.

    >>> from medtwin.models.pk import Regimen
    >>> twin = DosingTwin(n_samples=500).fit(TDMHistory({"WT": 80.0, "CRCL": 90.0, "DIAL": 0.0}))
    >>> table = twin.compare([Regimen.infusion(1000.0, 1.0, every_h=12.0)])
    >>> bool(0.0 < table.loc[0, "pta"] < 1.0), bool(table.loc[0, "pta_mcse"] > 0)
    (True, True)
    """

    def __init__(
        self,
        model: PopulationPK | None = None,
        *,
        target: ExposureTarget | None = None,
        toxicity: ExposureLimit | None = ExposureLimit("trough", 20.0),
        posterior: str = "laplace",
        n_samples: int = 4000,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.target = target
        self.toxicity = toxicity
        self.posterior = posterior
        self.n_samples = n_samples
        self.seed = seed

    def __getattr__(self, name: str) -> Any:
        if name in _RESULTS:
            raise NotCalibratedError(
                f"DosingTwin.{name} is not available before fit(); call fit(history)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, history: TDMHistory) -> DosingTwin:
        """Individualise on ``history`` (MAP Bayes) and draw from the posterior; returns ``self``."""
        model = self._model()
        if self.posterior not in ("laplace", "importance"):
            raise ConfigurationError(
                f"posterior must be 'laplace' or 'importance', got {self.posterior!r}"
            )
        if not (isinstance(self.n_samples, int) and self.n_samples >= 10):
            raise ConfigurationError(f"n_samples must be an integer >= 10, got {self.n_samples!r}")
        if not isinstance(history, TDMHistory):
            raise ConfigurationError(
                f"fit needs a TDMHistory (covariates, doses, levels), got {type(history).__name__}"
            )
        pop = model.population
        omega = pop.omega_matrix
        self.history_ = history
        self.covariates_ = _covariates(model, history.covariates)
        self.n_levels_ = history.n_levels
        if history.n_levels:
            data = history.to_data(model)
            assert data.doses is not None
            eb = empirical_bayes(model.population_for(data.doses), data)
            if not bool(eb.converged[0]):
                raise ParameterError(
                    "the MAP estimate did not converge for these levels; check the doses, the "
                    "sampling times and the units (mg, h, mg/L)"
                )
            mean, cov = eb.mean[0], eb.cov[0]
        else:
            mean, cov = np.zeros(omega.shape[0]), omega
        self.eta_ = dict(zip(pop.eta_names, mean.tolist(), strict=True))
        self.eta_cov_ = pd.DataFrame(cov, index=list(pop.eta_names), columns=list(pop.eta_names))
        rng = np.random.default_rng(self.seed)
        draws, weights = self._draw(rng, mean, cov, history)
        self.draws_, self.weights_ = draws, weights
        self.ess_ = float(1.0 / np.sum(weights**2))
        self.params_ = model.parameters(self.covariates_, self.eta_)
        self.parameters_ = self._parameter_table()
        return self

    def _model(self) -> PopulationPK:
        model = vancomycin_goti2018() if self.model is None else self.model
        if not isinstance(model, PopulationPK):
            raise ConfigurationError(f"model must be a PopulationPK, got {type(model).__name__}")
        if not model.pk_model.linear or model.pk_model.n_compartments == 0:
            raise ConfigurationError(f"{model.pk_model.__name__} has no closed form for dosing")
        return model

    def _draw(
        self, rng: np.random.Generator, mean: np.ndarray, cov: np.ndarray, history: TDMHistory
    ) -> tuple[np.ndarray, np.ndarray]:
        n, q = self.n_samples, mean.size
        chol = np.linalg.cholesky(cov)
        z = rng.standard_normal((n, q))
        if self.posterior == "laplace" or history.n_levels == 0:
            return mean + z @ chol.T, np.full(n, 1.0 / n)
        # multivariate t proposal around the mode; weights p(y|eta) p(eta) / q(eta)
        chi2 = rng.chisquare(_T_DOF, size=n)
        draws = mean + (z @ chol.T) * np.sqrt(_T_DOF / chi2)[:, None]
        log_target = -0.5 * self._objective(draws, history)
        dev = np.linalg.solve(chol, (draws - mean).T).T
        maha = np.sum(dev**2, axis=1)
        log_q = -0.5 * (_T_DOF + q) * np.log1p(maha / _T_DOF) + gammaln((_T_DOF + q) / 2)
        log_q -= gammaln(_T_DOF / 2) + np.sum(np.log(np.diag(chol)))
        log_w = log_target - log_q
        log_w -= np.max(log_w)
        w = np.exp(log_w)
        return draws, w / w.sum()

    def _objective(self, draws: np.ndarray, history: TDMHistory) -> np.ndarray:
        """``l(eta) = sum[(y - f)^2 / R + ln R] + eta' Omega^-1 eta`` for every draw."""
        model = self._model()
        data = history.to_data(model)
        assert data.doses is not None
        pop = model.population_for(data.doses)
        subject = data.subject(0)
        f = np.asarray(_predict_draws(pop)(jnp.asarray(draws), subject))
        sigma = jnp.asarray(pop.error.values)
        r = np.asarray(pop.error.variance(jnp.asarray(f), sigma))
        y = np.asarray(history.conc_mg_l)
        data_term = np.sum((y - f) ** 2 / r + np.log(r), axis=1)
        prior = np.sum(draws * np.linalg.solve(pop.omega_matrix, draws.T).T, axis=1)
        return data_term + prior

    def _parameter_table(self) -> pd.DataFrame:
        model = self._model()
        typical = model.parameters(self.covariates_)
        per_draw = _individual_draws(model)(
            jnp.asarray(self.draws_), {k: jnp.asarray(v) for k, v in self.covariates_.items()}
        )
        rows = {}
        for k, v in per_draw.items():
            values = np.broadcast_to(np.asarray(v), (self.draws_.shape[0],))
            lo, hi = _weighted_quantile(values, self.weights_, [0.05, 0.95])
            rows[k] = {
                "map": self.params_[k],
                "typical": typical[k],
                "lower_90": lo,
                "upper_90": hi,
            }
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("parameter")

    # -- exposure ------------------------------------------------------------------------------

    def exposure(self, regimen: Regimen) -> pd.DataFrame:
        """Steady-state ``auc24``, ``trough`` and ``peak`` of every posterior draw (with ``weight``).

        ``regimen`` is one repeated administration (``Regimen.infusion(dose, duration,
        every_h=tau)``, ``Regimen.bolus``, ``Regimen.oral``); it is evaluated at steady state.
        """
        self._check_fitted()
        adm = _single_administration(regimen)
        model = self._model()
        ss = Regimen((dataclasses.replace(adm, start_h=0.0, n_doses=1, steady_state=True),))
        tau, t_inf = adm.every_h, adm.duration_h
        segments = [(0.0, t_inf), (t_inf, tau)] if 0.0 < t_inf < tau else [(0.0, tau)]
        grids = [np.linspace(a, b, _SIMPSON_INTERVALS + 1) for a, b in segments]
        times = np.concatenate([*grids, [tau * (1.0 - 1e-9)]])  # last: just before the next dose
        table = ss.to_doses(model.pk_model)
        subject: dict[str, Any] = {k: jnp.asarray(v) for k, v in self.covariates_.items()}
        subject |= {"time": jnp.asarray(times), "doses": table}
        pop = model.population_for(table)
        conc = np.asarray(_predict_draws(pop)(jnp.asarray(self.draws_), subject))
        auc_tau = np.zeros(conc.shape[0])
        start = 0
        for g in grids:
            auc_tau += _simpson(conc[:, start : start + g.size], g[1] - g[0])
            start += g.size
        return pd.DataFrame(
            {
                "auc24": auc_tau * 24.0 / tau,
                "trough": conc[:, -1],
                "peak": conc[:, :-1].max(axis=1),
                "weight": self.weights_,
            }
        )

    def compare(self, regimens: Sequence[Regimen]) -> pd.DataFrame:
        """Candidate regimens side by side: exposures, PTA and P(toxic) with their MC errors.

        Columns: ``dose_mg``, ``tau_h``, ``infusion_h``, ``daily_dose_mg``; per metric
        ``<metric>_median``, ``<metric>_lower_90``, ``<metric>_upper_90`` (AUC24 in mg.h/L,
        trough and peak in mg/L); ``pta``, ``pta_mcse``, ``p_below``, ``p_above`` (outside the
        window), ``p_toxic``, ``p_toxic_mcse`` (NaN without a threshold).
        """
        self._check_fitted()
        target = self._target()
        rows = []
        for regimen in regimens:
            adm = _single_administration(regimen)
            e = self.exposure(regimen)
            w = e["weight"].to_numpy()
            row: dict[str, float] = {
                "dose_mg": adm.dose_mg,
                "tau_h": adm.every_h,
                "infusion_h": adm.duration_h,
                "daily_dose_mg": adm.dose_mg * 24.0 / adm.every_h,
            }
            for metric in METRICS:
                lo, med, hi = _weighted_quantile(e[metric].to_numpy(), w, [0.05, 0.5, 0.95])
                row |= {f"{metric}_median": med, f"{metric}_lower_90": lo, f"{metric}_upper_90": hi}
            values = e[target.metric].to_numpy()
            row["pta"], row["pta_mcse"] = _probability(target.contains(values), w)
            row["p_below"] = float(np.sum(w * (values < target.low)))
            row["p_above"] = float(np.sum(w * (values > target.high)))
            if self.toxicity is None:
                row["p_toxic"], row["p_toxic_mcse"] = math.nan, math.nan
            else:
                toxic = self.toxicity.exceeded(e[self.toxicity.metric].to_numpy())
                row["p_toxic"], row["p_toxic_mcse"] = _probability(toxic, w)
            rows.append(row)
        return pd.DataFrame(rows)

    def dose_for_target(
        self,
        every_h: float,
        *,
        infusion_h: float = 0.0,
        route: Literal["iv", "oral"] = "iv",
        metric: Metric = "auc24",
        value: float | None = None,
        quantile: float = 0.5,
    ) -> float:
        """The dose (mg) putting ``metric`` at ``value`` for the posterior ``quantile``.

        Exposures of a linear model are proportional to the dose, so this is
        ``value / quantile(metric of 1 mg)``; ``value`` defaults to the middle of the target
        window (500 mg.h/L for AUC24 400-600).
        """
        self._check_fitted()
        _check_metric(metric)
        if value is None:
            target = self._target()
            if target.metric != metric or math.isinf(target.high):
                raise ConfigurationError(
                    f"give value=: the target window ({target}) does not define one for {metric}"
                )
            value = 0.5 * (target.low + target.high)
        if not (value > 0 and 0 < quantile < 1):
            raise ConfigurationError(
                f"value must be > 0 and quantile in (0, 1), got {value}, {quantile}"
            )
        unit = Regimen((_administration(route, 1.0, every_h, infusion_h),))
        e = self.exposure(unit)
        per_mg = _weighted_quantile(e[metric].to_numpy(), e["weight"].to_numpy(), [quantile])[0]
        return float(value / per_mg)

    def recommend(
        self,
        *,
        doses_mg: Sequence[float] | None = None,
        intervals_h: Sequence[float] = (8.0, 12.0, 24.0),
        infusion_rate_mg_h: float = 1000.0,
        route: Literal["iv", "oral"] = "iv",
        max_toxicity: float | None = None,
    ) -> DosingRecommendation:
        """The candidate regimen with the highest PTA.

        Candidates are every dose in ``doses_mg`` (default 250 to 4000 mg in 250-mg steps) with
        every interval, infused at ``infusion_rate_mg_h`` (at least 1 h; ``route="oral"`` gives
        oral doses instead).  Ties in PTA (equal
        daily doses give equal AUC24 at steady state) go to the lower daily dose, then the
        lower P(toxic), then the longer interval.  With ``max_toxicity`` only candidates with
        ``P(toxic) <= max_toxicity`` are eligible (if none is, the least toxic is returned).
        """
        self._check_fitted()
        doses = np.arange(250.0, 4000.1, 250.0) if doses_mg is None else np.asarray(doses_mg)
        if doses.size == 0 or np.any(doses <= 0):
            raise ConfigurationError(f"doses_mg must be positive numbers, got {doses.tolist()}")
        if not infusion_rate_mg_h > 0:
            raise ConfigurationError(f"infusion_rate_mg_h must be > 0, got {infusion_rate_mg_h}")
        regimens = []
        for tau in intervals_h:
            for d in doses:
                duration = max(1.0, float(d) / infusion_rate_mg_h) if route == "iv" else 0.0
                regimens.append(Regimen((_administration(route, float(d), tau, duration),)))
        table = self.compare(regimens)
        best = self.best(table, max_toxicity=max_toxicity)
        keys = ["pta", "daily_dose_mg", "p_toxic", "tau_h"]
        order = table.sort_values(keys, ascending=[False, True, True, False], na_position="last")
        return DosingRecommendation(
            regimen=regimens[best],
            summary=table.iloc[best],
            candidates=order.reset_index(drop=True),
        )

    def best(self, table: pd.DataFrame, *, max_toxicity: float | None = None) -> int:
        """Row position of the best regimen in a :meth:`compare` table.

        Highest PTA, then the lower daily dose, the lower P(toxic), the longer interval; with
        ``max_toxicity`` only regimens with ``P(toxic) <= max_toxicity`` are eligible (the least
        toxic when none is).
        """
        ranked = table.reset_index(drop=True)
        keys = ["pta", "daily_dose_mg", "p_toxic", "tau_h"]
        order = ranked.sort_values(keys, ascending=[False, True, True, False], na_position="last")
        if max_toxicity is not None and self.toxicity is not None:
            eligible = order[order["p_toxic"] <= max_toxicity]
            order = (
                eligible if not eligible.empty else order.sort_values(["p_toxic", "daily_dose_mg"])
            )
        return int(order.index[0])

    def concentrations(
        self, doses: DoseTable, times_h: Sequence[float] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Posterior predictive concentrations (mg/L) under ``doses``: ``(draws, T)`` and weights.

        ``doses`` is the whole dosing history of the patient (given and planned) as a table for
        the model's PK structure, times in hours from the first dose.
        """
        self._check_fitted()
        model = self._model()
        subject: dict[str, Any] = {k: jnp.asarray(v) for k, v in self.covariates_.items()}
        subject |= {"time": jnp.asarray(np.asarray(times_h, dtype=float)), "doses": doses}
        pop = model.population_for(doses)
        conc = np.asarray(_predict_draws(pop)(jnp.asarray(self.draws_), subject))
        # a table of one subject (a leading axis of 1) gives (draws, 1, T)
        return conc.reshape(len(self.draws_), -1), np.asarray(self.weights_)

    def bands(
        self,
        doses: DoseTable,
        times_h: Sequence[float] | np.ndarray,
        quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    ) -> np.ndarray:
        """Weighted posterior quantiles of the concentration at each time: ``(len(q), T)``."""
        conc, w = self.concentrations(doses, times_h)
        return np.stack([weighted_quantile(conc, w, q) for q in quantiles])

    # -- helpers -------------------------------------------------------------------------------

    def _target(self) -> ExposureTarget:
        return ExposureTarget("auc24", 400.0, 600.0) if self.target is None else self.target

    def _check_fitted(self) -> None:
        if "draws_" not in self.__dict__:
            raise NotCalibratedError("this DosingTwin is not fitted yet; call fit(history) first")


def _administration(
    route: Literal["iv", "oral"], dose_mg: float, every_h: float, infusion_h: float
) -> Administration:
    """One steady-state administration starting at 0."""
    return Administration(route, dose_mg, 0.0, every_h, 1, infusion_h, True)


def _single_administration(regimen: Regimen) -> Administration:
    if not isinstance(regimen, Regimen) or len(regimen.administrations) != 1:
        raise ScheduleError(
            "a candidate regimen is one repeated administration, e.g. "
            "Regimen.infusion(1000, 1.0, every_h=12)"
        )
    adm = regimen.administrations[0]
    if not adm.every_h > 0:
        raise ScheduleError(
            f"a maintenance regimen needs a dosing interval every_h > 0, got {adm.every_h}"
        )
    if adm.duration_h >= adm.every_h:
        raise ScheduleError(
            f"the infusion ({adm.duration_h} h) must end within the interval ({adm.every_h} h)"
        )
    return adm


def _simpson(values: np.ndarray, h: float) -> np.ndarray:
    """Composite Simpson's rule along the last axis (an even number of intervals)."""
    return (
        h
        / 3.0
        * (
            values[..., 0]
            + values[..., -1]
            + 4.0 * values[..., 1:-1:2].sum(axis=-1)
            + 2.0 * values[..., 2:-1:2].sum(axis=-1)
        )
    )


def _probability(hit: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    p = float(np.sum(w * hit))
    return p, float(np.sqrt(np.sum(w**2 * (hit - p) ** 2)))


def _weighted_quantile(values: np.ndarray, w: np.ndarray, q: Sequence[float]) -> list[float]:
    """Weighted quantiles of one set of values (see :func:`medtwin.twin._twin.weighted_quantile`)."""
    column = np.asarray(values, dtype=float)[:, None]
    return [float(weighted_quantile(column, np.asarray(w, dtype=float), p)[0]) for p in q]


@functools.cache
def _predict_draws(pop: PopulationModel) -> Callable[..., jax.Array]:
    """Concentrations ``(n, T)`` of ``n`` eta draws for one subject (jitted, per model)."""
    theta = {k: jnp.asarray(v) for k, v in pop.theta.items()}
    names = pop.eta_names

    def one(eta: jax.Array, subject: Any) -> jax.Array:
        return pop.predict(theta, {n: eta[i] for i, n in enumerate(names)}, subject)

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


@functools.cache
def _individual_draws(model: PopulationPK) -> Callable[..., dict[str, jax.Array]]:
    theta = {k: jnp.asarray(v) for k, v in model.population.theta.items()}
    names = model.population.eta_names

    def one(eta: jax.Array, cov: Any) -> dict[str, jax.Array]:
        return model.individual(theta, {n: eta[i] for i, n in enumerate(names)}, cov)

    return jax.jit(jax.vmap(one, in_axes=(0, None)))
