"""Calibrating a hospital from its history: ADT events in, a fitted :class:`HospitalSpec` out.

:func:`calibrate_hospital` reads an event log (HL7 v2 A01/A02/A03/A04/A08/A11/A12/A13, an
event-log CSV, FHIR Encounters: all arrive as :class:`~medtwin.hospital._records.ADTEvent`) or
the stay and visit tables made from one (:func:`~medtwin.hospital.eventlog.stays_from_events`,
:func:`~medtwin.hospital.eventlog.visits_from_events`, which resolve duplicates, late events and
cancels as the live census does), fits the flow model's parameters by maximum likelihood and
substitutes them into a base hospital, which supplies everything an ADT feed cannot show (beds,
ED resources and pathways, patience, bed turnaround).  Every estimate comes with its uncertainty
and every fit with a goodness-of-fit check, in :attr:`CalibrationResult.report`.

What is fitted, and how
-----------------------
**ED arrivals** (visits whose first unit is the ED), counted by hour of the week in the
hospital's time zone against the exposure of each hour in the observation window.  Each of the
168 cells is Poisson: the MLE of its rate is ``count / exposure`` with the exact (Garwood 1936)
interval.  The multiplicative model of the hospital file, ``lambda(d, h) = a_d b_h`` (a
log-linear Poisson model with weekday and hour main effects), is fitted by iterative
proportional fitting (its MLE, Bishop, Fienberg & Holland 1975 ch. 3) and tested against the
saturated model by the deviance (likelihood ratio) chi-square test on 138 degrees of freedom;
the Poisson assumption itself by the index-of-dispersion test of the counts of each cell across
weeks (Cochran 1954; a ratio near 1 is Poisson, above 1 over-dispersed).

**Triage classes**: shares of ED visits by acuity (matched to class names or ``codes``), with
Goodman's (1965) simultaneous intervals for multinomial proportions.

**Admission and routing**: per class, the probability that an ED visit ends in an admission
(Wilson interval) and the unit it goes to (Goodman intervals); per unit, where stays go next
(another unit, or home).  A patient who leaves the ED without being seen (LWBS) is not told
apart from one sent home in an ADT feed: without ``ed_records`` the admission probability is
that of all arrivals, the model's ``probability x (1 - LWBS share)``, and the report says so.

**Leaving without being seen, patience**: only from ``ed_records`` (an ED system's extract, e.g.
ECDS attendance disposals: which visits left unseen, when each was first seen).  Patience is
then observed exactly for those who left (their time in the ED) and right-censored at the time
to first contact for those seen, and fitted as lengths of stay are.  ADT alone cannot identify
reneging; the base hospital's patience is kept and the report says so.

**Lengths of stay** by unit (and by class or admission stream where the base hospital has
``los_by_class``, or with ``los_by_class=True``): a log-normal and a gamma distribution are fitted
by maximum likelihood and the one with the smaller AIC (Akaike 1974; Burnham & Anderson 2002) is
kept.  The likelihood is that of the flow model's *clinical* length of stay ``X`` (to medically
ready), whatever the stay's observed length ``L``:

- a transfer, or a discharge from a unit without discharge windows: ``X = L`` exactly (density);
- a discharge home from a unit with discharge windows: the patient left at the first time after
  ``X`` whose clock time is the drawn window time, so ``X`` lies in ``(L - 24 h, L]``; the
  density of ``L`` is ``p_C(clock) [F(L) - F(L - 24 h)]``, exactly an interval-censored
  observation (Turnbull 1976);
- a stay still open when the log ends, after ``c`` so far (right-censored, never dropped): ``S(c)``
  in a unit without windows; with windows the patient may also be ready and waiting for the
  window, ``S(c) + p_home int_{c-24h}^{c} f(x) P(no window in (s + x, end]) dx`` (numerically,
  15-minute steps), ``p_home`` the unit's share of stays ending at home
  (Klein & Moeschberger, *Survival Analysis*, 2nd ed., 2003, §3.5).

Standard errors come from the observed information (a numerical Hessian), intervals for the
mean and median by the delta method on the log scale.  The goodness of fit is the Kolmogorov-
Smirnov distance between the Kaplan-Meier estimate of the observed lengths of stay (open stays
censored) and the distribution of observed stays the fitted model implies (clinical stay plus
the wait for a discharge window, by Monte Carlo with a fixed seed), its p-value from the
Kolmogorov distribution on the number of completed stays: approximate, as parameters are
estimated and stays censored (Fleming et al. 1980), and with thousands of stays it flags
departures too small to matter; read the distance.

**The wait for a bed before a transfer** cannot be seen in ADT: a stay that ends in a transfer
lasts the clinical stay plus the wait for a bed in the next unit, which the model adds itself
when that unit is full.  With ``transfer_wait="simulate"`` the hospital as first calibrated is
run (after its warm-up) and its waits' distribution (a share with none, quantiles of the rest)
enters the likelihood of transfer stays, ``(1 - p) f(L) + p mean_k f(L - w_k)``; the lengths of
stay are then fitted again.  This assumes the window looks like that hospital's steady state.

**Discharges home by hour of day** (units with discharge windows): the share of each local hour
is the MLE of the model's discharge-window profile (the clock time of a window is drawn from it,
so departures follow it exactly), with Goodman intervals.

**Elective and direct admissions** per weekday and stream (a visit's stream is its ``acuity``
when that names one; else the stream of its unit and kind, elective for HL7 admission types C or
R), Poisson rates per weekday with Garwood intervals.  An ADT feed holds only admissions that
took place, when the bed was taken: cancelled electives are not in it, and the arrival window
``between`` is kept (``report["admission_times"]`` shows the bed times).

**Beds** are not fitted: ``report["occupancy"]`` gives each unit's patients (mean, 95th
percentile, maximum) against the base hospital's beds, and a note flags a unit the data overfill.

The window of observation is ``[start, end)`` (default: the first and the last event); a stay
or visit that began before ``start`` only counts for what it shows after it.

>>> from medtwin.hospital import simulate
>>> run = simulate("example_hospital", days=28, warmup_days=0, seed=1)
>>> fit = calibrate_hospital(run.adt_events(), "example_hospital")
>>> round(fit.spec.ed.arrivals.per_day / 150, 1)
1.0
>>> fit.report["los"].query("chosen")[["unit", "group", "family"]].shape[0] >= 5
True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from medtwin.errors import ConfigurationError
from medtwin.hospital._records import ADTEvent
from medtwin.hospital.eventlog import stays_from_events, visits_from_events
from medtwin.hospital.spec import WEEKDAYS, HospitalSpec, load_hospital

__all__ = ["FAMILIES", "REPORT_TABLES", "CalibrationResult", "calibrate_hospital"]

FAMILIES: tuple[str, ...] = ("lognormal", "gamma")
"""Length-of-stay (and patience) families fitted; the smaller AIC is kept."""

REPORT_TABLES: tuple[str, ...] = (
    "occupancy",
    "arrivals",
    "arrivals_by_hour",
    "arrivals_by_weekday",
    "arrival_tests",
    "classes",
    "admission",
    "lwbs",
    "patience",
    "routing",
    "discharge",
    "los",
    "transfer_wait",
    "admissions",
    "admission_times",
    "substituted",
)
"""The tables of :attr:`CalibrationResult.report`, in order."""

_ELECTIVE_TYPES = frozenset({"C", "R", "ELECTIVE"})  # HL7 table 0007: elective, routine
_WINDOW_H = 24.0
_STEP_H = 0.25  # quadrature step for open stays in units with discharge windows
_MC_DRAWS = 20_000


def _stats() -> Any:
    from scipy import stats

    return stats


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationResult:
    """A hospital calibrated from its history.

    ``spec`` is the base hospital with the fitted values substituted (validated as any hospital
    file is); ``report`` holds the estimates with their intervals and the goodness-of-fit
    tables (:data:`REPORT_TABLES`: ``occupancy`` per unit against beds; ``arrivals`` per hour of
    the week, ``arrivals_by_hour``, ``arrivals_by_weekday``, ``arrival_tests``; ``classes``;
    ``admission``, ``lwbs``, ``patience``; ``routing`` from ED classes and units; ``discharge``
    by hour; ``los`` per unit, group and family; ``transfer_wait``; ``admissions`` per stream
    and weekday, ``admission_times``; ``substituted``: each parameter replaced, from and to);
    ``notes`` says what could not be fitted and why, what was kept from the base hospital and
    what was skipped.
    """

    spec: HospitalSpec
    base: HospitalSpec
    report: dict[str, pd.DataFrame]
    notes: tuple[str, ...]
    start: datetime
    end: datetime

    def to_yaml(self, path: str | Path) -> Path:
        """Write the calibrated hospital as a hospital file (:func:`load_hospital` reads it)."""
        data = self.spec.model_dump(mode="json", exclude_none=True)
        head = (
            f"# {self.spec.name}: calibrated by medtwin from ADT events "
            f"{self.start.isoformat()} to {self.end.isoformat()}\n"
            f"# base hospital: {self.base.name}\n" + "".join(f"# note: {n}\n" for n in self.notes)
        )
        out = Path(path)
        out.write_text(head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return out

    def summary(self) -> pd.DataFrame:
        """The chosen length-of-stay fits, one row per unit and group (means and medians in h)."""
        los = self.report["los"]
        cols = ["unit", "group", "family", "n", "censored", "mean_h", "mean_lower_h"]
        cols += ["mean_upper_h", "median_h", "ks_stat", "base_mean_h"]
        return los.loc[los["chosen"], cols].reset_index(drop=True)


# -- intervals ----------------------------------------------------------------------------------


def _z(confidence: float) -> float:
    return float(_stats().norm.ppf(0.5 + confidence / 2))


def _garwood(n: np.ndarray, exposure: np.ndarray, confidence: float) -> tuple[Any, Any]:
    """Exact Poisson interval for a rate (Garwood 1936)."""
    chi2 = _stats().chi2
    a = 1 - confidence
    n = np.asarray(n, dtype=float)
    e = np.asarray(exposure, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(n > 0, chi2.ppf(a / 2, 2 * n) / 2, 0.0) / e
        hi = chi2.ppf(1 - a / 2, 2 * n + 2) / 2 / e
    return lo, hi


def _wilson(k: np.ndarray, n: np.ndarray, confidence: float) -> tuple[Any, Any]:
    """Wilson score interval for a binomial proportion (Wilson 1927)."""
    z = _z(confidence)
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _goodman(counts: np.ndarray, confidence: float) -> tuple[Any, Any]:
    """Goodman's (1965) simultaneous intervals for multinomial proportions."""
    counts = np.asarray(counts, dtype=float)
    k, n = len(counts), counts.sum()
    if n == 0:
        return np.full(k, np.nan), np.full(k, np.nan)
    a = float(_stats().chi2.ppf(1 - (1 - confidence) / max(k, 1), 1))
    root = np.sqrt(a * (a + 4 * counts * (n - counts) / n))
    return (a + 2 * counts - root) / (2 * (n + a)), (a + 2 * counts + root) / (2 * (n + a))


