"""De-identification for research views: pseudonyms instead of ids, no direct identifiers.

Ages over 89 are collapsed into one "90 or older" category, and the birth year of such a patient is
withheld, as HIPAA's Safe Harbor method requires (45 CFR 164.514(b)(2)(i)(C)).
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, date, datetime
from typing import Any

from medtwin.errors import DataFormatError
from medtwin.records import PatientRecord
from medtwin.security._fields import pseudonym

__all__ = ["deidentify_fhir", "deidentify_patient"]

_AGE_CAP = 90
# Patient elements that identify a person directly (names, ids, contact details, photos, places,
# links to other records) or carry free text/extensions that may (US Core birthPlace is an address).
_PATIENT_DROP = (
    "name",
    "identifier",
    "telecom",
    "address",
    "contact",
    "photo",
    "link",
    "generalPractitioner",
    "managingOrganization",
    "extension",
)
# Patient/<id>, relative or absolute, optionally with a version.
_PATIENT_REF = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://[^?#]*/)?Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$"
)


def _today(as_of: date | None) -> date:
    return as_of if as_of is not None else datetime.now(UTC).date()


def _birth_year(birth_year: int, as_of: date) -> int | None:
    # Year-based, so that a birth year is withheld from the start of the year its holder turns 90:
    # "1936" in 2026 would otherwise say "89 or 90".
    return birth_year if as_of.year - birth_year < _AGE_CAP else None


def deidentify_patient(
    record: PatientRecord, pseudonym_key: bytes, *, as_of: date | None = None
) -> dict[str, Any]:
    """A research view of a patient: pseudonym, birth year and sex, nothing that identifies them.

    Follows HIPAA Safe Harbor, 45 CFR 164.514(b)(2): no name, identifier or id, and only the year
    of birth, withheld (``birth_year`` ``None``, ``age_90_or_older`` true) for ages over 89.

    Parameters
    ----------
    pseudonym_key
        :attr:`Keyring.pseudonym_key`.
    as_of
        The date ages are reckoned at; today (UTC) by default.

    >>> from datetime import date
    >>> rec = PatientRecord("p1", "urn:mrn|42", "Jane Doe", date(1980, 5, 17), "female")
    >>> view = deidentify_patient(rec, bytes(32), as_of=date(2026, 1, 1))
    >>> view["birth_year"], view["age_90_or_older"], view["sex"], "Jane Doe" in str(view)
    (1980, False, 'female', False)
    >>> deidentify_patient(rec, bytes(32), as_of=date(2070, 1, 1))["birth_year"] is None
    True
    """
    if not isinstance(record, PatientRecord):
        raise DataFormatError(
            f"deidentify_patient takes a PatientRecord; got {type(record).__name__}"
        )
    today = _today(as_of)
    year = None if record.birth_date is None else _birth_year(record.birth_date.year, today)
    return {
        "pseudonym": pseudonym(pseudonym_key, record.id),
        "birth_year": year,
        "age_90_or_older": None if record.birth_date is None else year is None,
        "sex": record.sex,
    }


def deidentify_fhir(
    resource: dict[str, Any], pseudonym_key: bytes, *, as_of: date | None = None
) -> dict[str, Any]:
    """A de-identified copy of a FHIR resource (a Bundle's entries and contained resources too).

    - Patient: ``id`` becomes the pseudonym; name, identifier, telecom, address, contact, photo,
      link, generalPractitioner, managingOrganization and extensions are removed; ``birthDate``
      keeps its year only, and none for ages over 89 (45 CFR 164.514(b)(2)(i)(C));
      ``deceasedDateTime`` becomes ``deceasedBoolean``.
    - Every resource: a reference to ``Patient/<id>`` (``subject``, ``patient``, any Reference)
      becomes ``Patient/<pseudonym>`` and loses its ``display`` and ``identifier``; the ``text``
      narrative is dropped.

    Other dates (``effectiveDateTime``, ``issued``) are kept: research on time series needs them,
    so the result is a pseudonymised data set, not a Safe Harbor one.

    >>> obs = {"resourceType": "Observation", "status": "final",
    ...        "text": {"status": "generated", "div": "<div>Jane Doe: 112 mg/dL</div>"},
    ...        "subject": {"reference": "Patient/p1", "display": "Jane Doe"}}
    >>> out = deidentify_fhir(obs, bytes(32))
    >>> out["subject"] == {"reference": "Patient/" + pseudonym(bytes(32), "p1")}, "text" in out
    (True, False)
    """
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise DataFormatError("deidentify_fhir takes a FHIR resource: a dict with a resourceType")
    out = copy.deepcopy(resource)
    _walk(out, pseudonym_key, _today(as_of))
    return out


def _walk(node: Any, key: bytes, today: date) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, key, today)
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("resourceType"), str):
        node.pop("text", None)
        if node["resourceType"] == "Patient":
            _patient(node, key, today)
    if isinstance(node.get("reference"), str):
        _reference(node, key)
    elif node.get("type") == "Patient" and "identifier" in node:
        # A logical reference to a patient by identifier (an MRN).
        node.pop("identifier")
        node.pop("display", None)
    if isinstance(node.get("fullUrl"), str):
        node["fullUrl"] = _pseudonymise_ref(node["fullUrl"], key) or node["fullUrl"]
    for value in node.values():
        _walk(value, key, today)


def _patient(node: dict[str, Any], key: bytes, today: date) -> None:
    for name in _PATIENT_DROP:
        node.pop(name, None)
    if isinstance(node.get("id"), str):
        node["id"] = pseudonym(key, node["id"])
    birth = node.pop("birthDate", None)
    if isinstance(birth, str) and re.match(r"\d{4}", birth):
        year = _birth_year(int(birth[:4]), today)
        if year is not None:
            node["birthDate"] = f"{year:04d}"
    if "deceasedDateTime" in node:
        node.pop("deceasedDateTime")
        node["deceasedBoolean"] = True


def _reference(ref: dict[str, Any], key: bytes) -> None:
    new = _pseudonymise_ref(ref["reference"], key)
    if new is not None:
        ref["reference"] = new
        ref.pop("display", None)
        ref.pop("identifier", None)


def _pseudonymise_ref(text: str, key: bytes) -> str | None:
    m = _PATIENT_REF.match(text)
    return None if m is None else f"Patient/{pseudonym(key, m.group(1))}"
