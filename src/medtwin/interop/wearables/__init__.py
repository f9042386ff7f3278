"""Readers for wearable and CGM data: Nightscout, Dexcom Clarity, FHIR CGM Observations, plain CSV.

Every reader returns a :class:`~medtwin.history.PatientHistory` with glucose in mg/dL (mmol/L is
converted here, at the boundary), times in UTC, and the same data-quality checks applied (see
:mod:`medtwin.interop.wearables._quality`): duplicates, conflicts, out-of-order input, implausible
readings (outside 39-401 mg/dL), sensor warm-up and gaps are all listed in ``issues``, never
dropped silently.  Malformed input raises :class:`~medtwin.errors.DataFormatError` naming the file,
line or JSON path and field; values plainly in the other unit raise
:class:`~medtwin.errors.UnitError`.
"""

from __future__ import annotations

from medtwin.interop.wearables._quality import MAX_GAP_MIN, PLAUSIBLE_MG_DL, WARM_UP_MIN
from medtwin.interop.wearables.clarity import read_clarity
from medtwin.interop.wearables.csv import read_csv
from medtwin.interop.wearables.fhir import CGM_LOINC, read_fhir_observations
from medtwin.interop.wearables.nightscout import read_nightscout

__all__ = [
    "CGM_LOINC",
    "MAX_GAP_MIN",
    "PLAUSIBLE_MG_DL",
    "WARM_UP_MIN",
    "read_clarity",
    "read_csv",
    "read_fhir_observations",
    "read_nightscout",
]
