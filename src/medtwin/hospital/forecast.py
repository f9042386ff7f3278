"""Forecasts from the live census: bed occupancy and ED crowding over the next hours.

:func:`forecast` starts every replication from the same :class:`CensusSnapshot` (who is where,
since when), runs the flow model ``horizon_hours`` ahead with fresh arrivals, and collects the
census on the hour.  Patients in beds stay for a residual time drawn from their unit's length
of stay *conditional on the time already spent*, ``X - e | X > e`` (a patient in day 10 of a
long-tailed stay is expected to stay longer than a new one); patients in the ED resume their
pathway (boarders wait for a bed).  Quantiles across replications give prediction bands: the
5% and 95% quantiles bound a 90% interval.  Unit names in the census map to the spec's units
(names or ``aliases``); an unknown unit is an error, not a silent drop.

>>> from datetime import datetime, timezone
>>> from medtwin.hospital import CensusSnapshot, Occupant
>>> at = datetime(2024, 3, 4, 8, 0, tzinfo=timezone.utc)
>>> since = datetime(2024, 3, 1, 14, 0, tzinfo=timezone.utc)
>>> snap = CensusSnapshot(at, (Occupant("v1", "p1", "ICU", "B1", since, since),))
>>> fc = forecast("example_hospital", snap, horizon_hours=12, replications=5, seed=1)
>>> fc.bands(["occupied:ICU"]).shape
(13, 8)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from medtwin.errors import ConfigurationError
from medtwin.hospital._records import CensusSnapshot
from medtwin.hospital.experiment import _tasks, execute
from medtwin.hospital.model import _check_census
from medtwin.hospital.scenario import Scenario, as_scenario
from medtwin.hospital.spec import HospitalSpec, load_hospital

__all__ = ["DEFAULT_QUANTILES", "CensusForecast", "forecast"]

DEFAULT_QUANTILES: tuple[float, ...] = (0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95)
"""Median, 50%, 80% and 90% central intervals."""


@dataclass(frozen=True)
class CensusForecast:
    """Hourly census paths of every replication, from the census time to the horizon.

    ``samples[name]`` has shape ``(replications, horizon_hours + 1)``: the value on each hour
    from the census time (hour 0 is the census itself).  Names are the model's levels:
    ``occupied:<unit>`` (patients in beds), ``bed_queue:<unit>`` (waiting for a bed there,
    boarders included), ``ed`` (patients in the ED), ``waiting`` (not yet seen), ``boarding``,
    ``busy:<resource>``, ``lounge``, and ``arrivals`` (ED arrivals in the hour that starts then).
    """

    spec_name: str
    scenario: str | None
    start: datetime
    horizon_hours: int
    beds: dict[str, int]
    samples: dict[str, np.ndarray]
    quantiles: tuple[float, ...]

    @property
    def replications(self) -> int:
        """Number of replications."""
        return next(iter(self.samples.values())).shape[0]

    @property
    def times(self) -> pd.DatetimeIndex:
        """The forecast hours (UTC), census time first."""
        return pd.date_range(
            pd.Timestamp(self.start).tz_convert("UTC"), periods=self.horizon_hours + 1, freq="h"
        )

    def bands(
        self, series: Sequence[str] | None = None, quantiles: Sequence[float] | None = None
    ) -> pd.DataFrame:
        """Quantiles (and the mean) of each series by hour: columns ``(series, quantile)``."""
        names = list(series) if series is not None else list(self.samples)
        unknown = [n for n in names if n not in self.samples]
        if unknown:
            raise ConfigurationError(f"unknown series {unknown}; known: {', '.join(self.samples)}")
        qs = tuple(quantiles) if quantiles is not None else self.quantiles
        cols: dict[tuple[str, str], np.ndarray] = {}
        for n in names:
            x = self.samples[n]
            for q, v in zip(qs, np.quantile(x, qs, axis=0), strict=True):
                cols[(n, f"q{q:g}")] = v
            cols[(n, "mean")] = x.mean(axis=0)
        df = pd.DataFrame(cols, index=self.times)
        df.columns = pd.MultiIndex.from_tuples(list(cols), names=["series", "statistic"])
        return df

    def occupancy(self, quantiles: Sequence[float] | None = None) -> pd.DataFrame:
        """Bed occupancy (patients / beds) quantiles per unit: columns ``(unit, quantile)``."""
        qs = tuple(quantiles) if quantiles is not None else self.quantiles
        cols = {}
        for u, beds in self.beds.items():
            x = self.samples[f"occupied:{u}"] / beds
            for q, v in zip(qs, np.quantile(x, qs, axis=0), strict=True):
                cols[(u, f"q{q:g}")] = v
        df = pd.DataFrame(cols, index=self.times)
        df.columns = pd.MultiIndex.from_tuples(list(cols), names=["unit", "statistic"])
        return df

    def probability_full(self) -> pd.DataFrame:
        """Probability, by hour, that each unit has every bed occupied (or more: escalation)."""
        return pd.DataFrame(
            {u: (self.samples[f"occupied:{u}"] >= b).mean(axis=0) for u, b in self.beds.items()},
            index=self.times,
        )

    def ed(self, quantiles: Sequence[float] | None = None) -> pd.DataFrame:
        """ED crowding bands: patients in the ED, waiting to be seen, boarding, arrivals."""
        names = [n for n in ("ed", "waiting", "boarding", "arrivals") if n in self.samples]
        return self.bands(names, quantiles)


def forecast(
    spec: HospitalSpec | Mapping[str, Any] | str,
    snapshot: CensusSnapshot,
    horizon_hours: int = 72,
    *,
    replications: int = 200,
    seed: int = 0,
    scenario: Scenario | Mapping[str, Any] | None = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    workers: int | None = None,
    client: Any = None,
    progress: bool = False,
) -> CensusForecast:
    """Forecast the hospital ``horizon_hours`` ahead from a census, ``replications`` times.

    With a ``scenario`` the forecast is of the what-if (e.g. 10 extra beds opened now), on the
    same random numbers as the plain forecast with the same seed.
    """
    spec = load_hospital(spec)
    scn = as_scenario(scenario)
    _check_census(spec, snapshot)
    if horizon_hours < 1 or int(horizon_hours) != horizon_hours:
        raise ConfigurationError(
            f"horizon_hours must be a positive whole number, got {horizon_hours}"
        )
    if replications < 2:
        raise ConfigurationError(f"a forecast needs at least 2 replications, got {replications}")
    qs = tuple(float(q) for q in quantiles)
    if not all(0 <= q <= 1 for q in qs):
        raise ConfigurationError(f"quantiles must be in [0, 1], got {qs}")
    tasks = _tasks(
        spec,
        scn,
        range(replications),
        snapshot=snapshot,
        seed=seed,
        days=horizon_hours / 24,
        warmup_days=0.0,
        start=None,
        keep="census",
    )
    out = execute(tasks, workers=workers, client=client, progress=progress, desc="forecast")
    names = list(out[0]["census"])
    samples = {n: np.stack([o["census"][n] for o in out]) for n in names}
    beds = {u: (scn.apply(spec) if scn else spec).units[u].beds for u in spec.units}
    return CensusForecast(
        spec.name, scn.name if scn else None, snapshot.at, int(horizon_hours), beds, samples, qs
    )
