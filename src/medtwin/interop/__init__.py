"""Translation at the boundary: outside formats in, validated medtwin objects out.

Only this package knows file formats and their units; everything above it sees UTC times, mg/dL,
U, U/h and g.  Wearable and CGM readers live in :mod:`medtwin.interop.wearables`; FHIR R4 validation,
import to records and export of the twins' outputs in :mod:`medtwin.interop.fhir`; NONMEM-style
dosing data sets in :mod:`medtwin.interop.nonmem`; HL7 v2 ADT messages, MLLP and FHIR Encounters as
ADT events for the live hospital census in :mod:`medtwin.interop.hl7v2`.
"""

from __future__ import annotations

from medtwin.interop import fhir, hl7v2
from medtwin.interop.hl7v2 import (
    build_adt_message,
    events_from_encounter,
    parse_adt_message,
    read_adt_file,
    serve_mllp,
)
from medtwin.interop.nonmem import NonmemData, read_nonmem, read_theophylline
from medtwin.interop.wearables import (
    read_clarity,
    read_csv,
    read_fhir_observations,
    read_nightscout,
)

__all__ = [
    "NonmemData",
    "build_adt_message",
    "events_from_encounter",
    "fhir",
    "hl7v2",
    "parse_adt_message",
    "read_adt_file",
    "read_clarity",
    "read_csv",
    "read_fhir_observations",
    "read_nightscout",
    "read_nonmem",
    "read_theophylline",
    "serve_mllp",
]
