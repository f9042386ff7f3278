"""Population data: every subject's observations, covariates and doses, padded to a rectangle.

Subjects have different numbers of observations; the estimator works on all of them at once
(``jax.vmap``), so each subject's rows are padded to the longest with a ``mask`` that is ``False``
on the padding.  Padded observation times repeat the subject's last time (predictions stay
finite).  Doses are a :class:`~medtwin.models.pk.DoseTable` (one row per subject, padded with zero
amounts), built with the PK dosing API (:class:`~medtwin.models.pk.Dose` records,
:class:`~medtwin.models.pk.Regimen`, or the NONMEM reader), so a prediction function can hand
``subject["doses"]`` straight to :func:`medtwin.models.pk.concentration`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from medtwin.errors import DataFormatError
from medtwin.models.pk import DoseTable

if TYPE_CHECKING:
    from medtwin.interop.nonmem import NonmemData

__all__ = ["PopulationData"]


@dataclass(frozen=True, eq=False)
class PopulationData:
    """Observations of ``N`` subjects padded to ``(N, M)`` arrays; covariates one per subject.

    Build it with :meth:`from_frame` or :meth:`from_nonmem`.  ``doses`` is an ``(N, D)``
    :class:`~medtwin.models.pk.DoseTable` in the order of ``ids``, or ``None`` (a single dose
    can also be a covariate, as in the theophylline data).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"ID": [1, 1, 2], "TIME": [1.0, 2.0, 1.5], "DV": [5.0, 3.0, 4.0],
    ...                    "WT": [70.0, 70.0, 80.0]})
    >>> d = PopulationData.from_frame(df)
    >>> d.n_subjects, d.n_observations, d.time.shape, d.covariates["WT"].tolist()
    (2, 3, (2, 2), [70.0, 80.0])
    """

    ids: np.ndarray
    time: np.ndarray
    dv: np.ndarray
    mask: np.ndarray
    covariates: Mapping[str, np.ndarray] = field(default_factory=dict)
    doses: DoseTable | None = None

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        id: str = "ID",
        time: str = "TIME",
        dv: str = "DV",
        covariates: Sequence[str] | None = None,
        doses: DoseTable | None = None,
    ) -> PopulationData:
        """Read a long table, one row per observation; rows with a missing ``dv`` are skipped.

        Parameters
        ----------
        frame:
            The table.
        id, time, dv:
            Columns of the subject id, the time and the observed value.
        covariates:
            Columns passed to the prediction function as one value per subject; each must be
            constant within a subject.  Default: every other numeric column.
        doses:
            The subjects' doses: an ``(N, D)`` :class:`~medtwin.models.pk.DoseTable` with one
            row per subject in order of first appearance in ``frame``, or a shared ``(D,)``
            table given to every subject.
        """
        if not isinstance(frame, pd.DataFrame):
            raise DataFormatError(
                f"population data must be a pandas DataFrame, got {type(frame).__name__}"
            )
        special = [id, time, dv]
        missing = [c for c in special if c not in frame.columns]
        if missing:
            raise DataFormatError(
                f"population data lack the column(s) {missing}; columns present: "
                f"{list(frame.columns)} (name them with id=, time=, dv=)"
            )
        if covariates is None:
            covariates = [
                str(c)
                for c in frame.columns
                if c not in special and pd.api.types.is_numeric_dtype(frame[c])
            ]
        else:
            covariates = list(covariates)
            absent = [c for c in covariates if c not in frame.columns]
            if absent:
                raise DataFormatError(f"covariate column(s) {absent} are not in the data")
        for c in (time, *covariates):
            if not pd.api.types.is_numeric_dtype(frame[c]):
                raise DataFormatError(f"column {c!r} must be numeric, got dtype {frame[c].dtype}")
        if frame[id].isna().any():
            row = int(np.flatnonzero(frame[id].isna().to_numpy())[0])
            raise DataFormatError(f"row {row}: the subject id ({id!r}) is missing")
        if not np.all(np.isfinite(frame[time].to_numpy(dtype=float))):
            row = int(np.flatnonzero(~np.isfinite(frame[time].to_numpy(dtype=float)))[0])
            raise DataFormatError(f"row {row}: time ({time!r}) is not a finite number")

        obs = frame.loc[frame[dv].notna().to_numpy()]
        ids = pd.unique(frame[id]).tolist()
        n = len(ids)
        counts = obs.groupby(id, sort=False).size()
        no_obs = [s for s in ids if counts.get(s, 0) == 0]
        if no_obs:
            raise DataFormatError(f"subject(s) {no_obs[:5]} have no observations")
        m = int(counts.max())
        t = np.zeros((n, m))
        y = np.zeros((n, m))
        mask = np.zeros((n, m), dtype=bool)
        cov = {c: np.zeros(n) for c in covariates}
        groups = dict(tuple(frame.groupby(id, sort=False)))
        obs_groups = dict(tuple(obs.groupby(id, sort=False)))
        for i, s in enumerate(ids):
            g = obs_groups[s].sort_values(time, kind="stable")
            k = len(g)
            t[i, :k] = g[time].to_numpy(dtype=float)
            y[i, :k] = g[dv].to_numpy(dtype=float)
            t[i, k:] = t[i, k - 1]
            y[i, k:] = y[i, k - 1]
            mask[i, :k] = True
            for c in covariates:
                values = groups[s][c].dropna().unique()
                if len(values) != 1:
                    raise DataFormatError(
                        f"covariate {c!r} of subject {s!r} must have one value, got "
                        f"{values.tolist()[:5]}; time-varying covariates are not supported"
                    )
                cov[c][i] = float(values[0])
        if not np.all(np.isfinite(y[mask])):
            raise DataFormatError(f"observations ({dv!r}) must be finite numbers")
        if doses is not None:
            if not isinstance(doses, DoseTable):
                raise DataFormatError(
                    f"doses must be a medtwin.models.pk.DoseTable, got {type(doses).__name__}"
                )
            try:
                doses = doses.broadcast(n)
            except Exception as exc:  # a table for another number of subjects
                raise DataFormatError(f"{exc}: the data hold {n} subjects") from None
        return cls(
            ids=np.asarray(ids, dtype=object),
            time=t,
            dv=y,
            mask=mask,
            covariates=cov,
            doses=doses,
        )

    @classmethod
    def from_nonmem(cls, data: NonmemData) -> PopulationData:
        """From a validated NONMEM data set (:func:`medtwin.interop.nonmem.read_nonmem`).

        Observations, the doses as a :class:`~medtwin.models.pk.DoseTable` and the baseline
        (first-record) value of every covariate.
        """
        # duck-typed, so calibrate does not import interop (translation stays at the boundary)
        if not all(hasattr(data, a) for a in ("ids", "observations", "doses", "covariates")):
            raise DataFormatError(
                f"expected a NonmemData (medtwin.interop.nonmem.read_nonmem), got "
                f"{type(data).__name__}"
            )
        time, dv, mask = data.observations()
        empty = [sid for sid, m in zip(data.ids, mask, strict=True) if not m.any()]
        if empty:
            raise DataFormatError(f"subject(s) {empty[:5]} have no observations")
        # padding repeats each subject's last observation, like from_frame
        last = dv[np.arange(len(dv)), mask.sum(axis=1) - 1]
        dv = np.where(mask, dv, last[:, None])
        return cls(
            ids=np.asarray(data.ids, dtype=object),
            time=time,
            dv=dv,
            mask=mask,
            covariates={k: np.asarray(v, dtype=float) for k, v in data.covariates().items()},
            doses=data.doses(),
        )

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return int(self.time.shape[0])

    @property
    def n_observations(self) -> int:
        """Number of observations (padding excluded)."""
        return int(self.mask.sum())

    def subjects(self) -> dict[str, Any]:
        """Every subject's data for the prediction function, as JAX arrays with a leading N axis.

        ``time`` is ``(N, M)``, each covariate ``(N,)``, and ``doses`` the ``(N, D)``
        :class:`~medtwin.models.pk.DoseTable` (when the data have doses).
        """
        out: dict[str, Any] = {"time": jnp.asarray(self.time)}
        out |= {k: jnp.asarray(v) for k, v in self.covariates.items()}
        if self.doses is not None:
            out["doses"] = self.doses
        return out

    def subject(self, index: int) -> dict[str, Any]:
        """Subject ``index``'s data as its prediction function receives it (no N axis)."""
        return jax.tree.map(lambda a: jnp.asarray(a)[index], self.subjects())

    def select(self, index: Sequence[int] | np.ndarray) -> PopulationData:
        """The subjects at positions ``index`` (in that order)."""
        idx = np.asarray(index, dtype=int)
        return PopulationData(
            ids=self.ids[idx],
            time=self.time[idx],
            dv=self.dv[idx],
            mask=self.mask[idx],
            covariates={k: v[idx] for k, v in self.covariates.items()},
            doses=None if self.doses is None else self.doses.subjects(idx),
        )

    def with_time(self, time: np.ndarray) -> PopulationData:
        """The same subjects observed at ``time`` ((N, M') or (M',) for all); no observations."""
        t = np.broadcast_to(np.asarray(time, dtype=float), (self.n_subjects, np.shape(time)[-1]))
        return PopulationData(
            ids=self.ids,
            time=np.array(t),
            dv=np.full(t.shape, np.nan),
            mask=np.zeros(t.shape, dtype=bool),
            covariates=self.covariates,
            doses=self.doses,
        )

    def to_frame(self, **columns: np.ndarray) -> pd.DataFrame:
        """One row per observation (padding dropped): ``ID``, ``TIME``, ``DV`` and ``columns``.

        Each extra column is an ``(N, M)`` array aligned with ``time``.
        """
        rows, cols = np.nonzero(self.mask)
        out = pd.DataFrame(
            {"ID": self.ids[rows], "TIME": self.time[rows, cols], "DV": self.dv[rows, cols]}
        )
        for name, values in columns.items():
            out[name] = np.asarray(values)[rows, cols]
        return out
