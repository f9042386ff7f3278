"""The Twin: a model, a patient's posterior, an ensemble kept in sync with the data, and a history.

A :class:`Twin` is personalised once from a patient's history (``fit``: MAP with a Laplace
posterior, :mod:`medtwin.calibrate`), then kept in sync reading by reading (``observe``: an
ensemble filter from :mod:`medtwin.assimilate`).  From its current ensemble it forecasts with
uncertainty bands, gives the probability of a named event within a horizon, and runs what-if
scenarios side by side.  Everything is model-agnostic: the UVA/Padova twin is a Twin over
:class:`~medtwin.models.UvaPadova2008` with a CGM observation.

Time inside a twin is minutes since its ``origin`` (the first data it was fitted on).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medtwin.errors import ConfigurationError, NotCalibratedError, ParameterError
from medtwin.history import PatientHistory
from medtwin.models import AbstractModel, UvaPadova2008
from medtwin.simulate import Schedule, simulate
from medtwin.twin._bands import BandCalibration

__all__ = ["Forecast", "Twin", "forecast_many", "observe_many"]

BAND_LEVELS = (0.5, 0.8, 0.95)


@dataclass(frozen=True)
class Forecast:
    """Predicted observation over a horizon: median and central bands from the ensemble.

    ``members`` are (N, T) trajectories of the observation (without sensor noise); the bands are
    predictive, for what the sensor will read: ensemble spread plus the sensor's noise.
    """

    time: pd.DatetimeIndex
    t_min: np.ndarray
    median: np.ndarray
    bands: dict[float, tuple[np.ndarray, np.ndarray]]
    members: np.ndarray
    weights: np.ndarray
    unit: str = "mg/dL"

    def to_pandas(self) -> pd.DataFrame:
        """One row per time: median and the lower/upper bound of every band."""
        df = pd.DataFrame({"time": self.time, "median": self.median})
        for level, (lo, hi) in sorted(self.bands.items()):
            pct = round(level * 100)
            df[f"lower_{pct}"] = lo
            df[f"upper_{pct}"] = hi
        return df


class Twin:
    """A living patient twin (see the module docstring).

    Parameters
    ----------
    model:
        The mechanistic model (default :class:`~medtwin.models.UvaPadova2008`).
    calibrator:
        Personalisation strategy with ``fit(history)`` and ``posterior_`` (default MAP + Laplace).
    filter:
        Synchronisation strategy with ``init``, ``update`` and ``propagate`` (default a particle
        filter of 500 members).
    observation:
        The model observation the sensor reads (``"Gsub"``, mg/dL).
    sensor_sd_mg_dl:
        SD of one reading's error, for the predictive bands (a property of the CGM, from its
        accuracy specification); default: the filter's observation SD.
    seed:
        Seed of every random draw the twin makes.
    """

    _history: PatientHistory
    _events_until: float
    """Time (minutes from origin) of the last assimilated reading: events before it are applied."""
    _history_parts: list[tuple[pd.DataFrame, pd.DataFrame, tuple[Any, ...]]]
    n_readings_: int

    def __init__(
        self,
        model: AbstractModel | type[AbstractModel] = UvaPadova2008,
        *,
        calibrator: Any = None,
        filter: Any = None,
        observation: str = "Gsub",
        sensor_sd_mg_dl: float | None = None,
        seed: int = 0,
    ) -> None:
        self.model = model() if isinstance(model, type) else model
        self.calibrator = calibrator
        self.filter = filter
        self.observation = observation
        self.sensor_sd_mg_dl = sensor_sd_mg_dl
        self.seed = seed

    # -- fitting and keeping in sync -------------------------------------------------------

    def fit(self, history: PatientHistory, *, assimilate: bool = True) -> Twin:
        """Personalise on ``history``, then assimilate it so the twin's state is current.

        With ``assimilate=False`` the twin stops at its first reading: ``observe(history)``
        then does the rest (as :func:`observe_many` does for many new twins at once).
        """
        if len(history.cgm) < 12:
            raise ParameterError(
                f"a twin needs at least an hour of CGM readings to fit; got {len(history.cgm)}"
            )
        self.origin_ = history.start
        self.calibrator_ = (
            self.calibrator if self.calibrator is not None else _default_calibrator(self.model)
        )
        self.calibrator_.fit(history)
        self.posterior_ = self.calibrator_.posterior_
        self.filter_ = self.filter if self.filter is not None else _default_filter(self.model)
        self.sensor_sd_mg_dl_ = float(
            self.sensor_sd_mg_dl if self.sensor_sd_mg_dl is not None else self.filter_.obs_sd_mg_dl
        )
        t0 = float(history.minutes(self.origin_)[0])
        self.ensemble_ = self.filter_.init(self._initial_members(), t0=t0)
        self.basal_u_per_h_: float | None = None
        self.bands_ = BandCalibration()
        self._events_until = -np.inf
        self._pending_events = history.events.iloc[:0]
        self.history_ = PatientHistory.from_frames(
            history.cgm.iloc[:1], history.events.iloc[:0], history.issues, history.patient_id,
            history.source,
        )  # fmt: skip
        if assimilate:
            self.observe(PatientHistory.from_frames(history.cgm.iloc[1:], history.events))
        return self

    def observe(self, data: PatientHistory) -> Twin:
        """Assimilate new CGM readings and logged events, one filter update per reading."""
        self._check_fitted()
        steps = self._observe_steps(data)
        request = next(steps, None)
        while request is not None:
            t, g, segment = request
            self.ensemble_ = self.filter_.update(self.ensemble_, t, g, segment)
            request = next(steps, None)
        return self

    def _observe_steps(self, data: PatientHistory) -> Iterator[tuple[float, float, Schedule]]:
        """:meth:`observe` as the filter updates it asks for: (time, reading, schedule) each.

        The caller sets ``ensemble_`` to the update's result before taking the next request, so
        that :func:`observe_many` can run several twins' updates together.
        """
        events = data.events.sort_values("time", kind="stable")
        readings = data.cgm.sort_values("time", kind="stable")
        t_read = ((readings["time"] - self.origin_).dt.total_seconds() / 60.0).to_numpy(float)
        t_ev = ((events["time"] - self.origin_).dt.total_seconds() / 60.0).to_numpy(float)
        # An event before the last assimilated reading was applied then: resubmitted, it
        # changes nothing (applied twice, a bolus would be a double dose).
        fresh = t_ev >= self._events_until
        events, t_ev = events[fresh], t_ev[fresh]
        glucose = readings["glucose_mg_dl"].to_numpy(float)
        kinds = events["kind"].to_numpy()
        values = events["value"].to_numpy(float)
        pending = 0
        used = np.zeros(len(readings), dtype=bool)
        for i, (t, g) in enumerate(zip(np.round(t_read), glucose, strict=True)):
            if t <= self.ensemble_.t:
                continue  # already assimilated (a resubmitted reading changes nothing)
            used[i] = True
            self.bands_.score(float(t), float(g))
            start = self.ensemble_.t
            segment = self._segment_schedule(start)
            while pending < t_ev.size and t_ev[pending] < t:
                at = max(float(np.round(t_ev[pending])), start)
                segment = _add_event(segment, kinds[pending], values[pending], at)
                if kinds[pending] == "basal":
                    self.basal_u_per_h_ = float(values[pending])
                pending += 1
            yield float(t), float(g), segment
            self._events_until = float(t)
        # events after the last reading stay pending for the next observe()
        self._pending_events = events.iloc[pending:]
        # Appended lazily: a twin fed one reading at a time would otherwise copy its whole
        # history on every reading (quadratic in the readings a service's twin lives through).
        self._history_parts.append((readings[used], events.iloc[:pending], data.issues))
        self.n_readings_ += int(used.sum())

    @property
    def history_(self) -> PatientHistory:
        """Everything the twin has assimilated (readings, events and the issues found)."""
        if self._history_parts:
            base = self._history
            parts = self._history_parts
            self._history = PatientHistory.from_frames(
                pd.concat([base.cgm, *(p[0] for p in parts)], ignore_index=True),
                pd.concat([base.events, *(p[1] for p in parts)], ignore_index=True),
                base.issues + tuple(i for p in parts for i in p[2]),
                base.patient_id,
                base.source,
            )
            self._history_parts = []
        return self._history

    @history_.setter
    def history_(self, value: PatientHistory) -> None:
        self._history = value
        self._history_parts = []
        self.n_readings_ = len(value.cgm)

    # -- looking ahead -----------------------------------------------------------------------

    @property
    def now(self) -> pd.Timestamp:
        """Time of the twin's current state."""
        self._check_fitted()
        return self.origin_ + pd.Timedelta(minutes=float(self.ensemble_.t))

    def forecast(
        self,
        horizon_min: float = 240.0,
        scenario: Schedule | None = None,
        *,
        every_min: float = 5.0,
        with_sensor_noise: bool = True,
    ) -> Forecast:
        """Forecast the observation ``horizon_min`` ahead under ``scenario`` (times from now).

        The scenario's events are in minutes from now (``Schedule().bolus(0, 4)`` is a 4 U bolus
        now); without one the patient continues on the current basal with nothing else.
        """
        t, schedule = self._forecast_plan(horizon_min, scenario, every_min)
        ens = self.ensemble_
        sol = simulate(
            self.model, schedule, t, params=ens.params, x0=ens.states, record=[self.observation]
        )
        return self._forecast_result(
            t, sol[self.observation], with_sensor_noise, calibrate=scenario is None
        )

    def _forecast_plan(
        self, horizon_min: float, scenario: Schedule | None, every_min: float
    ) -> tuple[np.ndarray, Schedule]:
        """The output times and the schedule of a forecast from now."""
        self._check_fitted()
        if not (horizon_min > 0 and every_min > 0):
            raise ConfigurationError("forecast horizon_min and every_min must be > 0")
        now = float(self.ensemble_.t)
        t = now + np.arange(0.0, horizon_min + every_min / 2, every_min)
        schedule = self._segment_schedule(now)
        pending = self._pending_events
        offsets = (pending["time"] - self.origin_).dt.total_seconds().to_numpy(float) / 60.0
        for at, kind, value in zip(
            offsets, pending["kind"], pending["value"].to_numpy(float), strict=True
        ):
            if now <= at < t[-1]:
                schedule = _add_event(schedule, str(kind), float(value), float(np.round(at)))
        if scenario is not None:
            schedule = schedule + scenario.shifted(now)
        return t, schedule

    def _forecast_result(
        self,
        t: np.ndarray,
        members: np.ndarray,
        with_sensor_noise: bool,
        with_bands: bool = True,
        *,
        calibrate: bool = False,
    ) -> Forecast:
        """The forecast from the members' trajectories over ``t``.

        With ``calibrate`` (a forecast of what will happen, not a what-if) and sensor noise, the
        forecast is kept to be scored against the readings that arrive, and its bands are
        rescaled by the twin's recent forecast errors (:mod:`medtwin.twin._bands`).
        """
        now = float(self.ensemble_.t)
        weights = np.asarray(self.ensemble_.weights, dtype=float)
        noisy = members
        if with_sensor_noise:
            rng = np.random.default_rng(self.seed + int(now))
            noisy = members + self.sensor_sd_mg_dl_ * rng.standard_normal(members.shape)
        median = weighted_quantile(noisy, weights, 0.5)
        bands = {
            level: (
                weighted_quantile(noisy, weights, (1 - level) / 2),
                weighted_quantile(noisy, weights, (1 + level) / 2),
            )
            for level in (BAND_LEVELS if with_bands else ())
        }
        if calibrate and with_sensor_noise:
            lo95 = bands[0.95][0] if 0.95 in bands else weighted_quantile(noisy, weights, 0.025)
            hi95 = bands[0.95][1] if 0.95 in bands else weighted_quantile(noisy, weights, 0.975)
            bands = self.bands_.apply(t - now, median, lo95, hi95, bands)
            self.bands_.record(t, median, lo95, hi95)
        times = self.origin_ + pd.to_timedelta(t, unit="min")
        return Forecast(pd.DatetimeIndex(times), t - now, median, bands, members, weights)

    def risk(
        self,
        event: str = "hypoglycaemia",
        *,
        below: float | None = None,
        above: float | None = None,
        within_min: float = 30.0,
        scenario: Schedule | None = None,
    ) -> float:
        """Probability that the observation crosses a threshold within ``within_min``.

        ``"hypoglycaemia"`` defaults to below 70 mg/dL, ``"hyperglycaemia"`` to above 250.
        """
        if event == "hypoglycaemia":
            below = 70.0 if below is None else below
        elif event == "hyperglycaemia":
            above = 250.0 if above is None else above
        elif below is None and above is None:
            raise ConfigurationError(
                f"unknown event {event!r}: use 'hypoglycaemia', 'hyperglycaemia', or give a "
                "below= or above= threshold"
            )
        fc = self.forecast(within_min, scenario, with_sensor_noise=False)
        hit = np.zeros(fc.members.shape[0], dtype=bool)
        if below is not None:
            hit |= (fc.members[:, 1:] < below).any(axis=1)
        if above is not None:
            hit |= (fc.members[:, 1:] > above).any(axis=1)
        return float(np.sum(fc.weights * hit) / np.sum(fc.weights))

    def compare(
        self, scenarios: Mapping[str, Schedule | None], horizon_min: float = 240.0
    ) -> pd.DataFrame:
        """Outcomes of what-if scenarios side by side, each with a 95% interval over members.

        Columns per scenario: time in range 70-180 (%), time below 70 (%), peak and nadir
        (mg/dL) over the horizon, as the ensemble's median and 2.5-97.5% range.  Every scenario
        runs from the same members, so differences between rows are paired.
        """
        rows = []
        for name, schedule in scenarios.items():
            fc = self.forecast(horizon_min, schedule, with_sensor_noise=False)
            g = fc.members[:, 1:]
            outcomes = {
                "tir_70_180_percent": 100 * ((g >= 70) & (g <= 180)).mean(axis=1),
                "tbr_70_percent": 100 * (g < 70).mean(axis=1),
                "peak_mg_dl": g.max(axis=1),
                "nadir_mg_dl": g.min(axis=1),
            }
            row: dict[str, Any] = {"scenario": name}
            for key, values in outcomes.items():
                row[key] = float(weighted_quantile(values[:, None], fc.weights, 0.5)[0])
                row[f"{key}_lo"] = float(weighted_quantile(values[:, None], fc.weights, 0.025)[0])
                row[f"{key}_hi"] = float(weighted_quantile(values[:, None], fc.weights, 0.975)[0])
            rows.append(row)
        return pd.DataFrame(rows).set_index("scenario")

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the twin to ``path`` (``.npz``): ensemble, clock, basal, filter settings.

        :meth:`load` restores a twin whose forecasts are identical to this one's.
        """
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    def to_bytes(self) -> bytes:
        """The twin as bytes (the ``.npz`` that :meth:`save` writes; a service stores these)."""
        self._check_fitted()
        ens = self.ensemble_
        arrays: dict[str, Any] = {f"state__{k}": np.asarray(v) for k, v in ens.states.items()}
        arrays |= {f"param__{k}": np.asarray(v) for k, v in ens.params.items()}
        arrays["weights"] = np.asarray(ens.weights)
        arrays |= {f"bands__{k}": v for k, v in self.bands_.state().items()}
        meta: dict[str, Any] = {
            "format": "medtwin-twin/1",
            "model": type(self.model).__name__,
            "origin": self.origin_.isoformat(),
            "t": float(ens.t),
            "step": int(ens.step),
            "basal_u_per_h": self.basal_u_per_h_,
            "sensor_sd_mg_dl": self.sensor_sd_mg_dl_,
            "observation": self.observation,
            "seed": self.seed,
            "filter": type(self.filter_).__name__,
            "filter_settings": getattr(self.filter_, "settings", dict)(),
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str | Path) -> Twin:
        """Restore a twin written by :meth:`save` (ready to observe and forecast)."""
        try:
            blob = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read a saved twin ({exc})") from None
        return cls.from_bytes(blob, name=str(path))

    @classmethod
    def from_bytes(cls, blob: bytes, *, name: str = "twin") -> Twin:
        """Restore a twin from :meth:`to_bytes` output; ``name`` labels error messages."""
        from medtwin import assimilate
        from medtwin.assimilate import Ensemble
        from medtwin.models import ALL_MODELS

        path = name
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            meta = json.loads(arrays.pop("meta").tobytes().decode())
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise ConfigurationError(f"{path}: not a saved medtwin twin ({exc})") from None
        if meta.get("format") != "medtwin-twin/1":
            raise ConfigurationError(f"{path}: unknown twin format {meta.get('format')!r}")
        models = {m.__name__: m for m in ALL_MODELS}
        if meta["model"] not in models:
            raise ConfigurationError(f"{path}: unknown model {meta['model']!r}")
        model = models[meta["model"]]
        filter_cls = getattr(assimilate, meta["filter"])
        twin = cls(
            model,
            filter=filter_cls(model, **meta["filter_settings"]),
            observation=meta["observation"],
            seed=meta["seed"],
        )
        twin.filter_ = twin.filter
        twin.origin_ = pd.Timestamp(meta["origin"])
        twin.basal_u_per_h_ = meta["basal_u_per_h"]
        twin.sensor_sd_mg_dl_ = float(meta["sensor_sd_mg_dl"])
        twin.ensemble_ = Ensemble(
            model=model,
            t=float(meta["t"]),
            states={k[7:]: v for k, v in arrays.items() if k.startswith("state__")},
            params={k[7:]: v for k, v in arrays.items() if k.startswith("param__")},
            weights=arrays["weights"],
            step=int(meta["step"]),
        )
        twin.bands_ = BandCalibration()
        twin.bands_.restore({k[7:]: v for k, v in arrays.items() if k.startswith("bands__")})
        twin._events_until = float(twin.ensemble_.t)
        twin._pending_events = pd.DataFrame(
            {"time": pd.to_datetime([], utc=True), "kind": [], "value": []}
        )
        empty = pd.DataFrame({"time": pd.to_datetime([], utc=True), "glucose_mg_dl": []})
        twin.history_ = PatientHistory.from_frames(empty, twin._pending_events)
        return twin

    # -- internals -----------------------------------------------------------------------------

    def _initial_members(self) -> Any:
        """Posterior draws of the estimated parameters on top of the calibrator's other values.

        A posterior covers only the estimated parameters; the rest (the calibrator's base values,
        a known body weight say) must come along, or the filter would fall back on defaults.
        """
        base = getattr(self.calibrator_, "params_", None)
        if base is None:
            return self.posterior_
        n = self.filter_.n_members
        draws = self.posterior_.sample(n, seed=self.seed)
        return {k: np.full(n, float(v)) for k, v in base.items()} | dict(draws)

    def _segment_schedule(self, start: float) -> Schedule:
        s = Schedule()
        if self.basal_u_per_h_ is not None:
            s = s.basal(start, self.basal_u_per_h_)
        return s

    def _check_fitted(self) -> None:
        if not hasattr(self, "ensemble_"):
            raise NotCalibratedError("this Twin is not fitted yet; call fit(history) first")


def observe_many(
    twins: Sequence[Twin], data: Sequence[PatientHistory], *, return_exceptions: bool = False
) -> list[Any]:
    """``twins[i].observe(data[i])`` for every i, their filter updates run together.

    Each round takes every twin's next filter update and hands them to
    :func:`~medtwin.assimilate.update_many`, which updates particle filters of one configuration
    in one vectorised step (each twin's own seed, schedule and clock) and any other alone; the
    twins end as the one-by-one ``observe`` leaves them (to floating-point rounding).  With
    ``return_exceptions`` a twin whose update fails stops there (as ``observe`` would) and its
    slot of the result holds the exception; the other twins go on.
    """
    from medtwin.assimilate import update_many

    if len(twins) != len(data):
        raise ConfigurationError("observe_many takes one data set per twin")
    if len({id(t) for t in twins}) != len(twins):
        raise ConfigurationError("observe_many takes each twin once")
    out: list[Any] = list(twins)
    steps: list[Iterator[tuple[float, float, Schedule]] | None] = []
    for i, (twin, d) in enumerate(zip(twins, data, strict=True)):
        try:
            twin._check_fitted()
            steps.append(twin._observe_steps(d))
        except Exception as exc:
            if not return_exceptions:
                raise
            out[i] = exc
            steps.append(None)

    def advance(i: int) -> tuple[float, float, Schedule] | None:
        step = steps[i]
        try:
            return next(step, None) if step is not None else None
        except Exception as exc:
            if not return_exceptions:
                raise
            out[i] = exc
            return None

    requests = [advance(i) for i in range(len(twins))]
    while True:
        live = [i for i, r in enumerate(requests) if r is not None]
        if not live:
            return out
        asked = [r for r in requests if r is not None]
        try:
            done: list[Any] = update_many(
                [twins[i].filter_ for i in live],
                [twins[i].ensemble_ for i in live],
                [r[0] for r in asked],
                [r[1] for r in asked],
                [r[2] for r in asked],
            )
        except Exception:
            if not return_exceptions:
                raise
            done = []
            for i, (t, g, segment) in zip(live, asked, strict=True):
                try:
                    done.append(twins[i].filter_.update(twins[i].ensemble_, t, g, segment))
                except Exception as exc:
                    done.append(exc)
        for i, ens in zip(live, done, strict=True):
            if isinstance(ens, Exception):
                out[i] = ens
                requests[i] = None
                continue
            twins[i].ensemble_ = ens
            requests[i] = advance(i)


def forecast_many(
    twins: Sequence[Twin],
    horizon_min: float = 240.0,
    *,
    every_min: float = 5.0,
    with_sensor_noise: bool = True,
    with_bands: bool = True,
) -> list[Forecast]:
    """``twins[i].forecast(horizon_min, ...)`` for every i, from one run of the engine.

    Twins of one model class and observation share the run (each with its own schedule and
    clock); the forecasts equal the one-by-one ones to floating-point rounding.  Without
    ``with_bands`` the forecasts' ``bands`` are empty (for callers that need only the members).
    """
    from medtwin.assimilate import simulate_members
    from medtwin.errors import SimulationError

    out: list[Forecast | None] = [None] * len(twins)
    plans = [twin._forecast_plan(horizon_min, None, every_min) for twin in twins]
    groups: dict[Any, list[int]] = {}
    for i, twin in enumerate(twins):
        key = (type(twin.model), twin.observation, plans[i][0].size)
        groups.setdefault(key, []).append(i)
    for (model, observation, _), members in groups.items():
        if len(members) == 1:
            i = members[0]
            out[i] = twins[i].forecast(
                horizon_min, every_min=every_min, with_sensor_noise=with_sensor_noise
            )
            continue
        try:
            sims = simulate_members(
                model,
                [plans[i][1] for i in members],
                [plans[i][0] for i in members],
                [twins[i].ensemble_.params for i in members],
                [twins[i].ensemble_.states for i in members],
                record=(observation,),
            )
        except (SimulationError, ParameterError):
            for i in members:  # one by one, so that the error names the twin
                out[i] = twins[i].forecast(
                    horizon_min, every_min=every_min, with_sensor_noise=with_sensor_noise
                )
            continue
        for i, (values, _) in zip(members, sims, strict=True):
            out[i] = twins[i]._forecast_result(
                plans[i][0], values[observation], with_sensor_noise, with_bands, calibrate=True
            )
    return [f for f in out if f is not None]


def _add_event(s: Schedule, kind: str, value: float, at: float) -> Schedule:
    if kind == "carbs":
        return s.meal(at, value)
    if kind == "bolus":
        return s.bolus(at, value)
    return s.basal(at, value)


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` over axis 0 of ``x`` (members x times) with member weights ``w``.

    The smallest value whose cumulative weight reaches ``q`` (no interpolation).
    """
    order = np.argsort(x, axis=0)
    xs = np.take_along_axis(x, order, axis=0)
    ws = w[order]
    cdf = np.cumsum(ws, axis=0) / ws.sum(axis=0)
    idx = (cdf < q).sum(axis=0).clip(max=x.shape[0] - 1)
    return np.take_along_axis(xs, idx[None, :], axis=0)[0]


def _default_calibrator(model: AbstractModel) -> Any:
    from medtwin.calibrate import MAPEstimator

    return MAPEstimator(type(model))


def _default_filter(model: AbstractModel) -> Any:
    # The particle filter: no linear analysis step to push a nonlinear model's states into
    # regions no patient visits; on the bench it was the more robust of the two.
    from medtwin.assimilate import ParticleFilter

    return ParticleFilter(type(model))