# -- duration fits (lengths of stay, patience) -------------------------------------------------


@dataclass
class _Durations:
    """Observations of a duration (hours) in the ways a flow model shows them."""

    exact: np.ndarray
    lower: np.ndarray  # interval-censored: X in (lower, upper]
    upper: np.ndarray
    censored: np.ndarray  # right-censored: X > c
    window_open: np.ndarray  # open stays of a unit with discharge windows (elapsed c)
    p_home: float = 1.0
    no_window: np.ndarray | None = None  # P(no window in (T - w, T]) at the quadrature midpoints
    transfer: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))
    wait: np.ndarray | None = None  # positive waits for a bed in the next unit (h), if any
    p_wait: float = 0.0  # probability that a transfer waits

    @property
    def n(self) -> int:
        return (
            len(self.exact)
            + len(self.transfer)
            + len(self.lower)
            + len(self.censored)
            + len(self.window_open)
        )


class _Family:
    """A two-parameter family on unconstrained parameters, with fast vectorised functions."""

    def __init__(self, name: str, theta: np.ndarray) -> None:
        self.name = name
        self.theta = theta
        if name == "lognormal":
            self.mu, self.sigma = float(theta[0]), math.exp(theta[1])
        else:
            self.k, self.scale = math.exp(theta[0]), math.exp(theta[1])

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        from scipy import special

        with np.errstate(divide="ignore"):
            lx = np.log(x)
        if self.name == "lognormal":
            z = (lx - self.mu) / self.sigma
            return -lx - math.log(self.sigma) - 0.5 * math.log(2 * math.pi) - z * z / 2
        return (
            (self.k - 1) * lx
            - x / self.scale
            - float(special.gammaln(self.k))
            - self.k * math.log(self.scale)
        )

    def cdf(self, x: np.ndarray) -> np.ndarray:
        from scipy import special

        if self.name == "lognormal":
            with np.errstate(divide="ignore"):
                return special.ndtr((np.log(x) - self.mu) / self.sigma)
        return special.gammainc(self.k, np.maximum(x, 0) / self.scale)

    def sf(self, x: np.ndarray) -> np.ndarray:
        from scipy import special

        if self.name == "lognormal":
            with np.errstate(divide="ignore"):
                return special.ndtr(-(np.log(x) - self.mu) / self.sigma)
        return special.gammaincc(self.k, np.maximum(x, 0) / self.scale)

    def logsf(self, x: np.ndarray) -> np.ndarray:
        from scipy import special

        if self.name == "lognormal":
            with np.errstate(divide="ignore"):
                return special.log_ndtr(-(np.log(x) - self.mu) / self.sigma)
        return np.log(np.maximum(self.sf(x), 1e-300))

    def median(self) -> float:
        from scipy import special

        if self.name == "lognormal":
            return math.exp(self.mu)
        return float(special.gammaincinv(self.k, 0.5)) * self.scale

    def moments(self) -> dict[str, float]:
        if self.name == "lognormal":
            mean = math.exp(self.mu + self.sigma**2 / 2)
            sd = mean * math.sqrt(math.expm1(self.sigma**2))
        else:
            mean, sd = self.k * self.scale, math.sqrt(self.k) * self.scale
        return {"mean": mean, "sd": sd, "median": self.median()}

    def rvs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.name == "lognormal":
            return rng.lognormal(self.mu, self.sigma, n)
        return rng.gamma(self.k, self.scale, n)


def _moments(name: str, theta: np.ndarray) -> dict[str, float]:
    return _Family(name, theta).moments()


def _neg_loglik(name: str, theta: np.ndarray, d: _Durations) -> float:
    if not np.all(np.isfinite(theta)) or np.any(np.abs(theta) > 30):
        return math.inf
    fam = _Family(name, theta)
    ll = 0.0
    if len(d.exact):
        ll += float(fam.logpdf(d.exact).sum())
    if len(d.transfer):
        if d.wait is None or d.p_wait <= 0:
            ll += float(fam.logpdf(d.transfer).sum())
        else:
            # observed = clinical + the wait for a bed in the next unit (0 with 1 - p_wait)
            x = d.transfer[:, None] - d.wait[None, :]
            with np.errstate(invalid="ignore"):
                dens = np.where(x > 0, np.exp(fam.logpdf(np.maximum(x, 1e-12))), 0.0)
            f = (1 - d.p_wait) * np.exp(fam.logpdf(d.transfer)) + d.p_wait * dens.mean(axis=1)
            ll += float(np.log(np.maximum(f, 1e-300)).sum())
    if len(d.lower):
        upper_tail = d.lower > fam.median()
        p = np.where(
            upper_tail,
            fam.sf(d.lower) - fam.sf(d.upper),
            fam.cdf(d.upper) - fam.cdf(d.lower),
        )
        ll += float(np.log(np.maximum(p, 1e-300)).sum())
    if len(d.censored):
        ll += float(fam.logsf(d.censored).sum())
    if len(d.window_open):
        assert d.no_window is not None
        c = d.window_open
        edges = np.arange(0.0, _WINDOW_H + _STEP_H / 2, _STEP_H)
        x = np.maximum(c[:, None] - edges[None, :], 0.0)
        cdf = fam.cdf(x)
        mass = cdf[:, :-1] - cdf[:, 1:]  # P(X in [c - w_{k+1}, c - w_k])
        p = fam.sf(c) + d.p_home * (mass * d.no_window[None, :]).sum(axis=1)
        ll += float(np.log(np.maximum(p, 1e-300)).sum())
    return -ll if math.isfinite(ll) else math.inf


def _start_values(name: str, d: _Durations) -> np.ndarray:
    values = np.concatenate(
        [d.exact, d.transfer, (d.lower + d.upper) / 2, d.censored * 1.5, d.window_open * 1.5]
    )
    values = values[values > 0]
    if len(values) < 2:
        values = np.array([1.0, 2.0])
    if name == "lognormal":
        logs = np.log(values)
        return np.array([logs.mean(), math.log(max(logs.std(), 0.05))])
    m, v = values.mean(), max(values.var(), 1e-6)
    return np.array([math.log(m * m / v), math.log(v / m)])


