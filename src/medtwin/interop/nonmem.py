r"""NONMEM-style data sets: read, validate whole, and hand over doses, observations, covariates.

A data set is a CSV with one row per event and the columns NONMEM users write: ``ID``, ``TIME`` (h),
``AMT`` (mg), ``RATE`` (mg/h; 0 for a bolus), ``II`` (h), ``ADDL``, ``SS`` (0, 1 or 2), ``EVID``
(0 observation, 1 dose, 2 other, 3 reset, 4 reset and dose), ``CMT`` (the model's 1-based
compartment), ``DV`` (the observation, mg/L), ``MDV`` (1 when the row carries no observation), and
any number of numeric covariate columns (``WT``, ``AGE``, ``CRCL``...).  Column names are
case-insensitive; ``.`` or an empty cell means missing, as in NONMEM.  ``ID``, ``TIME`` and ``DV``
are required; ``AMT``/``CMT`` when there are doses; ``EVID`` is derived from ``AMT``/``MDV`` when
absent.

The whole file is rejected (:class:`~medtwin.errors.DataFormatError`) at the first bad row, naming
its line (1-based, the header is line 1) and the reason: a negative or missing time, records out
of time order within a subject, a subject's rows split by another subject, a dose without a
compartment, an observation value on a dose row (DV other than missing or 0), EVID and MDV that
disagree, a dose with a negative amount, ADDL or SS without an interval, or an unsupported RATE
(-1/-2, modelled rate or duration) or steady-state constant infusion.

The theophylline data of Boeckmann, Sheiner & Beal (NONMEM Users Guide, 1994; R's
``datasets::Theoph``) come in a different layout (``Subject, Wt, Dose`` in mg/kg, ``Time, conc``);
:func:`read_theophylline` converts them: one oral dose of ``Dose * Wt`` mg at time 0 into
compartment 1 (the depot of the oral models), the concentrations as observations, ``WT`` as a
covariate.

>>> import io
>>> data = read_nonmem(io.StringIO(
...     "ID,TIME,AMT,CMT,EVID,DV,MDV,WT\n1,0,100,1,1,.,1,70\n1,1,0,2,0,1.5,0,70\n"))
>>> data.ids, data.subjects[0].observation_time_h.tolist(), data.covariates()["WT"].tolist()
(('1',), [1.0], [70.0])
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from medtwin.errors import DataFormatError, ScheduleError
from medtwin.models.pk.dosing import Dose, DoseTable

__all__ = ["NonmemData", "NonmemSubject", "read_nonmem", "read_theophylline"]

STANDARD_COLUMNS = ("ID", "TIME", "AMT", "RATE", "II", "ADDL", "SS", "EVID", "CMT", "DV", "MDV")
"""The data items with a fixed meaning; every other numeric column is a covariate."""


@dataclass(frozen=True)
class NonmemSubject:
    """One subject's records: doses (NONMEM semantics), observations and covariates.

    ``covariates`` holds each covariate's value on every record of the subject, in file order
    (``record_time_h`` gives the times), for time-varying covariates; :meth:`NonmemData.covariates`
    takes the first (baseline) value.
    """

    id: str
    doses: tuple[Dose, ...]
    observation_time_h: np.ndarray
    dv: np.ndarray
    observation_cmt: np.ndarray
    record_time_h: np.ndarray
    covariates: dict[str, np.ndarray]
    observation_line: np.ndarray


@dataclass(frozen=True)
class NonmemData:
    r"""A validated data set: subjects in file order and padded arrays for batched work.

    >>> import io
    >>> d = read_nonmem(io.StringIO("ID,TIME,AMT,CMT,DV\n1,0,100,1,0\n1,2,0,2,3.1\n"
    ...                             "2,0,50,1,0\n2,1,0,2,2.0\n2,4,0,2,1.0\n"))
    >>> t, dv, mask = d.observations()
    >>> t.tolist(), mask.tolist()
    ([[2.0, 2.0], [1.0, 4.0]], [[True, False], [True, True]])
    """

    subjects: tuple[NonmemSubject, ...]
    covariate_names: tuple[str, ...]
    source: str = "<data>"

    @property
    def ids(self) -> tuple[str, ...]:
        """Subject identifiers in file order."""
        return tuple(s.id for s in self.subjects)

    def __len__(self) -> int:
        return len(self.subjects)

    def doses(self) -> DoseTable:
        """Every subject's doses as one ``(N, D)`` :class:`~medtwin.models.pk.DoseTable`."""
        return DoseTable.from_doses([s.doses for s in self.subjects])

    def observations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(time_h, dv, mask)``, each ``(N, T)``: observations padded by repeating the last time.

        Padded entries have ``mask`` False and ``dv`` NaN; a subject without observations gets
        time 0.
        """
        width = max([1, *(s.observation_time_h.size for s in self.subjects)])
        n = len(self.subjects)
        time = np.zeros((n, width))
        dv = np.full((n, width), np.nan)
        mask = np.zeros((n, width), dtype=bool)
        for i, s in enumerate(self.subjects):
            k = s.observation_time_h.size
            if k:
                time[i, :] = s.observation_time_h[-1]
                time[i, :k] = s.observation_time_h
                dv[i, :k] = s.dv
                mask[i, :k] = True
        return time, dv, mask

    def covariates(self) -> dict[str, np.ndarray]:
        """Baseline (first-record) value of every covariate, one per subject."""
        return {
            name: np.array([s.covariates[name][0] for s in self.subjects])
            for name in self.covariate_names
        }

    def to_pandas(self) -> pd.DataFrame:
        """The observations in long format: ID, TIME, DV, CMT and the baseline covariates."""
        rows = []
        base = self.covariates()
        for i, s in enumerate(self.subjects):
            for t, y, c in zip(s.observation_time_h, s.dv, s.observation_cmt, strict=True):
                rows.append({"ID": s.id, "TIME": t, "DV": y, "CMT": c} |
                            {k: v[i] for k, v in base.items()})  # fmt: skip
        return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def read_nonmem(source: str | Path | IO[str]) -> NonmemData:
    """Read and validate a NONMEM-style CSV (see the module docstring for the rules).

    Raises :class:`~medtwin.errors.DataFormatError` naming the line and the reason, and returns
    nothing partial.
    """
    name, frame = _read_csv(source)
    return _parse(frame, name)


def _read_csv(source: str | Path | IO[str]) -> tuple[str, pd.DataFrame]:
    name = getattr(source, "name", None) or ("<stream>" if hasattr(source, "read") else str(source))
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(f"{name}: cannot read a CSV data set ({exc})") from None
    return str(name), frame


def _parse(frame: pd.DataFrame, name: str) -> NonmemData:
    columns = {c.strip().upper(): c for c in frame.columns}
    if len(columns) != len(frame.columns):
        raise DataFormatError(f"{name}: column names repeat (ignoring case): {list(frame.columns)}")
    for required in ("ID", "TIME", "DV"):
        if required not in columns:
            raise DataFormatError(
                f"{name}: the data set has no {required} column (columns: {list(frame.columns)}); "
                "ID, TIME and DV are required"
            )
    if frame.empty:
        raise DataFormatError(f"{name}: the data set has no rows")
    covariate_names = tuple(c for c in columns if c not in STANDARD_COLUMNS)
    cells = {key: frame[col].astype(str).str.strip().to_numpy() for key, col in columns.items()}
    n_rows = len(frame)

    def number(key: str, row: int, default: float | None = 0.0) -> float:
        if key not in cells:
            if default is None:
                raise DataFormatError(f"{name}: line {row + 2}: {key} is required")
            return default
        text = cells[key][row]
        if text in ("", "."):
            if default is None:
                raise DataFormatError(f"{name}: line {row + 2}: {key} is missing")
            return default
        try:
            value = float(text)
        except ValueError:
            raise DataFormatError(
                f"{name}: line {row + 2}: {key} {text!r} is not a number"
            ) from None
        if not math.isfinite(value):
            raise DataFormatError(f"{name}: line {row + 2}: {key} {text!r} is not finite")
        return value

    def integer(key: str, row: int, allowed: Sequence[int] | None = None) -> int:
        value = number(key, row)
        if value != int(value) or (allowed is not None and int(value) not in allowed):
            expect = f"one of {list(allowed)}" if allowed is not None else "an integer"
            raise DataFormatError(
                f"{name}: line {row + 2}: {key} must be {expect}, got {cells[key][row]!r}"
            )
        return int(value)

    subjects: list[NonmemSubject] = []
    seen: dict[str, int] = {}
    row = 0
    while row < n_rows:
        sid = cells["ID"][row]
        if sid in ("", "."):
            raise DataFormatError(f"{name}: line {row + 2}: ID is missing")
        if sid in seen:
            raise DataFormatError(
                f"{name}: line {row + 2}: ID {sid} appears again after other subjects (first at "
                f"line {seen[sid]}); keep each subject's records together"
            )
        seen[sid] = row + 2
        end = row
        while end < n_rows and cells["ID"][end] == sid:
            end += 1
        subjects.append(
            _subject(sid, range(row, end), number, integer, cells, covariate_names, name)
        )
        row = end
    return NonmemData(tuple(subjects), covariate_names, name)


def _subject(
    sid: str,
    rows: range,
    number: Any,
    integer: Any,
    cells: dict[str, np.ndarray],
    covariate_names: tuple[str, ...],
    name: str,
) -> NonmemSubject:
    doses: list[Dose] = []
    obs_t: list[float] = []
    obs_y: list[float] = []
    obs_c: list[int] = []
    obs_line: list[int] = []
    rec_t: list[float] = []
    covs: dict[str, list[float]] = {c: [] for c in covariate_names}
    previous = -math.inf
    for row in rows:
        line = row + 2

        def fail(reason: str, line: int = line) -> DataFormatError:
            return DataFormatError(f"{name}: line {line} (ID {sid}): {reason}")

        time = number("TIME", row, default=None)
        if time < 0:
            raise fail(f"TIME {time:g} is negative; times are hours >= 0")
        if time < previous:
            raise fail(
                f"TIME {time:g} comes before the previous record's {previous:g}; sort each "
                "subject's records by time"
            )
        previous = time
        amt = number("AMT", row)
        dv_text = cells["DV"][row]
        dv_missing = dv_text in ("", ".")
        mdv = (
            integer("MDV", row, (0, 1))
            if "MDV" in cells and cells["MDV"][row] not in ("", ".")
            else None
        )
        if "EVID" in cells and cells["EVID"][row] not in ("", "."):
            evid = integer("EVID", row, (0, 1, 2, 3, 4))
        else:
            evid = 1 if amt > 0 else (2 if mdv == 1 else 0)
        rate = number("RATE", row)
        ii = number("II", row)
        addl = integer("ADDL", row)
        ss = integer("SS", row, (0, 1, 2))
        cmt_text = cells["CMT"][row] if "CMT" in cells else ""
        for c in covariate_names:
            covs[c].append(number(c, row, default=math.nan))
        rec_t.append(time)
        if evid in (1, 2, 3, 4) and mdv == 0:
            raise fail(f"EVID={evid} with MDV=0: only an observation row (EVID=0) has MDV=0")
        if evid in (1, 4):
            if not dv_missing and number("DV", row) != 0:
                raise fail(
                    f"DV={dv_text} on a dose row (EVID={evid}); put the observation on its own "
                    "row with EVID=0 and leave DV missing (.) on dose rows"
                )
            if cmt_text in ("", ".", "0"):
                raise fail(f"dose (EVID={evid}, AMT={amt:g}) without a compartment: give CMT >= 1")
            cmt = integer("CMT", row)
            if cmt < 1:
                raise fail(f"CMT {cmt} must be >= 1 (the model's compartment number)")
            if amt < 0:
                raise fail(f"AMT {amt:g} is negative")
            if rate in (-1.0, -2.0):
                raise fail(f"RATE={rate:g} (modelled rate or duration) is not supported")
            if rate < 0:
                raise fail(f"RATE {rate:g} is negative")
            if amt == 0 and ss and rate > 0:
                raise fail("steady-state constant infusion (AMT=0, RATE>0, SS) is not supported")
            if amt == 0:
                raise fail(f"a dose row (EVID={evid}) needs AMT > 0")
            if (addl > 0 or ss) and not ii > 0:
                raise fail(f"ADDL={addl} / SS={ss} need an interval II > 0, got II={ii:g}")
            try:
                doses.append(Dose(time, amt, cmt, amt / rate if rate > 0 else 0.0, ii, addl, ss,
                                  reset=evid == 4))  # fmt: skip
            except ScheduleError as exc:
                raise fail(str(exc)) from None
        elif evid == 3:
            if amt != 0:
                raise fail(f"a reset row (EVID=3) carries no dose, got AMT={amt:g}")
            doses.append(Dose(time, 0.0, 1, reset=True))
        elif evid == 0:
            if amt != 0:
                raise fail(
                    f"AMT={amt:g} on an observation row (EVID=0); a dose row has EVID=1 and MDV=1"
                )
            if mdv == 1:
                continue  # an observation excluded from the data (missing DV)
            if dv_missing:
                raise fail("an observation row (EVID=0, MDV=0) has no DV; set MDV=1 or give DV")
            dv = number("DV", row)
            cmt = integer("CMT", row) if cmt_text not in ("", ".") else 0
            obs_t.append(time)
            obs_y.append(dv)
            obs_c.append(cmt)
            obs_line.append(line)
    return NonmemSubject(
        id=sid,
        doses=tuple(doses),
        observation_time_h=np.asarray(obs_t, dtype=float),
        dv=np.asarray(obs_y, dtype=float),
        observation_cmt=np.asarray(obs_c, dtype=np.int64),
        record_time_h=np.asarray(rec_t, dtype=float),
        covariates={c: np.asarray(v, dtype=float) for c, v in covs.items()},
        observation_line=np.asarray(obs_line, dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------------
# Theophylline
# ---------------------------------------------------------------------------------------------


def read_theophylline(source: str | Path | IO[str], *, cmt: int = 1) -> NonmemData:
    """Read R's ``Theoph`` layout (Subject, Wt kg, Dose mg/kg, Time h, conc mg/L) as NONMEM data.

    Each subject gets one oral dose of ``Dose * Wt`` mg at time 0 into compartment ``cmt`` (the
    depot of the oral models) and every concentration as an observation of compartment
    ``cmt + 1``; ``WT`` (kg) and ``DOSE_MG_PER_KG`` are covariates.  The three non-zero
    concentrations at time 0 (subjects 1, 7, 10) are kept, as published fits keep them.
    """
    name, frame = _read_csv(source)
    expected = ("Subject", "Wt", "Dose", "Time", "conc")
    if tuple(frame.columns) != expected:
        raise DataFormatError(
            f"{name}: expected the Theoph columns {list(expected)}, got {list(frame.columns)}"
        )
    lines = ["ID,TIME,AMT,CMT,EVID,MDV,DV,WT,DOSE_MG_PER_KG"]
    try:
        numeric = frame.astype({"Wt": float, "Dose": float, "Time": float, "conc": float})
    except ValueError as exc:
        raise DataFormatError(f"{name}: a Theoph value is not a number ({exc})") from None
    for sid, rows in numeric.groupby("Subject", sort=False):
        wt, dose = float(rows["Wt"].iloc[0]), float(rows["Dose"].iloc[0])
        lines.append(f"{sid},0,{dose * wt!r},{cmt},1,1,.,{wt!r},{dose!r}")
        for t, c in zip(rows["Time"], rows["conc"], strict=True):
            lines.append(f"{sid},{t!r},0,{cmt + 1},0,0,{c!r},{wt!r},{dose!r}")
    return read_nonmem(io.StringIO("\n".join(lines) + "\n"))
