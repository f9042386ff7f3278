"""The hospital twin: ADT in (HL7 v2, FHIR Encounters), live census, forecasts, what-if scenarios.

Who may do what (:func:`medtwin.security.authorize`, every decision audited):

- ADT in (``POST /api/hospital/adt``, ``/encounters``): create ``Encounter``, the hospital's
  feed (role ``interface``) and admins only;
- the census with patients and beds (``GET /api/hospital/census?patients=true``): read
  ``Encounter``, identifiable: clinicians and admins;
- aggregated counts, history, forecasts, scenarios and the spec: read ``Location``
  de-identified, which researchers may too;
- devices: nothing.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

import numpy as np
import pandas as pd
from fastapi import APIRouter, Body, Query, Request
from starlette.concurrency import run_in_threadpool

from medtwin.api._auth import CurrentAccess
from medtwin.api._hospital import AdtOutcome, HospitalHost
from medtwin.api.schemas import (
    AdtIngestOut,
    AdtMessageOut,
    BandOut,
    CensusHistoryOut,
    CensusOut,
    HospitalForecastOut,
    HospitalSpecOut,
    HospitalUnitOut,
    ScenarioCompareIn,
    ScenarioCompareOut,
    ScenarioRowOut,
    UnitForecastOut,
)
from medtwin.errors import ConfigurationError, DataFormatError
from medtwin.hospital import ADTEvent
from medtwin.interop.hl7v2 import (
    build_ack,
    events_from_encounter,
    parse_ack,
    parse_adt_message,
    split_messages,
)

router = APIRouter(prefix="/api/hospital", tags=["hospital"])

MAX_BODY_BYTES = 16 * 1024 * 1024
"""The largest ADT batch accepted in one request."""
MAX_MESSAGES = 10_000
"""The most messages (or Encounters) in one request."""
MAX_HISTORY_POINTS = 5_000
"""The most time points a census history returns."""
HL7_TYPES = ("text/plain", "application/hl7-v2", "x-application/hl7-v2+er7", "application/edi-hl7")
_FREQ = re.compile(r"^\d{0,4}(min|h|D)$")
_HL7_BODY = {
    "required": True,
    "content": {
        t: {"schema": {"type": "string", "description": "HL7 v2 ADT messages"}} for t in HL7_TYPES
    },
}


def _host(access: CurrentAccess) -> HospitalHost:
    return access.service.hospital_host()


def _aggregate(access: CurrentAccess, action: str) -> HospitalHost:
    access.require("r", "Location", deidentified=True, action=action)
    return _host(access)


def _messages(outcomes: list[AdtOutcome], acks: list[str | None], version: int) -> AdtIngestOut:
    messages = [
        AdtMessageOut(
            index=i + 1,
            message_id=o.event.message_id,
            event_type=o.event.event_type,
            status=o.change.status,
            stored=o.stored,
            ack_message=ack,
        )
        for i, (o, ack) in enumerate(zip(outcomes, acks, strict=True))
    ]
    stored = sum(o.stored for o in outcomes)
    return AdtIngestOut(
        accepted=stored,
        duplicates=len(outcomes) - stored,
        census_version=version,
        messages=messages,
    )


# -- ADT in --------------------------------------------------------------------------------------


def _parse_batch(body: bytes, tz: str) -> tuple[list[ADTEvent], list[str]]:
    """Every message of the body, or a DataFormatError naming each bad one (with AE/AR ACKs)."""
    chunks = list(split_messages(body, source="body"))
    if not chunks:
        raise DataFormatError("the body holds no HL7 v2 message (each begins with an MSH segment)")
    if len(chunks) > MAX_MESSAGES:
        raise DataFormatError(
            f"{len(chunks)} messages in one request; send at most {MAX_MESSAGES} per batch"
        )
    events: list[ADTEvent] = []
    problems: list[tuple[int, str, str | None]] = []
    for index, line, chunk in chunks:
        try:
            events.append(parse_adt_message(chunk, tz=tz))
        except DataFormatError as exc:
            ack = build_ack(chunk, "AE", text=str(exc)[:200])
            problems.append((index, f"message {index} (line {line}): {exc}", _answered(ack)))
    if problems:
        bad = {i for i, _, _ in problems}
        error = DataFormatError(
            f"{len(problems)} of {len(chunks)} messages cannot be read, so nothing of this batch "
            "was stored: "
            + "; ".join(text for _, text, _ in problems[:5])
            + ("; ..." if len(problems) > 5 else "")
        )
        acks: list[dict[str, Any]] = []
        reasons = {i: text for i, text, _ in problems}
        ids = {i: mid for i, _, mid in problems}
        for index, _line, chunk in chunks:
            if index in bad:
                acks.append({"index": index, "message_id": ids[index], "ack": "AE",
                             "reason": reasons[index]})  # fmt: skip
            else:
                acks.append({"index": index, "message_id": _answered(build_ack(chunk, "AR")),
                             "ack": "AR", "reason": "not stored: another message of the batch "
                             "cannot be read; resend the batch once it is corrected"})  # fmt: skip
        error.acks = acks  # type: ignore[attr-defined]
        raise error
    return events, [chunk for _, _, chunk in chunks]


def _answered(ack: str) -> str | None:
    """The message id an ACK answers (MSA-2), if the message had one."""
    try:
        return parse_ack(ack).message_id or None
    except DataFormatError:
        return None


@router.post("/adt", response_model=AdtIngestOut, openapi_extra={"requestBody": _HL7_BODY})
async def post_adt(
    request: Request,
    access: CurrentAccess,
    tz: Annotated[str | None, Query(max_length=64)] = None,
) -> AdtIngestOut:
    """Store HL7 v2 ADT messages (A01-A04, A08, A11-A13) whole or not at all; ACK each.

    The body is one message or many (separated by blank lines or MSH segments, or MLLP
    framed), as ``text/plain`` or ``application/hl7-v2``.  Times without a UTC offset are read
    in ``tz`` (default: MSH-7's offset, else the hospital's time zone).  A malformed message
    rejects the batch (400 naming the message, its MSH-10 and the field; ``acks`` says AE or AR
    per message); a message id stored before with other content is a 409.  A resubmitted batch
    changes nothing (``duplicates``).
    """
    await run_in_threadpool(access.require, "c", "Encounter", action="ingest ADT (HL7 v2)")
    host = _host(access)
    kind = request.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
    if kind not in HL7_TYPES:
        raise DataFormatError(
            f"content type {kind!r}: send HL7 v2 messages as one of {', '.join(HL7_TYPES)}"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise DataFormatError(f"the body is over {MAX_BODY_BYTES} bytes; send smaller batches")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_BODY_BYTES:
            raise DataFormatError(f"the body is over {MAX_BODY_BYTES} bytes; send smaller batches")
    zone = tz or host.spec.timezone
    events, chunks = await run_in_threadpool(_parse_batch, bytes(body), zone)
    outcomes = await run_in_threadpool(access.service.ingest_adt, events, source="hl7v2")
    return _messages(outcomes, [build_ack(c, "AA") for c in chunks], host.version)


@router.post("/encounters", response_model=AdtIngestOut)
def post_encounters(
    access: CurrentAccess,
    resource: Annotated[
        dict[str, Any], Body(description="a FHIR R4 Encounter, or a Bundle of them")
    ],
) -> AdtIngestOut:
    """Store the ADT events of FHIR R4 Encounters (one, or a Bundle), whole or not at all.

    Each Encounter version is read as the admissions, transfers and discharge it records
    (``medtwin.interop.hl7v2.events_from_encounter``); a later version repeating the history
    is recognised as such.  An invalid Encounter is a 422 with an OperationOutcome naming the
    element.
    """
    access.require("c", "Encounter", action="ingest ADT (FHIR)")
    host = _host(access)
    if resource.get("resourceType") == "Bundle":
        entries = resource.get("entry") or []
        if not isinstance(entries, list) or len(entries) > MAX_MESSAGES:
            raise DataFormatError(f"Bundle.entry: a list of at most {MAX_MESSAGES} entries")
        encounters = []
        for i, entry in enumerate(entries):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict) or res.get("resourceType") != "Encounter":
                raise DataFormatError(
                    f"Bundle.entry[{i}].resource: expected an Encounter; nothing was stored"
                )
            encounters.append(res)
    else:
        encounters = [resource]
    events = [e for enc in encounters for e in events_from_encounter(enc)]
    outcomes = access.service.ingest_adt(events, source="fhir")
    return _messages(outcomes, [None] * len(outcomes), host.version)


# -- the census ----------------------------------------------------------------------------------


@router.get("/census", response_model=CensusOut, response_model_exclude_none=False)
def census(
    access: CurrentAccess,
    patients: Annotated[
        bool, Query(description="also list who is in which bed (clinicians and admins)")
    ] = False,
) -> CensusOut:
    """Patients per unit now against beds (ED: cubicles), boarders, data issues by kind.

    With ``patients=true`` also each patient's unit, bed, visit and patient numbers, since when,
    class and acuity, and the issues in detail: identifiable, so clinicians and admins only.
    """
    if patients:
        access.require("r", "Encounter", action="read census with patients")
        host = _host(access)
    else:
        host = _aggregate(access, "read census")
    return CensusOut.model_validate(host.census_view(with_patients=patients))


@router.get("/census/history", response_model=CensusHistoryOut)
def census_history(
    access: CurrentAccess,
    freq: Annotated[str, Query(max_length=8, description="grid step: 15min, 1h, 1D, ...")] = "1h",
    start: datetime | None = None,
    end: datetime | None = None,
) -> CensusHistoryOut:
    """Patients per unit at each step of a regular grid (default: the last 7 days, hourly).

    Counted from every event known now: a cancelled admission never happened, a late event
    counts from when it occurred.
    """
    host = _aggregate(access, "read census history")
    if not _FREQ.match(freq):
        raise DataFormatError(f"freq {freq!r}: expected a step such as 15min, 1h or 1D")
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))  # type: ignore[arg-type]
    if step <= pd.Timedelta(0):
        raise DataFormatError(f"freq {freq!r} must be a positive step")
    for name, t in (("start", start), ("end", end)):
        if t is not None and t.tzinfo is None:
            raise DataFormatError(f"{name}: give a time zone (2026-01-05T08:00:00Z)")
    stop = end or host.now or datetime.now(UTC)
    begin = start or (stop - timedelta(days=7))
    if begin >= stop:
        raise DataFormatError(
            f"start ({begin.isoformat()}) must be before end ({stop.isoformat()})"
        )
    points = (stop - begin) / step.to_pytimedelta()
    if points > MAX_HISTORY_POINTS:
        raise DataFormatError(
            f"{points:.0f} time points from {begin.isoformat()} to {stop.isoformat()} at {freq}: "
            f"at most {MAX_HISTORY_POINTS}; take a coarser freq or a shorter window"
        )
    first = pd.Timestamp(begin).tz_convert(UTC).floor(step)
    frame = host.history(freq, first.to_pydatetime(), stop)
    if frame.empty:
        return CensusHistoryOut(freq=freq, times=[], units={})
    return CensusHistoryOut(
        freq=freq,
        times=[t.to_pydatetime() for t in frame.index],
        units={str(c): [int(v) for v in frame[c]] for c in frame.columns},
    )


# -- looking ahead -------------------------------------------------------------------------------


def _bands(x: np.ndarray) -> BandOut:
    def row(values: np.ndarray) -> list[float | None]:
        return [round(float(v), 3) if math.isfinite(v) else None for v in values]

    with np.errstate(all="ignore"):
        finite = np.isfinite(x).all(axis=0)
        q = np.quantile(np.where(np.isfinite(x), x, 0.0), [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        q[:, ~finite] = np.nan
        mean = np.where(finite, x.mean(axis=0), np.nan)
    return BandOut(
        median=row(q[2]),
        lower_50=row(q[1]),
        upper_50=row(q[3]),
        lower_90=row(q[0]),
        upper_90=row(q[4]),
        mean=row(mean),
    )


@router.get("/forecast", response_model=HospitalForecastOut)
def hospital_forecast(
    access: CurrentAccess,
    horizon_hours: Annotated[int, Query(ge=1, le=168)] = 72,
    replications: Annotated[int, Query(ge=2, le=500)] = 40,
    seed: Annotated[int, Query(ge=0, le=2**32 - 1)] = 0,
    max_age_s: Annotated[
        float, Query(ge=0, le=86_400, description="reuse a forecast of an older census this young")
    ] = 300.0,
) -> HospitalForecastOut:
    """Hourly occupancy bands per ward and ED crowding, from the live census to the horizon.

    Each replication starts from the census (patients in beds stay for the rest of a length of
    stay conditional on the time already spent) with fresh arrivals; the bands are quantiles
    across replications (median, 50% and 90% central intervals), ``p_full`` the share of
    replications with every bed taken.  Cached per census version; a forecast of an older
    census younger than ``max_age_s`` is reused (``stale``: true).  At most 14,400
    replication-hours per forecast.
    """
    host = _aggregate(access, "hospital forecast")
    cached, stale = host.forecast(
        horizon_hours, replications=replications, seed=seed, max_age_s=max_age_s
    )
    fc = cached.forecast
    full = fc.probability_full()
    units = [
        UnitForecastOut(
            unit=u,
            beds=beds,
            occupied=_bands(fc.samples[f"occupied:{u}"]),
            p_full=[round(float(p), 3) for p in full[u]],
        )
        for u, beds in fc.beds.items()
    ]
    ed: dict[str, BandOut] = {
        n: _bands(fc.samples[n])
        for n in ("ed", "waiting", "boarding", "arrivals")
        if n in fc.samples
    }
    return HospitalForecastOut(
        hospital=host.spec.name,
        census_at=cached.census_at,
        census_version=cached.version,
        current_version=host.version,
        stale=stale,
        computed_at=cached.computed_at,
        elapsed_s=round(cached.elapsed_s, 2),
        horizon_hours=fc.horizon_hours,
        replications=fc.replications,
        seed=seed,
        times=[t.to_pydatetime() for t in fc.times],
        units=units,
        ed=ed,
    )


def _default_kpis(host: HospitalHost, known: list[str]) -> list[str]:
    spec = host.spec
    units = list(spec.units)
    wanted = ["occupancy", *(f"occupancy:{u}" for u in units)]
    if spec.ed is not None:
        wanted += ["ed_los_h", f"within_{spec.ed.target_h:g}h", "door_to_provider_min",
                   "boarding", "boarding_h", "lwbs_rate"]  # fmt: skip
    wanted += ["admissions_per_day", "discharges_per_day", *(f"bed_queue:{u}" for u in units),
               "elective_cancellation_rate"]  # fmt: skip
    return [k for k in wanted if k in known]


def _number(v: Any) -> float | None:
    x = float(v)
    return round(x, 4) if math.isfinite(x) else None


@router.post("/scenarios", response_model=ScenarioCompareOut)
def scenarios(body: ScenarioCompareIn, access: CurrentAccess) -> ScenarioCompareOut:
    """What-if: scenarios against the unchanged hospital on common random numbers.

    Each scenario is a ``medtwin.hospital.Scenario`` as JSON: ``extra_beds`` (unit -> +/-
    beds), ``beds``, ``extra_staff``, ``roster``, ``surge`` (``{"multiplier": 1.2}``),
    ``los_multiplier``, ``discharge_lounge``, ``discharge_shift_h``, ``discharge_profile``.
    The answer has, per KPI, each scenario's mean with its 95% confidence interval and its
    paired difference from the baseline with that difference's interval (``significant``: it
    excludes 0).  At most 1,500 simulated hospital-days per request.
    """
    host = _aggregate(access, "hospital scenarios")
    result, meta = host.compare(
        body.scenarios,
        replications=body.replications,
        days=body.days,
        from_census=body.from_census,
        warmup_days=body.warmup_days,
        seed=body.seed,
    )
    known = list(result.kpis.columns)
    if body.kpis is not None:
        unknown = [k for k in body.kpis if k not in known]
        if unknown:
            raise ConfigurationError(
                f"kpis: unknown {', '.join(map(repr, unknown[:5]))}; known: {', '.join(known)}"
            )
    names = body.kpis if body.kpis is not None else _default_kpis(host, known)
    table = cast("dict[tuple[str, str], dict[str, Any]]", result.table(names).to_dict("index"))
    rows = []
    for (kpi, scenario), r in table.items():
        sig = r.get("significant")
        rows.append(
            ScenarioRowOut(
                kpi=str(kpi),
                scenario=str(scenario),
                mean=_number(r["mean"]),
                ci_low=_number(r["ci_low"]),
                ci_high=_number(r["ci_high"]),
                difference=_number(r.get("difference", math.nan)),
                diff_low=_number(r.get("diff_low", math.nan)),
                diff_high=_number(r.get("diff_high", math.nan)),
                significant=None if scenario == "baseline" or sig is None else bool(sig),
            )
        )
    return ScenarioCompareOut(
        hospital=host.spec.name,
        scenarios=list(result.scenarios),
        replications=body.replications,
        days=result.days,
        warmup_days=result.warmup_days,
        from_census=body.from_census,
        census_at=meta["census_at"],
        seed=body.seed,
        simulated_days=meta["simulated_days"],
        elapsed_s=meta["elapsed_s"],
        rows=rows,
    )


@router.get("/spec", response_model=HospitalSpecOut)
def hospital_spec(access: CurrentAccess) -> HospitalSpecOut:
    """The hospital the twin models: units with beds and aliases, the ED, the whole spec."""
    host = _aggregate(access, "read hospital spec")
    spec = host.spec
    ed = None
    if spec.ed is not None:
        ed = {
            "name": spec.ed.name,
            "aliases": list(spec.ed.aliases),
            "target_h": spec.ed.target_h,
            "spaces": host.ed_spaces(),
            "classes": list(spec.ed.classes),
            "resources": list(spec.ed.resources),
        }
    return HospitalSpecOut(
        name=spec.name,
        description=spec.description,
        timezone=spec.timezone,
        ed=ed,
        units=[
            HospitalUnitOut(name=n, beds=u.beds, aliases=list(u.aliases), description=u.description)
            for n, u in spec.units.items()
        ],
        spec=spec.model_dump(mode="json", exclude_none=True),
    )
