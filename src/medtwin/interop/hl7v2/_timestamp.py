"""HL7 v2 time stamps (data types TS and DTM, HL7 v2.5.1 chapter 2A).

A DTM is ``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``; a TS is a DTM in its first component
(the second, "degree of precision", is deprecated and ignored).  A value without ``+/-ZZZZ`` is
local time of the sender (chapter 2A, DTM): medtwin reads it in the zone the caller names, UTC
unless told otherwise.  python-hl7's own ``parse_datetime`` is not used: it accepts trailing
garbage and gets ``-0030`` offsets wrong.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

__all__ = ["format_ts", "parse_ts"]

_DTM = re.compile(
    r"(?P<Y>\d{4})(?:(?P<m>\d{2})(?:(?P<d>\d{2})(?:(?P<H>\d{2})(?:(?P<M>\d{2})"
    r"(?:(?P<S>\d{2})(?:\.(?P<f>\d{1,4}))?)?)?)?)?)?"
    r"(?:(?P<sign>[+-])(?P<zh>\d{2})(?P<zm>\d{2}))?"
)
_PRECISION = {"year": "Y", "month": "m", "day": "d", "hour": "H", "minute": "M", "second": "S"}


def parse_ts(text: str, *, tz: tzinfo = UTC, precision: str = "minute") -> datetime:
    """An HL7 TS/DTM value as a timezone-aware UTC datetime.

    ``tz`` is the zone of a value written without an offset; ``precision`` the coarsest value
    accepted (``"minute"``: at least ``YYYYMMDDHHMM``).

    Raises
    ------
    ValueError
        The text is not a DTM, names an impossible date or time, or is coarser than ``precision``.

    Examples
    --------
    >>> parse_ts("20260105143000+0100").isoformat()
    '2026-01-05T13:30:00+00:00'
    >>> parse_ts("202601051430").isoformat()
    '2026-01-05T14:30:00+00:00'
    """
    value = text.strip()
    match = _DTM.fullmatch(value)
    if match is None:
        raise ValueError(
            f"{value!r} is not an HL7 time stamp; expected YYYYMMDDHHMM[SS[.SSSS]][+/-ZZZZ]"
        )
    if match.group(_PRECISION[precision]) is None:
        raise ValueError(f"{value!r} is not precise enough; expected at least to the {precision}")
    g = match.groupdict()
    fraction = g["f"] or ""
    try:
        zone: tzinfo = tz
        if g["sign"] is not None:
            hours, minutes = int(g["zh"]), int(g["zm"])
            if hours > 14 or minutes > 59:
                raise ValueError(f"time zone offset {g['sign']}{g['zh']}{g['zm']} is out of range")
            offset = timedelta(hours=hours, minutes=minutes)
            zone = timezone(-offset if g["sign"] == "-" else offset)
        local = datetime(
            int(g["Y"]),
            int(g["m"] or 1),
            int(g["d"] or 1),
            int(g["H"] or 0),
            int(g["M"] or 0),
            int(g["S"] or 0),
            int(fraction.ljust(6, "0")) if fraction else 0,
        )
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date and time: {exc}") from None
    # fold=0: in the hour a daylight-saving change repeats, a local time reads as its first occurrence
    return local.replace(tzinfo=zone).astimezone(UTC)


def format_ts(when: datetime, *, tz: tzinfo = UTC) -> str:
    """``when`` (timezone-aware) as an HL7 DTM in ``tz`` with its offset, to the second.

    Fractions of a second are written to the 100 microseconds HL7 allows (``.SSSS``) when present.

    Examples
    --------
    >>> format_ts(datetime(2026, 1, 5, 13, 30, tzinfo=UTC))
    '20260105133000+0000'
    """
    if when.tzinfo is None:
        raise ValueError(f"{when!r} has no time zone; HL7 times are written with their offset")
    local = when.astimezone(tz)
    offset = local.utcoffset() or timedelta(0)
    total = int(offset.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    total = abs(total)
    fraction = f".{local.microsecond // 100:04d}" if local.microsecond else ""
    return f"{local:%Y%m%d%H%M%S}{fraction}{sign}{total // 60:02d}{total % 60:02d}"