def _hessian(f: Any, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    k = len(x)
    out = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.eye(k)[i] * h, np.eye(k)[j] * h
            out[i, j] = out[j, i] = (
                f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
            ) / (4 * h * h)
    return out


@dataclass
class _Fit:
    family: str
    theta: np.ndarray
    cov: np.ndarray
    loglik: float
    n: int

    @property
    def aic(self) -> float:
        return 2 * len(self.theta) - 2 * self.loglik

    def moments(self) -> dict[str, float]:
        return _moments(self.family, self.theta)

    def interval(self, what: str, confidence: float) -> tuple[float, float]:
        """Delta-method interval of ``mean``/``median``/``sd`` on the log scale."""
        est = self.moments()[what]
        grad = np.zeros(len(self.theta))
        for i in range(len(self.theta)):
            step = np.eye(len(self.theta))[i] * 1e-5
            up = _moments(self.family, self.theta + step)[what]
            down = _moments(self.family, self.theta - step)[what]
            grad[i] = (math.log(up) - math.log(down)) / 2e-5
        var = float(grad @ self.cov @ grad)
        if not var >= 0 or not math.isfinite(var):
            return math.nan, math.nan
        z = _z(confidence)
        return est * math.exp(-z * math.sqrt(var)), est * math.exp(z * math.sqrt(var))

    def dist(self) -> _Family:
        return _Family(self.family, self.theta)


def _fit(name: str, d: _Durations, x0: np.ndarray | None = None) -> _Fit | None:
    """Maximum likelihood: quasi-Newton from a moment start, then a Nelder-Mead polish."""
    from scipy.optimize import minimize

    def f(t: np.ndarray) -> float:
        return _neg_loglik(name, t, d)

    start = _start_values(name, d) if x0 is None else x0
    if not math.isfinite(f(start)):
        start = _start_values(name, d)
    first = minimize(f, start, method="L-BFGS-B", options={"eps": 1e-7})
    x = first.x if math.isfinite(first.fun) else start
    best = minimize(
        f,
        x,
        method="Nelder-Mead",
        options={
            "xatol": 1e-6,
            "fatol": 1e-7,
            "initial_simplex": x + np.array([[0, 0], [0.02, 0], [0, 0.02]]),
        },
    )
    if not math.isfinite(best.fun):
        return None
    hess = _hessian(f, best.x)
    try:
        cov = np.linalg.inv(hess)
        if np.any(np.diag(cov) < 0):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov = np.full((2, 2), np.nan)
    return _Fit(name, best.x, cov, -float(best.fun), d.n)


def _kaplan_meier(t: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Event times and the Kaplan-Meier CDF just before and at each (Kaplan & Meier 1958)."""
    order = np.lexsort((~event, t))  # events before censorings at equal times
    t, event = t[order], event[order]
    at_risk = len(t) - np.arange(len(t))
    surv = np.cumprod(np.where(event, 1 - 1 / at_risk, 1.0))
    before = np.concatenate([[1.0], surv[:-1]])
    return t[event], 1 - before[event], 1 - surv[event]


def _ks(
    fit: _Fit,
    observed: np.ndarray,
    event: np.ndarray,
    model_cdf: Any,
) -> tuple[float, float]:
    """KS distance of the Kaplan-Meier CDF from the model's, and its approximate p-value."""
    if event.sum() == 0:
        return math.nan, math.nan
    times, f_before, f_at = _kaplan_meier(observed, event)
    f_model = model_cdf(times)
    d = float(max(np.abs(f_at - f_model).max(), np.abs(f_before - f_model).max()))
    return d, float(_stats().kstwo.sf(d, int(event.sum())))


# -- preparing the data -------------------------------------------------------------------------


@dataclass
class _Names:
    """Data unit names -> spec unit (or ED) names; unknown ones kept (and skipped) or an error."""

    spec: HospitalSpec
    unit_map: dict[str, str | None]
    skip_unknown: bool
    known: dict[str, str]
    skipped: set[str] = dataclasses.field(default_factory=set)

    @classmethod
    def build(
        cls, spec: HospitalSpec, unit_map: Mapping[str, str | None] | None, skip: bool
    ) -> _Names:
        known = spec.unit_names()
        targets = set(spec.units) | ({spec.ed.name} if spec.ed else set())
        umap = dict(unit_map or {})
        bad = {k: v for k, v in umap.items() if v is not None and v not in targets}
        if bad:
            raise ConfigurationError(
                f"unit_map targets {bad} are not units of hospital {spec.name!r} "
                f"(known: {', '.join(sorted(targets))}); map to a unit name, or None to skip"
            )
        return cls(spec, umap, skip, known)

    def __call__(self, name: str | None) -> str | None:
        if name is None:
            return None
        if name in self.unit_map:
            target = self.unit_map[name]
            if target is None:
                self.skipped.add(name)
                return name
            return target
        if name in self.known:
            return self.known[name]
        self.skipped.add(name)
        return name

    def is_unit(self, name: Any) -> bool:
        return isinstance(name, str) and name in self.spec.units


def _map_events(events: Iterable[ADTEvent], names: _Names) -> list[ADTEvent]:
    out = []
    for e in events:
        unit, prior = names(e.unit), names(e.prior_unit)
        if unit != e.unit or prior != e.prior_unit:
            e = dataclasses.replace(e, unit=unit, prior_unit=prior)
        out.append(e)
    return out


def _merge_stays(stays: pd.DataFrame) -> pd.DataFrame:
    """Join consecutive stays of a visit in one unit (two data units mapped to one)."""
    stays = stays.sort_values(["visit_id", "stay"]).reset_index(drop=True)
    same = (stays["visit_id"] == stays["visit_id"].shift(-1)) & (
        stays["unit"] == stays["unit"].shift(-1)
    )
    if not same.any():
        return stays
    rows = stays.to_dict("records")
    merged: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if i > 0 and bool(same.iloc[i - 1]):
            last = merged[-1]
            for k in ("end", "los_hours", "exit", "next_unit"):
                last[k] = row[k]
            last["los_hours"] = (
                (row["end"] - last["start"]).total_seconds() / 3600
                if pd.notna(row["end"])
                else np.nan
            )
        else:
            merged.append({str(k): v for k, v in row.items()})
    out = pd.DataFrame(merged, columns=stays.columns).astype(
        {str(k): v for k, v in stays.dtypes.items()}
    )
    out["stay"] = out.groupby("visit_id").cumcount()
    return out


def _map_frames(
    stays: pd.DataFrame, visits: pd.DataFrame, names: _Names
) -> tuple[pd.DataFrame, pd.DataFrame]:
    stays = stays.copy()
    visits = visits.copy()
    for col in ("unit", "next_unit"):
        stays[col] = (
            stays[col].map(lambda u: names(u) if isinstance(u, str) else u).astype("string")
        )
    visits["first_unit"] = visits["first_unit"].map(names).astype("string")
    visits["path"] = visits["path"].map(
        lambda p: ">".join(str(names(u)) for u in p.split(">")) if isinstance(p, str) else p
    )
    return _merge_stays(stays), visits


def _class_lookup(spec: HospitalSpec) -> dict[str, str]:
    out: dict[str, str] = {}
    if spec.ed is not None:
        for cname, k in spec.ed.classes.items():
            for code in k.codes:
                out.setdefault(code, cname)
                out.setdefault(code.lower(), cname)
            out[cname] = cname
    for stream in spec.admissions:
        out.setdefault(stream, stream)
    return out


def _local(times: pd.Series, tz: str) -> pd.Series:
    return pd.to_datetime(times, utc=True).dt.tz_convert(tz)


def _exposure(start: datetime, end: datetime, tz: str) -> np.ndarray:
    """Hours of each (weekday, hour) cell of the local week in ``[start, end)``."""
    step = pd.Timedelta(minutes=15)
    grid = pd.date_range(pd.Timestamp(start).floor("15min"), pd.Timestamp(end), freq=step)
    grid = grid.as_unit("ns")
    lo = np.maximum(grid.asi8, pd.Timestamp(start).as_unit("ns").value)
    hi = np.minimum((grid + step).asi8, pd.Timestamp(end).as_unit("ns").value)
    hours = np.maximum(hi - lo, 0) / 3.6e12
    local = grid.tz_convert(tz)
    out = np.zeros((7, 24))
    np.add.at(out, (local.day_of_week, local.hour), hours)
    return out


# -- the calibration ----------------------------------------------------------------------------


class _Calibration:
    def __init__(
        self,
        base: HospitalSpec,
        stays: pd.DataFrame,
        visits: pd.DataFrame,
        names: _Names,
        start: datetime,
        end: datetime,
        *,
        arrivals: str,
        los_by_class: bool,
        min_count: int,
        confidence: float,
        ed_records: pd.DataFrame | None,
    ) -> None:
        self.base = base
        self.names = names
        self.start, self.end = start, end
        self.tz = base.timezone
        self.arrivals_form = arrivals
        self.los_by_class = los_by_class
        self.min_count = min_count
        self.conf = confidence
        self.notes: list[str] = []
        self.report: dict[str, pd.DataFrame] = {}
        self.changes: list[tuple[str, str, str]] = []  # (path, from, to)
        self.los_changes: dict[str, tuple[str, str]] = {}
        self.data = base.model_dump(mode="python")
        self.classes = _class_lookup(base)
        t0 = pd.Timestamp(start)
        self.stays = stays[stays["start"] >= t0].reset_index(drop=True)
        self.visits = visits[visits["arrived_at"] >= t0].reset_index(drop=True)
        self.ed_name = base.ed.name if base.ed is not None else None
        self.exposure = _exposure(start, end, self.tz)
        self.ed_records = ed_records
        self.profile: np.ndarray | None = None

    # -- helpers ------------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.notes.append(text)

    def change(self, path: str, old: Any, new: Any) -> None:
        self.changes.append((path, _short(old), _short(new)))

    def class_of(self, acuity: Any) -> str | None:
        if not isinstance(acuity, str):
            return None
        return self.classes.get(acuity, self.classes.get(acuity.lower()))

    # -- ED arrivals ---------------------------------------------------------------------

    def ed_visits(self) -> pd.DataFrame:
        v = self.visits
        return v[v["first_unit"] == self.ed_name].reset_index(drop=True)

    def fit_arrivals(self) -> None:
        stats = _stats()
        ed = self.base.ed
        if ed is None:
            return
        visits = self.ed_visits()
        at = _local(visits["arrived_at"], self.tz)
        at = at[(visits["arrived_at"] < pd.Timestamp(self.end)).to_numpy()]
        counts = np.zeros((7, 24))
        np.add.at(counts, (at.dt.day_of_week.to_numpy(), at.dt.hour.to_numpy()), 1)
        expo = self.exposure
        if counts.sum() == 0:
            self.note("no ED arrivals in the window: ED arrivals kept from the base hospital")
            return
        seen = expo > 0
        rate = np.where(seen, counts / np.where(seen, expo, 1), np.nan)
        lo, hi = _garwood(counts, expo, self.conf)
        # the multiplicative model lambda(d, h) = a_d b_h by iterative proportional fitting
        a = np.ones(7)
        b = counts.sum(axis=0) / np.maximum(expo.sum(axis=0), 1e-12)
        for _ in range(500):
            a_new = counts.sum(axis=1) / np.maximum((expo * b[None, :]).sum(axis=1), 1e-12)
            b_new = counts.sum(axis=0) / np.maximum((expo * a_new[:, None]).sum(axis=0), 1e-12)
            done = np.allclose(a_new, a, rtol=1e-12) and np.allclose(b_new, b, rtol=1e-12)
            a, b = a_new, b_new
            if done:
                break
        mult = np.outer(a, b)
        mu = mult * expo
        with np.errstate(divide="ignore", invalid="ignore"):
            dev_terms = np.where(counts > 0, counts * np.log(counts / mu), 0.0) - (counts - mu)
        deviance = float(2 * dev_terms[seen].sum())
        df_lr = int(seen.sum()) - (7 + 24 - 1)
        # index of dispersion of each cell's counts over its whole hours in the window
        disp, df_disp = self._dispersion(at)
        tests = pd.DataFrame(
            [
                {
                    "test": "multiplicative (weekday x hour) vs saturated: deviance",
                    "statistic": deviance,
                    "df": df_lr,
                    "p_value": float(stats.chi2.sf(deviance, df_lr)) if df_lr > 0 else np.nan,
                    "ratio": deviance / df_lr if df_lr > 0 else np.nan,
                },
                {
                    "test": "Poisson index of dispersion (hourly counts within each cell)",
                    "statistic": disp,
                    "df": df_disp,
                    "p_value": float(stats.chi2.sf(disp, df_disp)) if df_disp > 0 else np.nan,
                    "ratio": disp / df_disp if df_disp > 0 else np.nan,
                },
            ]
        )
        self.report["arrival_tests"] = tests
        form = self.arrivals_form
        if form == "auto":
            form = "weekly" if ed.arrivals.rate_per_hour is not None else "multiplicative"
        fitted = mult if form == "multiplicative" else np.where(seen, rate, mult)
        rows = []
        base_rates = ed.arrivals.week_rates().reshape(7, 24)
        for d in range(7):
            for h in range(24):
                rows.append(
                    {
                        "weekday": WEEKDAYS[d],
                        "hour": h,
                        "n": int(counts[d, h]),
                        "exposure_h": expo[d, h],
                        "rate": rate[d, h],
                        "lower": lo[d, h],
                        "upper": hi[d, h],
                        "fitted": fitted[d, h],
                        "base": base_rates[d, h],
                    }
                )
        self.report["arrivals"] = pd.DataFrame(rows)
        by_hour_lo, by_hour_hi = _garwood(counts.sum(0), expo.sum(0), self.conf)
        self.report["arrivals_by_hour"] = pd.DataFrame(
            {
                "hour": range(24),
                "n": counts.sum(0).astype(int),
                "exposure_h": expo.sum(0),
                "rate": counts.sum(0) / np.maximum(expo.sum(0), 1e-12),
                "lower": by_hour_lo,
                "upper": by_hour_hi,
                "fitted": (fitted * expo).sum(0) / np.maximum(expo.sum(0), 1e-12),
                "base": (base_rates * expo).sum(0) / np.maximum(expo.sum(0), 1e-12),
            }
        )
        day_expo = expo.sum(1) / 24
        d_lo, d_hi = _garwood(counts.sum(1), day_expo, self.conf)
        self.report["arrivals_by_weekday"] = pd.DataFrame(
            {
                "weekday": WEEKDAYS,
                "n": counts.sum(1).astype(int),
                "exposure_d": day_expo,
                "per_day": counts.sum(1) / np.maximum(day_expo, 1e-12),
                "lower": d_lo,
                "upper": d_hi,
                "base": base_rates.sum(1),
            }
        )
        old = self.data["ed"]["arrivals"]
        if form == "multiplicative":
            if not seen.any(axis=1).all() or not seen.any(axis=0).all():
                self.note("the window does not cover every weekday: ED arrivals kept")
                return
            daily = a * b.sum()  # arrivals per day, by weekday
            new = {
                "per_day": float(daily.mean()),
                "hour_of_day": [round(float(x), 6) for x in b / b.sum() * 24],
                "day_of_week": [round(float(x), 6) for x in daily / daily.mean()],
                "rate_per_hour": None,
            }
        else:
            if not seen.all():
                self.note(
                    "the window does not cover every hour of the week: hours never seen take "
                    "the multiplicative model's rate"
                )
            new = {
                "per_day": None,
                "hour_of_day": None,
                "day_of_week": None,
                "rate_per_hour": [[round(float(x), 6) for x in row] for row in fitted],
            }
        self.change("ed.arrivals", _arrival_text(old), _arrival_text(new))
        self.data["ed"]["arrivals"] = new

    def _dispersion(self, at: pd.Series) -> tuple[float, int]:
        start = pd.Timestamp(self.start).ceil("h")
        end = pd.Timestamp(self.end).floor("h")
        if end <= start:
            return math.nan, 0
        hours = pd.date_range(start, end, freq="h", inclusive="left")
        idx = pd.Series(at.dt.tz_convert(UTC).dt.floor("h").to_numpy())
        per_hour = idx.value_counts().reindex(hours, fill_value=0).to_numpy(dtype=float)
        local = hours.tz_convert(self.tz)
        cell = local.day_of_week * 24 + local.hour
        frame = pd.DataFrame({"cell": cell, "n": per_hour})
        g = frame.groupby("cell")["n"]
        mean, count = g.transform("mean"), g.transform("count")
        ok = (mean > 0) & (count > 1)
        stat = float(((frame["n"] - mean) ** 2 / mean)[ok].sum())
        df = int((g.count() - 1)[g.mean() > 0].clip(lower=0).sum())
        return stat, df

    # -- classes, LWBS, admission, routing ------------------------------------------------

    def fit_classes(self) -> None:
        ed = self.base.ed
        if ed is None:
            return
        visits = self.ed_visits()
        cls = visits["acuity"].map(self.class_of)
        known = cls.isin(list(ed.classes))
        if (~known).any():
            self.note(
                f"{int((~known).sum())} ED visits have no acuity matching a class (names or "
                "codes): left out of the class shares"
            )
        counts = np.array([int((cls == c).sum()) for c in ed.classes])
        if counts.sum() < self.min_count:
            self.note("too few ED visits with a known class: class shares kept")
            return
        lo, hi = _goodman(counts, self.conf)
        shares = counts / counts.sum()
        self.report["classes"] = pd.DataFrame(
            {
                "class": list(ed.classes),
                "n": counts,
                "share": shares,
                "lower": lo,
                "upper": hi,
                "base": [
                    k.share / sum(x.share for x in ed.classes.values()) for k in ed.classes.values()
                ],
            }
        )
        for cname, share, n in zip(ed.classes, shares, counts, strict=True):
            new = round(float(share), 6) if n > 0 else 1e-6
            if n == 0:
                self.note(f"no ED visits of class {cname!r}: its share is set to 1e-6")
            self.change(f"ed.classes.{cname}.share", ed.classes[cname].share, new)
            self.data["ed"]["classes"][cname]["share"] = new
        self._visit_class = cls

    def ed_outcomes(self) -> pd.DataFrame:
        """Per ED visit: class, outcome (admitted/home/in_ed/lwbs), admitted unit."""
        visits = self.ed_visits()
        cls = visits["acuity"].map(self.class_of)
        steps = visits["path"].fillna("").str.split(">")
        after = steps.map(lambda p: next((u for u in p[1:] if u != self.ed_name), None))
        still = visits["ed_departure"].isna()
        admitted = after.notna() | (still & (visits["final_class"] == "I"))
        outcome = np.where(admitted, "admitted", np.where(still, "in_ed", "home"))
        out = pd.DataFrame(
            {
                "visit_id": visits["visit_id"],
                "cls": cls,
                "outcome": outcome,
                "unit": after,
                "arrived_at": visits["arrived_at"],
                "ed_departure": visits["ed_departure"],
            }
        )
        if self.ed_records is not None:
            rec = self.ed_records.set_index("visit_id")
            lw = out["visit_id"].map(rec["left_unseen"]) if "left_unseen" in rec else None
            if lw is not None:
                out.loc[
                    lw.fillna(False).astype(bool).to_numpy() & (out["outcome"] == "home"), "outcome"
                ] = "lwbs"
            if "seen_at" in rec:
                out["seen_at"] = pd.to_datetime(out["visit_id"].map(rec["seen_at"]), utc=True)
        return out

    def fit_admission(self) -> None:
        ed = self.base.ed
        if ed is None:
            return
        out = self.ed_outcomes()
        has_lwbs = self.ed_records is not None and "left_unseen" in self.ed_records
        if not has_lwbs:
            self.note(
                "an ADT feed cannot tell a patient who left without being seen from one sent "
                "home: LWBS share and patience are not estimated (pass ed_records to estimate "
                "them) and admission probabilities are per arrival, i.e. the model's "
                "probability x (1 - LWBS share)"
            )
        rows, lwbs_rows, route_rows = [], [], []
        for cname, k in ed.classes.items():
            mine = out[out["cls"] == cname]
            n_adm = int((mine["outcome"] == "admitted").sum())
            n_home = int((mine["outcome"] == "home").sum())
            n_lwbs = int((mine["outcome"] == "lwbs").sum())
            n = n_adm + n_home
            lo, hi = _wilson(np.array(n_adm), np.array(n), self.conf)
            base_p = k.admission.probability if k.admission is not None else 0.0
            rows.append(
                {
                    "class": cname,
                    "n": n,
                    "admitted": n_adm,
                    "lwbs": n_lwbs if has_lwbs else np.nan,
                    "still_in_ed": int((mine["outcome"] == "in_ed").sum()),
                    "probability": n_adm / n if n else np.nan,
                    "lower": float(lo) if n else np.nan,
                    "upper": float(hi) if n else np.nan,
                    "base": base_p,
                }
            )
            if has_lwbs:
                m = n + n_lwbs
                llo, lhi = _wilson(np.array(n_lwbs), np.array(m), self.conf)
                lwbs_rows.append(
                    {
                        "class": cname,
                        "n": m,
                        "lwbs": n_lwbs,
                        "share": n_lwbs / m if m else np.nan,
                        "lower": float(llo) if m else np.nan,
                        "upper": float(lhi) if m else np.nan,
                    }
                )
            if n < self.min_count:
                if n:
                    self.note(f"class {cname!r}: {n} ED visits with an outcome: admission kept")
                continue
            units = mine.loc[mine["outcome"] == "admitted", "unit"].dropna()
            skipped = units[~units.map(self.names.is_unit)]
            units = units[units.map(self.names.is_unit)]
            if len(skipped):
                self.note(
                    f"class {cname!r}: {len(skipped)} admissions to skipped units "
                    f"({', '.join(sorted(set(skipped)))}) left out of the routing"
                )
            names = sorted(set(units) | set(k.admission.units if k.admission else {}))
            counts = np.array([int((units == u).sum()) for u in names])
            clo, chi = _goodman(counts, self.conf)
            for u, c, a_, b_ in zip(names, counts, clo, chi, strict=True):
                route_rows.append(
                    {
                        "from": f"ED:{cname}",
                        "to": u,
                        "n": int(c),
                        "probability": c / counts.sum() if counts.sum() else np.nan,
                        "lower": a_,
                        "upper": b_,
                        "base": (k.admission.units.get(u, 0.0) if k.admission else 0.0),
                    }
                )
            if n_adm == 0:
                new_adm = None
                self.change(f"ed.classes.{cname}.admission", base_p, "none")
            elif counts.sum() < self.min_count:
                new_adm = {
                    "probability": round(n_adm / n, 6),
                    "units": dict(k.admission.units) if k.admission else {names[0]: 1.0},
                }
                self.note(
                    f"class {cname!r}: {int(counts.sum())} admissions with a known unit: "
                    "admission probability fitted, units kept"
                )
            else:
                probs = _rounded_probabilities(counts / counts.sum())
                new_adm = {
                    "probability": round(n_adm / n, 6),
                    "units": {u: p for u, p in zip(names, probs, strict=True) if p > 0},
                }
            if new_adm is not None:
                self.change(
                    f"ed.classes.{cname}.admission.probability", base_p, new_adm["probability"]
                )
            self.data["ed"]["classes"][cname]["admission"] = new_adm
        self.report["admission"] = pd.DataFrame(rows)
        self.report["lwbs"] = pd.DataFrame(
            lwbs_rows, columns=["class", "n", "lwbs", "share", "lower", "upper"]
        )
        self._routes = route_rows
        if has_lwbs:
            self.fit_patience(out)
        else:
            self.report["patience"] = pd.DataFrame(
                columns=[
                    "class",
                    "family",
                    "n",
                    "left_unseen",
                    "mean_h",
                    "median_h",
                    "aic",
                    "chosen",
                ]
            )

    def fit_patience(self, out: pd.DataFrame) -> None:
        ed = self.base.ed
        assert ed is not None
        rows: list[dict[str, Any]] = []
        if "seen_at" not in out:
            self.note("ed_records has no seen_at: patience is not estimated (kept)")
            self.report["patience"] = pd.DataFrame(rows)
            return
        for cname, k in ed.classes.items():
            if k.patience is None:
                continue
            mine = out[out["cls"] == cname]
            gone = mine[mine["outcome"] == "lwbs"]
            exact = (gone["ed_departure"] - gone["arrived_at"]).dt.total_seconds().to_numpy() / 3600
            seen = mine[mine["seen_at"].notna() & (mine["outcome"] != "lwbs")]
            cens = (seen["seen_at"] - seen["arrived_at"]).dt.total_seconds().to_numpy() / 3600
            exact = np.maximum(exact[np.isfinite(exact)], 1 / 60)
            cens = cens[np.isfinite(cens) & (cens > 0)]
            if len(exact) < self.min_count:
                self.note(f"class {cname!r}: {len(exact)} patients left unseen: patience kept")
                continue
            d = _Durations(exact, np.empty(0), np.empty(0), cens, np.empty(0))
            fits = [f for f in (_fit(name, d) for name in FAMILIES) if f is not None]
            best = min(fits, key=lambda f: f.aic)
            observed = np.concatenate([exact, cens])
            event = np.concatenate([np.ones(len(exact), bool), np.zeros(len(cens), bool)])
            for f in fits:
                ks, p = _ks(f, observed, event, f.dist().cdf)
                m = f.moments()
                lo, hi = f.interval("mean", self.conf)
                rows.append(
                    {
                        "class": cname,
                        "family": f.family,
                        "n": d.n,
                        "left_unseen": len(exact),
                        "mean_h": m["mean"],
                        "mean_lower_h": lo,
                        "mean_upper_h": hi,
                        "median_h": m["median"],
                        "sd_h": m["sd"],
                        "aic": f.aic,
                        "ks_stat": ks,
                        "ks_pvalue": p,
                        "chosen": f is best,
                        "base_mean_h": k.patience.mean_min / 60,
                    }
                )
            new = _dist_dict(best, k.patience.unit)
            self.change(f"ed.classes.{cname}.patience", _dist_text(k.patience), _dist_text(new))
            self.data["ed"]["classes"][cname]["patience"] = new
        self.report["patience"] = pd.DataFrame(rows)

    def fit_transfers(self) -> None:
        rows = list(getattr(self, "_routes", []))
        self.home_share: dict[str, float] = {}
        for uname, unit in self.base.units.items():
            mine = self.stays[(self.stays["unit"] == uname) & (self.stays["exit"] != "open")]
            nxt = mine["next_unit"].where(mine["exit"] == "transfer")
            dest = nxt.map(lambda u: u if self.names.is_unit(u) else "home")
            names = [*sorted((set(dest) | set(unit.next)) - {"home"}), "home"]
            counts = np.array([int((dest == u).sum()) for u in names])
            n = int(counts.sum())
            self.home_share[uname] = counts[-1] / n if n else 1 - sum(unit.next.values())
            if n == 0:
                self.note(f"no completed stays in {uname}: its transfers and LOS kept")
                continue
            lo, hi = _goodman(counts, self.conf)
            base_home = 1 - sum(unit.next.values())
            for u, c, a_, b_ in zip(names, counts, lo, hi, strict=True):
                rows.append(
                    {
                        "from": uname,
                        "to": u,
                        "n": int(c),
                        "probability": c / n,
                        "lower": a_,
                        "upper": b_,
                        "base": base_home if u == "home" else unit.next.get(u, 0.0),
                    }
                )
            if n < self.min_count:
                self.note(f"{uname}: {n} completed stays: transfer probabilities kept")
                continue
            probs = _rounded_probabilities(counts / n)
            new = {
                u: p for u, p in zip(names[:-1], probs[:-1], strict=True) if p > 0 and u != uname
            }
            self.change(f"units.{uname}.next", dict(unit.next), new)
            self.data["units"][uname]["next"] = new
        self.report["routing"] = pd.DataFrame(
            rows, columns=["from", "to", "n", "probability", "lower", "upper", "base"]
        )

    # -- discharge profile ------------------------------------------------------------------

    def fit_discharge(self) -> None:
        window_units = [u for u, unit in self.base.units.items() if unit.discharge_window]
        s = self.stays
        home = s[(s["exit"] == "discharge") & s["unit"].isin(window_units)]
        home = home[home["end"] < pd.Timestamp(self.end)]
        base = np.asarray(self.base.discharge.hour_profile, dtype=float)
        base = base / base.sum()
        if len(home) < self.min_count:
            self.note("too few discharges home from units with discharge windows: profile kept")
            self.profile = base
            return
        hours = _local(home["end"], self.tz).dt.hour.to_numpy()
        counts = np.bincount(hours, minlength=24).astype(float)
        lo, hi = _goodman(counts, self.conf)
        share = counts / counts.sum()
        self.report["discharge"] = pd.DataFrame(
            {
                "hour": range(24),
                "n": counts.astype(int),
                "share": share,
                "lower": lo,
                "upper": hi,
                "base": base,
            }
        )
        self.profile = share
        new = [round(float(x) * 100, 4) for x in share]
        self.change("discharge.hour_profile", "base profile", "fitted shares (%)")
        self.data["discharge"]["hour_profile"] = new

    def _no_window(self) -> np.ndarray:
        """P(no discharge window in (end - w, end]) at the quadrature midpoints ``w`` (hours)."""
        assert self.profile is not None
        cum = np.concatenate([[0.0], np.cumsum(self.profile)])  # CDF of the clock at hours 0..24
        tau = _local(pd.Series([self.end]), self.tz).iloc[0]
        tau_h = tau.hour + tau.minute / 60 + tau.second / 3600
        w = np.arange(_STEP_H / 2, _WINDOW_H, _STEP_H)
        lo = tau_h - w

        def cdf(x: np.ndarray) -> np.ndarray:
            return np.interp(x, np.arange(25.0), cum)

        inside = np.where(
            lo >= 0,
            cdf(np.full_like(lo, tau_h)) - cdf(lo),
            cdf(np.full_like(lo, tau_h)) + 1 - cdf(lo + 24),
        )
        return np.clip(1 - inside, 0.0, 1.0)

    # -- lengths of stay ------------------------------------------------------------------

    def stay_group(self, uname: str) -> pd.Series:
        keys = set(self.base.units[uname].los_by_class)
        mine = self.stays[self.stays["unit"] == uname]
        cls = mine["acuity"].map(self.class_of)
        if self.los_by_class:
            counts = cls.value_counts()
            keys |= set(counts[counts >= self.min_count].index)
        return cls.where(cls.isin(list(keys)), "")

    def fit_los(self, waits: Mapping[str, tuple[float, np.ndarray]] | None = None) -> None:
        """Length-of-stay fits; ``waits``: per unit, P(a transfer waits) and positive waits (h)."""
        rows: list[dict[str, Any]] = []
        end = pd.Timestamp(self.end)
        no_window = self._no_window()
        for uname, unit in self.base.units.items():
            mine = self.stays[self.stays["unit"] == uname]
            groups = self.stay_group(uname)
            p_wait, wait = (waits or {}).get(uname, (0.0, np.empty(0)))
            home_share = self.home_share.get(uname, 1.0)
            for key in sorted(set(groups), key=lambda k: (k != "", k)):
                g = mine[(groups == key).to_numpy()]
                base_dist = unit.los_by_class.get(key, unit.los) if key else unit.los
                path = f"units.{uname}.los_by_class.{key}" if key else f"units.{uname}.los"
                closed = (g["exit"] != "open").to_numpy()
                length = g["los_hours"].to_numpy(dtype=float)
                elapsed = ((end - g["start"]).dt.total_seconds() / 3600).to_numpy()
                length = np.maximum(np.where(closed, length, elapsed), 1 / 60)
                home = (g["exit"] == "discharge").to_numpy()
                moved = (g["exit"] == "transfer").to_numpy()
                window = bool(unit.discharge_window)
                iv = length[home] if window else np.empty(0)
                open_ = length[~closed]
                d = _Durations(
                    exact=np.empty(0) if window else length[home],
                    lower=np.maximum(iv - _WINDOW_H, 0.0),
                    upper=iv,
                    censored=open_ if not window else np.empty(0),
                    window_open=open_ if window else np.empty(0),
                    p_home=home_share,
                    no_window=no_window,
                    transfer=length[moved],
                    wait=wait if len(wait) else None,
                    p_wait=p_wait if len(wait) else 0.0,
                )
                if int(closed.sum()) < self.min_count:
                    self.note(f"{path}: {int(closed.sum())} completed stays: kept")
                    continue
                fits = [f for f in (_fit(name, d) for name in FAMILIES) if f is not None]
                if not fits:
                    self.note(f"{path}: no fit converged: kept")
                    continue
                best = min(fits, key=lambda f: f.aic)
                starts = _local(g["start"], self.tz)
                clock_min = (starts.dt.hour * 60 + starts.dt.minute).to_numpy(dtype=float)
                for f in fits:
                    cdf = self._observed_cdf(f, window, home_share, clock_min, d)
                    ks, p = _ks(f, length, closed, cdf)
                    m = f.moments()
                    mlo, mhi = f.interval("mean", self.conf)
                    qlo, qhi = f.interval("median", self.conf)
                    rows.append(
                        {
                            "unit": uname,
                            "group": key or "(all)",
                            "family": f.family,
                            "n": d.n,
                            "exact": len(d.exact) + len(d.transfer),
                            "interval": len(iv),
                            "censored": len(open_),
                            "mean_h": m["mean"],
                            "mean_lower_h": mlo,
                            "mean_upper_h": mhi,
                            "median_h": m["median"],
                            "median_lower_h": qlo,
                            "median_upper_h": qhi,
                            "sd_h": m["sd"],
                            "loglik": f.loglik,
                            "aic": f.aic,
                            "delta_aic": f.aic - best.aic,
                            "ks_stat": ks,
                            "ks_pvalue": p,
                            "chosen": f is best,
                            "base_mean_h": base_dist.mean_min / 60,
                        }
                    )
                new = _dist_dict(best, base_dist.unit)
                if key:
                    self.data["units"][uname]["los_by_class"][key] = new
                else:
                    self.data["units"][uname]["los"] = new
                self.los_changes[path] = (_dist_text(base_dist), _dist_text(new))
        cols = ["unit", "group", "family", "n", "exact", "interval", "censored", "mean_h"]
        cols += ["mean_lower_h", "mean_upper_h", "median_h", "median_lower_h", "median_upper_h"]
        cols += ["sd_h", "loglik", "aic", "delta_aic", "ks_stat", "ks_pvalue", "chosen"]
        cols += ["base_mean_h"]
        self.report["los"] = pd.DataFrame(rows, columns=cols)

    def _observed_cdf(
        self, fit: _Fit, window: bool, home_share: float, clock_min: np.ndarray, d: _Durations
    ) -> Any:
        """The CDF of observed stays the fitted model implies (Monte Carlo where they differ)."""
        dist = fit.dist()
        waits = d.wait is not None and d.p_wait > 0 and home_share < 1
        if not window and not waits:
            return dist.cdf
        assert self.profile is not None
        rng = np.random.default_rng(0)
        n = _MC_DRAWS
        x = dist.rvs(n, rng)
        home = rng.random(n) < home_share
        extra = np.zeros(n)
        if window:
            start = rng.choice(clock_min, n) if len(clock_min) else np.zeros(n)
            ready = (start + x * 60) % 1440
            hour = rng.choice(24, n, p=self.profile / self.profile.sum())
            clock = (hour + rng.random(n)) * 60
            extra = np.where(home, (clock - ready) % 1440 / 60, 0.0)
        if waits:
            assert d.wait is not None
            blocked = ~home & (rng.random(n) < d.p_wait)
            extra = extra + np.where(blocked, rng.choice(d.wait, n), 0.0)
        observed = np.sort(x + extra)

        def cdf(t: np.ndarray) -> np.ndarray:
            return np.searchsorted(observed, t, side="right") / len(observed)

        return cdf

    def simulated_waits(self, days: float, seed: int) -> dict[str, tuple[float, np.ndarray]]:
        """The wait of patients ready to transfer for a bed in the next unit, per unit.

        From a run of the calibrated hospital as it stands (after its warm-up): an ADT feed
        shows only when a patient moved, not when it was ready to.
        """
        from medtwin.hospital.model import simulate

        spec = load_hospital(self.data)
        warm = spec.run.warmup_days
        run = simulate(spec, days=warm + days, warmup_days=warm, seed=seed)
        st = run.stays
        done = (st["dest"] >= 0) & np.isfinite(st["t_out"]) & (st["t_ready"] >= run.warmup_min)
        out: dict[str, tuple[float, np.ndarray]] = {}
        rows = []
        for i, uname in enumerate(run.unit_names):
            w = (st["t_out"] - st["t_ready"])[done & (st["unit"] == i)] / 60
            if len(w) == 0:
                continue
            positive = np.sort(w[w > 1e-6])
            p = len(positive) / len(w)
            q = np.quantile(positive, (np.arange(50) + 0.5) / 50) if len(positive) else positive
            out[uname] = (p, q)
            rows.append(
                {
                    "unit": uname,
                    "transfers": len(w),
                    "waited": p,
                    "mean_wait_h": float(w.mean()),
                    "mean_wait_if_waited_h": float(positive.mean()) if len(positive) else 0.0,
                }
            )
        self.report["transfer_wait"] = pd.DataFrame(
            rows, columns=["unit", "transfers", "waited", "mean_wait_h", "mean_wait_if_waited_h"]
        )
        return out

    # -- elective and direct admissions ----------------------------------------------------

    def fit_admissions(self) -> None:
        specs = self.base.admissions
        v = self.visits
        v = v[(v["first_unit"] != self.ed_name) & v["first_unit"].map(self.names.is_unit)]
        v = v[v["arrived_at"] < pd.Timestamp(self.end)]
        stream: list[str | None] = [
            a if isinstance(a, str) and a in specs else None for a in v["acuity"].tolist()
        ]
        kinds = v["admission_type"].tolist() if "admission_type" in v.columns else [None] * len(v)
        unassigned = 0
        for i, (unit, kind) in enumerate(zip(v["first_unit"].tolist(), kinds, strict=True)):
            if stream[i] is not None:
                continue
            elective = isinstance(kind, str) and kind.upper() in _ELECTIVE_TYPES
            options = [n for n, s in specs.items() if s.unit == unit and s.elective == elective]
            if len(options) == 1:
                stream[i] = options[0]
            else:
                unassigned += 1
        if unassigned:
            self.note(
                f"{unassigned} admissions not through the ED match no single admission stream "
                "(by acuity naming the stream, or by unit and elective/emergency type): left out"
            )
        day_expo = self.exposure.sum(1) / 24
        rows: list[dict[str, Any]] = []
        times: list[dict[str, Any]] = []
        for name, s in specs.items():
            mine = v[np.array([x == name for x in stream], dtype=bool)]
            local = _local(mine["arrived_at"], self.tz)
            counts = np.bincount(local.dt.day_of_week.to_numpy(), minlength=7).astype(float)
            lo, hi = _garwood(counts, day_expo, self.conf)
            per_day = np.where(day_expo > 0, counts / np.maximum(day_expo, 1e-12), np.nan)
            for d in range(7):
                rows.append(
                    {
                        "stream": name,
                        "weekday": WEEKDAYS[d],
                        "n": int(counts[d]),
                        "exposure_d": day_expo[d],
                        "per_day": per_day[d],
                        "lower": lo[d],
                        "upper": hi[d],
                        "base": s.per_weekday[d],
                    }
                )
            if counts.sum() < self.min_count:
                self.note(f"admissions.{name}: {int(counts.sum())} admissions matched: kept")
                continue
            fitted = [
                float(p) if e > 0 else float(b)
                for p, e, b in zip(per_day, day_expo, s.per_weekday, strict=True)
            ]
            if s.poisson:
                new = [round(x, 4) for x in fitted]
            else:
                new = [float(round(x)) for x in fitted]
                self.note(
                    f"admissions.{name}: fixed daily lists, fitted means rounded to whole numbers"
                )
            self.change(f"admissions.{name}.per_weekday", list(s.per_weekday), new)
            self.data["admissions"][name]["per_weekday"] = new
            minutes = (local.dt.hour * 60 + local.dt.minute + local.dt.second / 60).to_numpy()
            q = np.quantile(minutes, [0.0, 0.5, 1.0])
            times.append(
                {
                    "stream": name,
                    "n": len(minutes),
                    "earliest": _clock(q[0]),
                    "median": _clock(q[1]),
                    "latest": _clock(q[2]),
                    "base_between": f"{s.between[0]}-{s.between[1]}",
                }
            )
        self.report["admission_times"] = pd.DataFrame(
            times, columns=["stream", "n", "earliest", "median", "latest", "base_between"]
        )
        if times:
            self.note(
                "an ADT feed shows when an admitted patient took a bed, not when it arrived "
                "(it may have waited for one): admission windows (between) are kept; "
                "report['admission_times'] shows the bed times"
            )
        self.report["admissions"] = pd.DataFrame(
            rows,
            columns=["stream", "weekday", "n", "exposure_d", "per_day", "lower", "upper", "base"],
        )
        if any(s.elective and s.cancel_after_h is not None for s in specs.values()):
            self.note(
                "elective counts are admissions that took place: electives cancelled for want "
                "of a bed are not in an ADT feed, so booked lists may be longer"
            )

    # -- occupancy: is the base hospital the size of the data's? ------------------------------

    def check_occupancy(self) -> None:
        """Patients per unit in the data against the base hospital's beds (beds are not fitted)."""
        s = self.stays
        t0, t1 = pd.Timestamp(self.start), pd.Timestamp(self.end)
        grid = pd.date_range(t0.ceil("h"), t1, freq="h").as_unit("ns").asi8
        rows = []
        for uname, unit in self.base.units.items():
            mine = s[s["unit"] == uname]
            starts = np.sort(mine["start"].dt.as_unit("ns").astype("int64").to_numpy())
            ends = mine["end"].dropna().dt.as_unit("ns").astype("int64").to_numpy()
            occ = np.searchsorted(starts, grid, side="right") - np.searchsorted(
                np.sort(ends), grid, side="right"
            )
            later = occ[len(occ) // 5 :] if len(occ) >= 5 else occ  # a log may start empty
            if len(later) == 0:
                continue
            rows.append(
                {
                    "unit": uname,
                    "beds": unit.beds,
                    "mean": float(later.mean()),
                    "p95": float(np.quantile(later, 0.95)),
                    "max": int(later.max()),
                }
            )
            if later.max() > unit.beds:
                self.note(
                    f"the data have up to {int(later.max())} patients in {uname}, which has "
                    f"{unit.beds} beds in the base hospital: beds are not fitted (set them in the "
                    "hospital file); the transfer-wait run and forecasts use the file's beds"
                )
        self.report["occupancy"] = pd.DataFrame(
            rows, columns=["unit", "beds", "mean", "p95", "max"]
        )

    # -- the calibrated spec ----------------------------------------------------------------

    def result(self) -> CalibrationResult:
        data = self.data
        data["name"] = f"{self.base.name} (calibrated)"
        spec = load_hospital(data)
        if self.names.skipped:
            self.note(
                f"units not in {self.base.name!r} skipped: {', '.join(sorted(self.names.skipped))}"
            )
        changes = self.changes + [(k, a, b) for k, (a, b) in self.los_changes.items()]
        self.report["substituted"] = pd.DataFrame(changes, columns=["path", "base", "fitted"])
        for key in REPORT_TABLES:
            self.report.setdefault(key, pd.DataFrame())
        self.report = {k: self.report[k] for k in REPORT_TABLES}
        return CalibrationResult(
            spec, self.base, self.report, tuple(self.notes), self.start, self.end
        )


def _clock(minutes: float) -> str:
    m = int(minutes)
    return f"{m // 60:02d}:{m % 60:02d}"


def _rounded_probabilities(p: np.ndarray) -> list[float]:
    """Probabilities rounded to 6 decimals that still sum to 1 (the largest takes the rest)."""
    r = np.round(np.asarray(p, dtype=float), 6)
    r[int(np.argmax(r))] += 1.0 - r.sum()
    return [float(x) for x in r]


def _dist_dict(fit: _Fit, unit: str) -> dict[str, Any]:
    per = {"min": 1 / 60, "h": 1.0, "d": 24.0}[unit]
    m = fit.moments()
    return {
        "dist": fit.family,
        "mean": float(f"{m['mean'] / per:.6g}"),
        "sd": float(f"{m['sd'] / per:.6g}"),
        "unit": unit,
    }


def _dist_text(d: Any) -> str:
    if isinstance(d, dict):
        return f"{d['dist']}(mean {d['mean']:g}, sd {d['sd']:g} {d['unit']})"
    fields = ", ".join(f"{k} {v:g}" for k, v in d.model_dump().items() if isinstance(v, float))
    return f"{d.dist}({fields} {d.unit})"


def _arrival_text(a: Any) -> str:
    if isinstance(a, dict):
        per_day = a.get("per_day")
        if per_day is not None:
            return f"{per_day:.4g}/day x hour-of-day x day-of-week weights"
        return "7 x 24 hourly rates"
    return str(a)


def _short(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    if isinstance(x, dict):
        return (
            ", ".join(
                f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in x.items()
            )
            or "{}"
        )
    return str(x)


def calibrate_hospital(
    events: Iterable[ADTEvent] | None,
    base: HospitalSpec | Mapping[str, Any] | str | Path,
    *,
    stays: pd.DataFrame | None = None,
    visits: pd.DataFrame | None = None,
    unit_map: Mapping[str, str | None] | None = None,
    unknown_units: Literal["error", "skip"] = "error",
    start: datetime | None = None,
    end: datetime | None = None,
    arrivals: Literal["auto", "multiplicative", "weekly"] = "auto",
    los_by_class: bool = False,
    ed_records: pd.DataFrame | None = None,
    transfer_wait: Literal["simulate", "ignore"] = "simulate",
    min_count: int = 20,
    confidence: float = 0.95,
    seed: int = 0,
) -> CalibrationResult:
    """Fit a hospital's flow parameters to its ADT history (see the module docs for the methods).

    Parameters
    ----------
    events
        ADT events in any order (HL7 v2, event-log CSV, FHIR Encounters), or ``None`` with
        ``stays`` and ``visits`` (the tables of :func:`stays_from_events` and
        :func:`visits_from_events` of the same events).
    base
        The hospital whose parameters are replaced: beds, ED resources and pathways, bed
        turnaround and whatever the data cannot show are kept from it.
    unit_map
        Data unit names -> the base hospital's unit (or ED) names, for names that are not a
        unit's name or alias (``{"MED": "medicine", "CARD": "medicine"}``); ``None`` as a value
        skips that unit.  Two data units mapped to one are one unit (a move between them is not
        a transfer).
    unknown_units
        What a unit that is neither in the hospital nor in ``unit_map`` does: ``"error"`` (a
        :class:`ConfigurationError` listing them), or ``"skip"``: stays there are left out (a
        transfer into one counts as leaving the hospital) and the notes list them.
    start, end
        The window of observation (timezone-aware; default the first and the last event).
        ``end`` is when open stays are censored.
    arrivals
        ``"multiplicative"`` (``per_day`` with hour-of-day and day-of-week weights), ``"weekly"``
        (7 x 24 ``rate_per_hour``), or ``"auto"``: the base hospital's form.
    los_by_class
        Also fit a length of stay of its own for every class or stream with ``min_count``
        completed stays in a unit (always for those the base hospital has in ``los_by_class``).
    ed_records
        Optional ED-system extract, one row per ED visit: ``visit_id``, ``left_unseen`` (bool)
        and optionally ``seen_at`` (first clinician contact, UTC): enables the LWBS share, the
        patience fit and admission probabilities among patients seen.
    transfer_wait
        ``"simulate"``: a stay that ends in a transfer is its clinical length plus the wait for
        a bed in the next unit, whose distribution (a share that waits, and how long) comes from
        a run of the hospital as first calibrated (after its warm-up, as long as the window,
        56-365 days); lengths of stay are then fitted again.  ``"ignore"``: such stays count as
        clinical (too long where next units are full).
    min_count
        Fewest observations to replace a parameter (fewer: the base value is kept, with a note).
    confidence
        Level of every interval in the report.
    seed
        Seed of the ``transfer_wait`` run.

    Raises
    ------
    ConfigurationError
        A unit the hospital lacks (with ``unknown_units="error"``), a bad ``unit_map``, no data,
        or a calibrated hospital that does not validate.
    """
    spec = load_hospital(base)
    if not 0 < confidence < 1:
        raise ConfigurationError(f"confidence must be between 0 and 1, got {confidence}")
    if arrivals not in ("auto", "multiplicative", "weekly"):
        raise ConfigurationError(
            f"arrivals must be auto, multiplicative or weekly, not {arrivals!r}"
        )
    if unknown_units not in ("error", "skip"):
        raise ConfigurationError(f"unknown_units must be 'error' or 'skip', not {unknown_units!r}")
    names = _Names.build(spec, unit_map, unknown_units == "skip")
    last: datetime | None = None
    first: datetime | None = None
    if events is not None:
        if stays is not None or visits is not None:
            raise ConfigurationError("give events, or stays and visits, not both")
        mapped = _map_events(events, names)
        if not mapped:
            raise ConfigurationError("no ADT events to calibrate from")
        times = [e.occurred_at for e in mapped]
        first, last = min(times), max(times)
        ed_units = (spec.ed.name,) if spec.ed is not None else ()
        stays = _merge_stays(stays_from_events(mapped))
        visits = visits_from_events(mapped, ed_units=ed_units)
        kinds: dict[str, str] = {}
        for e in sorted(mapped, key=lambda e: e.occurred_at):
            if e.admission_type is not None:
                kinds.setdefault(e.visit_id, e.admission_type)
        visits["admission_type"] = visits["visit_id"].map(kinds).astype("string")
    elif stays is None or visits is None:
        raise ConfigurationError("give ADT events, or both the stays and the visits tables")
    else:
        stays, visits = _map_frames(stays, visits, names)
        if stays.empty:
            raise ConfigurationError("no stays to calibrate from")
        first = stays["start"].min().to_pydatetime()
        last = max(stays["start"].max(), stays["end"].max()).to_pydatetime()
    if names.skipped and not names.skip_unknown:
        unknown = sorted(u for u in names.skipped if u not in names.unit_map)
        if unknown:
            known = ", ".join(sorted(spec.unit_names()))
            raise ConfigurationError(
                f"units in the data that hospital {spec.name!r} does not have: {unknown} (known: "
                f"{known}); map them with unit_map={{{unknown[0]!r}: '<unit>'}}, add them as "
                "aliases in the hospital file, or pass unknown_units='skip'"
            )
    t0 = start if start is not None else first
    t1 = end if end is not None else last
    if t0 is None or t1 is None or t0.tzinfo is None or t1.tzinfo is None:
        raise ConfigurationError("start and end must be timezone-aware")
    if not t0 < t1:
        raise ConfigurationError(f"the window is empty: start {t0} is not before end {t1}")
    if ed_records is not None and "visit_id" not in ed_records:
        raise ConfigurationError("ed_records needs a visit_id column")
    cal = _Calibration(
        spec,
        stays,
        visits,
        names,
        t0.astimezone(UTC),
        t1.astimezone(UTC),
        arrivals=arrivals,
        los_by_class=los_by_class,
        min_count=min_count,
        confidence=confidence,
        ed_records=ed_records,
    )
    cal.check_occupancy()
    cal.fit_arrivals()
    cal.fit_classes()
    cal.fit_admission()
    cal.fit_transfers()
    cal.fit_discharge()
    cal.fit_admissions()
    cal.fit_los()
    if transfer_wait == "simulate" and any(u.next for u in spec.units.values()):
        days = min(max((cal.end - cal.start).total_seconds() / 86400, 56.0), 365.0)
        cal.fit_los(cal.simulated_waits(days, seed))
    else:
        cal.note(
            "transfer stays are taken as observed: they include any wait for a bed in the next "
            "unit, which the model adds again (transfer_wait='simulate' corrects for it)"
        )
    return cal.result()
