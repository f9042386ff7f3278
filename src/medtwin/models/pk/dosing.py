"""Dosing records: single records as NONMEM writes them, padded tables for a batch, regimens.

- :class:`Dose` is one dosing record with NONMEM's meaning: ``time_h`` (TIME), ``amount_mg``
  (AMT), ``cmt`` (CMT, the model's 1-based compartment), ``duration_h`` (AMT/RATE; 0 for a
  bolus), ``ii_h`` and ``addl`` (II, ADDL: ``addl`` more doses every ``ii_h``), ``ss`` (SS: 1 resets
  the system to the steady state of this dose given every ``ii_h`` since forever, 2 adds that
  steady state to what is there) and ``reset`` (EVID 3/4: empty the system first).
- :class:`DoseTable` holds the records of N subjects expanded (ADDL written out) and padded to D
  doses each (amount 0 pads), as arrays of shape ``(N, D)`` or ``(D,)`` for a table shared by the
  batch.  It is a JAX pytree, so it can be an argument of a jitted or vmapped function.
  ``until_h`` is when each dose stops acting: the time of the next reset in record order
  (infinite when none), so a reset (EVID 3/4, SS=1) cancels every dose recorded before it,
  pending additional doses and infusions included.
- :class:`Regimen` is the Python way to write a regimen, with explicit units
  (``Regimen.oral(500, every_h=12, doses=14)``); ``to_doses(model)`` turns it into a
  :class:`DoseTable` for a model's compartments.

>>> from medtwin.models.pk import OneCompartmentOral
>>> table = Regimen.oral(500, every_h=12, doses=3).to_doses(OneCompartmentOral)
>>> table.time_h.tolist(), table.amount_mg.tolist(), table.cmt.tolist()
([0.0, 12.0, 24.0], [500.0, 500.0, 500.0], [1, 1, 1])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import numpy as np

from medtwin.errors import ScheduleError
from medtwin.models._base import AbstractModel

__all__ = ["Administration", "Dose", "DoseTable", "Regimen"]

Route = Literal["oral", "iv"]


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ScheduleError(f"{where}: {name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ScheduleError(f"{where}: {name} must be finite, got {value!r}")
    return v


def _count(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ScheduleError(f"{where}: {name} must be an integer >= 0, got {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class Dose:
    """One dosing record (NONMEM semantics; see the module docstring).

    >>> Dose(0.0, 100.0, cmt=1, ii_h=24.0, addl=6).expand()[-1].time_h
    144.0
    """

    time_h: float
    amount_mg: float
    cmt: int
    duration_h: float = 0.0
    ii_h: float = 0.0
    addl: int = 0
    ss: int = 0
    reset: bool = False

    def __post_init__(self) -> None:
        where = f"dose at t={self.time_h!r} h"
        time = _number(self.time_h, "time_h", where)
        if time < 0:
            raise ScheduleError(f"{where}: time_h must be >= 0, got {time}")
        if _number(self.amount_mg, "amount_mg", where) < 0:
            raise ScheduleError(f"{where}: amount_mg must be >= 0, got {self.amount_mg}")
        if _number(self.duration_h, "duration_h", where) < 0:
            raise ScheduleError(f"{where}: duration_h must be >= 0, got {self.duration_h}")
        ii = _number(self.ii_h, "ii_h", where)
        if (
            isinstance(self.cmt, bool)
            or not isinstance(self.cmt, (int, np.integer))
            or self.cmt < 1
        ):
            raise ScheduleError(
                f"{where}: cmt must be the model's compartment number (>= 1), got {self.cmt!r}"
            )
        addl = _count(self.addl, "addl", where)
        if self.ss not in (0, 1, 2):
            raise ScheduleError(f"{where}: ss must be 0, 1 or 2, got {self.ss!r}")
        if (addl > 0 or self.ss) and not ii > 0:
            raise ScheduleError(
                f"{where}: additional or steady-state doses need an interval ii_h > 0, got {ii}"
            )
        if ii < 0:
            raise ScheduleError(f"{where}: ii_h must be >= 0, got {ii}")

    def expand(self) -> tuple[Dose, ...]:
        """The record and its ``addl`` additional doses, each a plain record."""
        first = dataclasses.replace(self, addl=0)
        rest = tuple(
            Dose(self.time_h + k * self.ii_h, self.amount_mg, self.cmt, self.duration_h)
            for k in range(1, self.addl + 1)
        )
        return (first, *rest)


_FIELDS = ("time_h", "amount_mg", "duration_h", "cmt", "ss", "ii_h", "reset", "until_h")


@dataclass(frozen=True, slots=True)
class DoseTable:
    """Expanded, padded dose records of a batch: arrays of shape ``(N, D)`` or ``(D,)``.

    Build one with :meth:`from_doses` (records per subject), :meth:`Regimen.to_doses` or
    :func:`medtwin.interop.nonmem.read_nonmem`; the fields are those of :class:`Dose` after
    ``addl`` expansion, plus ``until_h`` (module docstring).  Padding doses have amount 0.

    >>> t = DoseTable.from_doses([[Dose(0, 100, 1)], [Dose(0, 50, 1), Dose(12, 50, 1)]])
    >>> t.shape, t.amount_mg.tolist()
    ((2, 2), [[100.0, 0.0], [50.0, 50.0]])
    """

    time_h: Any
    amount_mg: Any
    duration_h: Any
    cmt: Any
    ss: Any
    ii_h: Any
    reset: Any
    until_h: Any

    def __post_init__(self) -> None:
        arrays = [getattr(self, f) for f in _FIELDS]
        if not all(isinstance(a, np.ndarray) for a in arrays):
            return  # traced or transformed by JAX: checked when it was built
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1 or arrays[0].ndim < 1:
            raise ScheduleError(
                "DoseTable fields must share one shape (..., D); got "
                + ", ".join(f"{f} {a.shape}" for f, a in zip(_FIELDS, arrays, strict=True))
            )
        if not np.isfinite(self.time_h).all() or (self.time_h < 0).any():
            raise ScheduleError("DoseTable times must be finite and >= 0")
        if (self.amount_mg < 0).any() or (self.duration_h < 0).any():
            raise ScheduleError("DoseTable amounts and durations must be >= 0")
        if (self.cmt < 1).any():
            raise ScheduleError("DoseTable compartments (cmt) are 1-based and must be >= 1")
        if ((self.ss > 0) & ~(self.ii_h > 0)).any():
            raise ScheduleError("steady-state doses (ss > 0) need an interval ii_h > 0")

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_doses(cls, subjects: Sequence[Sequence[Dose]]) -> DoseTable:
        """A table of ``len(subjects)`` subjects from each one's records, in record order."""
        expanded = [_expand_subject(list(records)) for records in subjects]
        if not expanded:
            raise ScheduleError("a dose table needs at least one subject")
        width = max([1, *(len(rows) for rows in expanded)])
        n = len(expanded)
        out: dict[str, np.ndarray] = {
            "time_h": np.zeros((n, width)),
            "amount_mg": np.zeros((n, width)),
            "duration_h": np.zeros((n, width)),
            "cmt": np.ones((n, width), dtype=np.int64),
            "ss": np.zeros((n, width), dtype=np.int64),
            "ii_h": np.zeros((n, width)),
            "reset": np.zeros((n, width), dtype=bool),
            "until_h": np.full((n, width), np.inf),
        }
        for i, rows in enumerate(expanded):
            if rows:
                # pads sit at the subject's last dose time so no new time enters the table
                out["time_h"][i, :] = rows[-1][0].time_h
                out["cmt"][i, :] = rows[-1][0].cmt
            for j, (d, until) in enumerate(rows):
                out["time_h"][i, j] = d.time_h
                out["amount_mg"][i, j] = d.amount_mg
                out["duration_h"][i, j] = d.duration_h
                out["cmt"][i, j] = d.cmt
                out["ss"][i, j] = d.ss
                out["ii_h"][i, j] = d.ii_h
                out["reset"][i, j] = d.reset or d.ss == 1
                out["until_h"][i, j] = until
        return cls(**out)

    # -- shape and selection --------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        """``(N, D)``, or ``(D,)`` for a table shared by every subject."""
        return tuple(np.shape(self.time_h))

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The leading (subject) axes: ``(N,)`` or ``()``."""
        return self.shape[:-1]

    def subjects(self, index: Any) -> DoseTable:
        """The rows ``index`` (an integer array or slice) of a per-subject table."""
        if not self.batch_shape:
            return self
        return DoseTable(**{f: np.asarray(getattr(self, f))[index] for f in _FIELDS})

    def broadcast(self, n: int) -> DoseTable:
        """A per-subject ``(n, D)`` table (copies a shared or one-subject table)."""
        if self.batch_shape == (n,):
            return self
        if self.batch_shape not in ((), (1,)):
            raise ScheduleError(f"the dose table has {self.batch_shape[0]} subjects, not {n}")
        return DoseTable(
            **{f: np.broadcast_to(np.asarray(getattr(self, f)), (n, self.shape[-1])).copy()
               for f in _FIELDS}
        )  # fmt: skip

    def check_model(self, model: type[AbstractModel] | AbstractModel) -> None:
        """Raise :class:`~medtwin.errors.ScheduleError` if a dose names no state of ``model``."""
        cls = model if isinstance(model, type) else type(model)
        cmt = np.asarray(self.cmt)
        dosed = np.asarray(self.amount_mg) > 0
        n_states = len(cls.states)
        bad = dosed & (cmt > n_states)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ScheduleError(
                f"dose {where} goes to compartment {int(cmt[where])}, but {cls.__name__} has "
                f"{n_states} ({', '.join(f'{i + 1}={s}' for i, s in enumerate(cls.state_names()))})"
            )

    @property
    def end_h(self) -> float:
        """The time by which every dose has started (last dose or infusion start)."""
        return float(np.max(np.where(np.asarray(self.amount_mg) > 0, self.time_h, 0.0)))


jax.tree_util.register_dataclass(DoseTable, data_fields=list(_FIELDS), meta_fields=[])


def _expand_subject(records: list[Dose]) -> list[tuple[Dose, float]]:
    """Expanded doses with their ``until_h``: a reset cancels everything recorded before it."""
    rows: list[tuple[Dose, float]] = []
    for rec in records:
        if not isinstance(rec, Dose):
            raise ScheduleError(f"expected Dose records, got {type(rec).__name__}")
        if rec.reset or rec.ss == 1:
            rows = [(d, min(until, rec.time_h)) for d, until in rows]
        rows += [(d, math.inf) for d in rec.expand()]
    # a stable sort by time keeps record order among simultaneous doses
    return sorted(rows, key=lambda r: r[0].time_h)


# ---------------------------------------------------------------------------------------------
# Regimens
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Administration:
    """``n_doses`` doses of ``dose_mg`` by ``route`` every ``every_h`` from ``start_h``."""

    route: Route
    dose_mg: float
    start_h: float = 0.0
    every_h: float = 0.0
    n_doses: int = 1
    duration_h: float = 0.0
    steady_state: bool = False

    def __post_init__(self) -> None:
        where = f"{self.route} regimen"
        if self.route not in ("oral", "iv"):
            raise ScheduleError(f"route must be 'oral' or 'iv', got {self.route!r}")
        if _number(self.dose_mg, "dose_mg", where) <= 0:
            raise ScheduleError(f"{where}: dose_mg must be > 0, got {self.dose_mg}")
        if _number(self.start_h, "start_h", where) < 0:
            raise ScheduleError(f"{where}: start_h must be >= 0, got {self.start_h}")
        if _number(self.duration_h, "duration_h", where) < 0:
            raise ScheduleError(f"{where}: duration_h must be >= 0, got {self.duration_h}")
        if isinstance(self.n_doses, bool) or not isinstance(self.n_doses, int) or self.n_doses < 1:
            raise ScheduleError(f"{where}: doses must be an integer >= 1, got {self.n_doses!r}")
        every = _number(self.every_h, "every_h", where)
        if (self.n_doses > 1 or self.steady_state) and not every > 0:
            raise ScheduleError(
                f"{where}: {self.n_doses} doses{' at steady state' if self.steady_state else ''} "
                f"need every_h > 0, got {self.every_h}"
            )

    def to_dose(self, model: type[AbstractModel] | AbstractModel) -> Dose:
        """The NONMEM-style record for ``model`` (ADDL = ``n_doses - 1``)."""
        cls = model if isinstance(model, type) else type(model)
        dose_cmt = getattr(cls, "dose_cmt", None)
        if dose_cmt is None:
            raise ScheduleError(f"{cls.__name__} takes no doses (it is not a PK model)")
        return Dose(
            time_h=float(self.start_h),
            amount_mg=float(self.dose_mg),
            cmt=dose_cmt(self.route),
            duration_h=float(self.duration_h),
            ii_h=float(self.every_h),
            addl=self.n_doses - 1,
            ss=1 if self.steady_state else 0,
        )


@dataclass(frozen=True, slots=True)
class Regimen:
    """A dosing regimen in mg and hours; regimens add up with ``+``.

    ``steady_state=True`` makes the first dose a steady-state dose (NONMEM SS=1): the system
    starts as if the same dose had been given every ``every_h`` since forever.

    >>> r = Regimen.oral(500, every_h=12, doses=14) + Regimen.infusion(1000, 0.5, start_h=200)
    >>> len(r.dose_times_h()), r.dose_times_h()[-2:].tolist()
    (15, [156.0, 200.0])
    """

    administrations: tuple[Administration, ...] = field(default_factory=tuple)

    @classmethod
    def oral(
        cls,
        dose_mg: float,
        *,
        every_h: float = 0.0,
        doses: int = 1,
        start_h: float = 0.0,
        steady_state: bool = False,
    ) -> Regimen:
        """``doses`` oral doses of ``dose_mg`` every ``every_h`` from ``start_h``."""
        return cls((Administration("oral", dose_mg, start_h, every_h, doses, 0.0, steady_state),))

    @classmethod
    def bolus(
        cls,
        dose_mg: float,
        *,
        every_h: float = 0.0,
        doses: int = 1,
        start_h: float = 0.0,
        steady_state: bool = False,
    ) -> Regimen:
        """``doses`` intravenous boluses of ``dose_mg`` every ``every_h`` from ``start_h``."""
        return cls((Administration("iv", dose_mg, start_h, every_h, doses, 0.0, steady_state),))

    @classmethod
    def infusion(
        cls,
        dose_mg: float,
        duration_h: float,
        *,
        every_h: float = 0.0,
        doses: int = 1,
        start_h: float = 0.0,
        steady_state: bool = False,
    ) -> Regimen:
        """``doses`` intravenous infusions of ``dose_mg`` over ``duration_h`` every ``every_h``."""
        if not (isinstance(duration_h, (int, float)) and duration_h > 0):
            raise ScheduleError(f"an infusion needs duration_h > 0, got {duration_h!r}")
        return cls(
            (Administration("iv", dose_mg, start_h, every_h, doses, duration_h, steady_state),)
        )

    def __add__(self, other: Regimen) -> Regimen:
        if not isinstance(other, Regimen):
            return NotImplemented
        return Regimen((*self.administrations, *other.administrations))

    def to_records(self, model: type[AbstractModel] | AbstractModel) -> tuple[Dose, ...]:
        """The NONMEM-style records of this regimen for ``model``, in time order."""
        if not self.administrations:
            raise ScheduleError("the regimen is empty; build one with Regimen.oral(...) etc.")
        records = [a.to_dose(model) for a in self.administrations]
        return tuple(sorted(records, key=lambda d: d.time_h))

    def to_doses(self, model: type[AbstractModel] | AbstractModel) -> DoseTable:
        """A shared ``(D,)`` :class:`DoseTable` for ``model``'s compartments."""
        table = DoseTable.from_doses([self.to_records(model)])
        return DoseTable(**{f: np.asarray(getattr(table, f))[0] for f in _FIELDS})

    def dose_times_h(self) -> np.ndarray:
        """The start time of every dose, sorted (h)."""
        times = [a.start_h + k * a.every_h for a in self.administrations for k in range(a.n_doses)]
        return np.sort(np.asarray(times, dtype=float))
