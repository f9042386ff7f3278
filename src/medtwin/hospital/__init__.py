"""The hospital operations twin: patient flow, live census, forecasts and what-if scenarios.

A hospital is one YAML/JSON file (:func:`load_hospital`, validated; bundled examples
``"example_hospital"`` and ``"treat_sim_nelson2013"``).  :func:`simulate` runs the SimPy flow
model once (ED arrivals by hour and weekday, triage classes, cubicles and rostered staff,
boarding, wards and ICU, discharge windows, electives); :func:`replicate` and
:func:`replicate_until` run replications with confidence intervals; :func:`compare` runs
what-if :class:`Scenario` s against the baseline on common random numbers; :func:`forecast`
starts from a :class:`CensusSnapshot` and gives hourly occupancy and ED-crowding bands.
:class:`Census` keeps the live census from ADT events (HL7 v2 via :mod:`medtwin.interop.hl7v2`,
FHIR Encounters, event-log CSVs: :func:`read_event_log`); :func:`synthetic_adt_stream` simulates
a feed with its ground truth.  :func:`calibrate_hospital` fits a hospital to its ADT history;
:func:`backtest` scores census forecasts against a simulated truth.
Replications run in local processes or on Dask with the same results.  See
``docs/hospital.md``.

>>> run = simulate("example_hospital", days=3, warmup_days=0, seed=1)
>>> 0 < run.kpis()["occupancy"] < 1
True
"""

from __future__ import annotations

from medtwin.hospital._records import ADT_EVENT_TYPES, ADTEvent, CensusSnapshot, Occupant
from medtwin.hospital.calibrate import CalibrationResult, calibrate_hospital
from medtwin.hospital.census import Census, CensusChange, CensusIssue
from medtwin.hospital.eventlog import (
    read_event_log,
    stays_from_events,
    visits_from_events,
    write_event_log,
)
from medtwin.hospital.experiment import (
    Comparison,
    Replications,
    WarmupChoice,
    choose_warmup,
    compare,
    replicate,
    replicate_until,
)
from medtwin.hospital.forecast import CensusForecast, forecast
from medtwin.hospital.kpi import confidence_interval, kpis, mser5, paired_difference
from medtwin.hospital.model import SimulationRun, simulate
from medtwin.hospital.queueing import ErlangC, erlang_c
from medtwin.hospital.scenario import Scenario, Surge
from medtwin.hospital.spec import HospitalSpec, load_hospital
from medtwin.hospital.synthetic import SyntheticStream, synthetic_adt_stream
from medtwin.hospital.validate import Backtest, backtest

__all__ = [
    "ADT_EVENT_TYPES",
    "ADTEvent",
    "Backtest",
    "CalibrationResult",
    "Census",
    "CensusChange",
    "CensusForecast",
    "CensusIssue",
    "CensusSnapshot",
    "Comparison",
    "ErlangC",
    "HospitalSpec",
    "Occupant",
    "Replications",
    "Scenario",
    "SimulationRun",
    "Surge",
    "SyntheticStream",
    "WarmupChoice",
    "backtest",
    "calibrate_hospital",
    "choose_warmup",
    "compare",
    "confidence_interval",
    "erlang_c",
    "forecast",
    "kpis",
    "load_hospital",
    "mser5",
    "paired_difference",
    "read_event_log",
    "replicate",
    "replicate_until",
    "simulate",
    "stays_from_events",
    "synthetic_adt_stream",
    "visits_from_events",
    "write_event_log",
]
