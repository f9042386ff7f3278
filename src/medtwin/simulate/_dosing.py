"""Dose events on the engine: exact boluses, infusions, lag times, resets and steady state.

:func:`simulate_doses` integrates a :class:`~medtwin.models.pk.PKModel`'s right-hand side for a
batch of subjects under a :class:`~medtwin.models.pk.DoseTable` (or a
:class:`~medtwin.models.pk.Regimen`).  Unlike the minute-by-minute input periods of
:func:`~medtwin.simulate.simulate`, every dose acts exactly when it happens:

- each subject's *breakpoints* (dose entries ``TIME + ALAG``, infusion ends, resets, observation
  times) are merged into one sorted list, and a ``lax.scan`` visits them in order; between two
  breakpoints the inputs are constant and RK4 integrates with equal substeps no longer than the
  solver's step (``RK4(dt=...)``, h), so the step lands exactly on every breakpoint;
- at a breakpoint a bolus adds ``F * AMT`` to its compartment, an infusion switches its rate
  input on or off, a reset empties the system (to the model's initial state), and observations are
  read after the doses of that instant (right-continuous, like the closed form);
- a steady-state dose (SS=1 resets to, SS=2 adds) starts from the periodic steady state of the
  linear system, found exactly: the state ``x*`` before a dose satisfies ``x* = P(x*)`` where ``P``
  maps the state through one dosing interval (RK4, the dose applied), and Newton's method
  ``x <- x + (I - P'(x))^{-1} (P(x) - x)`` with ``P'`` from forward-mode JAX solves it in one step
  for a linear model (a few for a nonlinear one such as Michaelis-Menten elimination).  This needs
  the dose's input to end within the interval (``ALAG + duration <= II``); otherwise use the
  closed form.

Subjects are independent, so cohorts are cut into chunks run on the CPU cores like
:func:`~medtwin.simulate.simulate`, and the result does not depend on the chunking.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from medtwin.errors import ConfigurationError, ParameterError, ScheduleError, SimulationError
from medtwin.models._base import AbstractModel, Array
from medtwin.models.pk._base import PKModel
from medtwin.models.pk.dosing import DoseTable, Regimen
from medtwin.simulate._engine import _full_params, _workers, default_chunk_size
from medtwin.simulate.solution import Solution
from medtwin.simulate.solvers import RK4

__all__ = ["DEFAULT_DOSE_SOLVER", "simulate_doses"]

DEFAULT_DOSE_SOLVER = RK4(dt=0.05)
"""RK4 with steps of at most 0.05 h between breakpoints (rel. error ~1e-7 for rates ~1/h)."""

_RUNNERS: dict[Any, Callable[..., Any]] = {}
_NEWTON_LINEAR = 2  # one step is exact for a linear model; a second polishes rounding
_NEWTON_NONLINEAR = 30
_SS_TOLERANCE = 1e-9


def simulate_doses(
    model: AbstractModel | type[AbstractModel],
    doses: DoseTable | Regimen,
    t: Any,
    *,
    params: Mapping[str, Any] | None = None,
    x0: Mapping[str, Any] | None = None,
    solver: RK4 | None = None,
    record: Iterable[str] | str | None = None,
    patient_ids: Iterable[str] | None = None,
    chunk_size: int | None = None,
) -> Solution:
    """Simulate N subjects of a PK/PD model under their doses, with exact dose events.

    Parameters
    ----------
    model:
        A :class:`~medtwin.models.pk.PKModel` (class or instance).
    doses:
        A :class:`~medtwin.models.pk.DoseTable` (``(D,)`` shared or ``(N, D)`` per subject) or a
        :class:`~medtwin.models.pk.Regimen`.
    t:
        Observation times in hours: ``(T,)`` shared or ``(N, T)`` per subject, in any order.
    params, x0:
        Parameters (and optionally the state at the first breakpoint) by name, scalars or length-N
        arrays; missing parameters take their defaults.
    solver:
        :class:`~medtwin.simulate.RK4`; its step ``dt / substeps`` is the longest step taken
        (default :data:`DEFAULT_DOSE_SOLVER`).
    record:
        States and observations to return; default every observation, ``"all"`` adds the states.

    Returns
    -------
    Solution
        ``(N, T)`` values at the observation times (``Solution.t`` is ``t`` as given).

    Examples
    --------
    >>> import numpy as np
    >>> from medtwin.models.pk import OneCompartment, Regimen
    >>> sol = simulate_doses(OneCompartment, Regimen.bolus(100), [0.0, 6.931471805599453],
    ...                      params={"CL": 5.0, "V": 50.0})
    >>> np.round(sol["Cc"], 6).tolist()
    [[2.0, 1.0]]
    """
    mdl = model() if isinstance(model, type) else model
    if not isinstance(mdl, PKModel):
        raise ConfigurationError(
            "dose tables and regimens need a PK model (medtwin.models.pk), "
            f"got {type(mdl).__name__}"
        )
    cls = type(mdl)
    if cls.discrete_states:
        raise ConfigurationError(f"{cls.__name__} has discrete states; dose events cannot drive it")
    solver = DEFAULT_DOSE_SOLVER if solver is None else solver
    if not isinstance(solver, RK4):
        raise ConfigurationError(
            f"dose events run on RK4 (RK4(dt=max step in h)), got {type(solver).__name__}"
        )
    if isinstance(doses, Regimen):
        doses = doses.to_doses(cls)
    if not isinstance(doses, DoseTable):
        raise ScheduleError(f"doses must be a DoseTable or a Regimen, got {type(doses).__name__}")
    doses.check_model(cls)
    times = _check_times(t)
    params = dict(params or {})
    n = _batch(params, x0, doses, times)
    ids = _ids(patient_ids, n)
    p_full = _full_params(cls, params, n)
    table = doses.broadcast(n)
    obs_t = np.broadcast_to(times, (n, times.shape[-1])).copy()
    rec_states, rec_obs = _record(cls, record)
    plan = _plan(cls, table)
    x0_full = None
    if x0 is not None:
        x0_full = {s: np.broadcast_to(np.asarray(x0[s], dtype=float), (n,)).copy() for s in
                   _require_states(cls, x0)}  # fmt: skip
    runner = _runner(mdl, solver.h, plan, x0_full is not None)
    if chunk_size is not None and not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ConfigurationError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    size = min(chunk_size or default_chunk_size(), n)
    names = (*cls.state_names(), *(o.name for o in cls.observations))
    values = {name: np.empty((n, obs_t.shape[1])) for name in names}
    bad_ss = np.zeros(n, dtype=bool)

    def run_chunk(start: int) -> None:
        stop = min(start + size, n)
        idx = np.arange(start, start + size).clip(max=n - 1)
        out, bad = runner(
            {k: v[idx] for k, v in p_full.items()},
            {f.name: np.asarray(getattr(table, f.name))[idx] for f in dataclasses.fields(table)},
            obs_t[idx],
            None if x0_full is None else {k: v[idx] for k, v in x0_full.items()},
        )
        m = stop - start
        for name in names:
            values[name][start:stop] = np.asarray(out[name])[:m]
        bad_ss[start:stop] = np.asarray(bad)[:m]

    starts = list(range(0, n, size))
    workers = min(len(starts), _workers())
    if workers == 1:
        for s in starts:
            run_chunk(s)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run_chunk, starts))
    if bad_ss.any():
        i = int(np.flatnonzero(bad_ss)[0])
        raise ScheduleError(
            f"subject {ids[i]}: a steady-state dose could not be solved on the ODE path: its "
            "input must end within the dosing interval (ALAG + duration <= II, ALAG < II for a "
            "bolus) and, for a nonlinear model, Newton's method must converge; use "
            "medtwin.models.pk.concentration (closed form) for such doses"
        )
    for name, arr in values.items():
        if not np.isfinite(arr).all():
            i = int(np.argwhere(~np.isfinite(arr))[0][0])
            raise SimulationError(
                f"{name} became non-finite for subject {ids[i]}; check its parameters and doses"
            )
    recorded = (*rec_states, *rec_obs)
    unit_of = {s.name: s.unit for s in cls.states} | {o.name: o.unit for o in cls.observations}
    last = np.argmax(obs_t, axis=1)
    final = {s: values[s][np.arange(n), last] for s in cls.state_names()}
    return Solution(
        t=times,
        values={name: values[name] for name in recorded},
        units={name: unit_of[name] for name in recorded},
        patient_ids=ids,
        final_state=final,
        time_unit=cls.time_unit,
        model_name=cls.__name__,
    )


# ---------------------------------------------------------------------------------------------
# Argument checking
# ---------------------------------------------------------------------------------------------


def _check_times(t: Any) -> np.ndarray:
    if t is None:
        raise ConfigurationError("t (the observation times in h) is required")
    try:
        times = np.asarray(t, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"t must be an array of numbers: {exc}") from None
    if times.ndim not in (1, 2) or times.shape[-1] < 1:
        raise ConfigurationError(f"t must be (T,) or (N, T) with T >= 1, got shape {times.shape}")
    if not np.isfinite(times).all():
        raise ConfigurationError("t contains NaN or infinite times")
    return times


def _batch(
    params: Mapping[str, Any], x0: Mapping[str, Any] | None, doses: DoseTable, t: np.ndarray
) -> int:
    sizes: dict[str, int] = {}
    for where, mapping in (("params", params), ("x0", x0 or {})):
        for k, v in mapping.items():
            if np.ndim(v) > 1:
                raise ParameterError(f"{where}[{k!r}] must be a scalar or 1-D, got {np.shape(v)}")
            if np.ndim(v) == 1:
                sizes[f"{where}[{k!r}]"] = len(v)
    if doses.batch_shape:
        sizes["doses"] = doses.batch_shape[0]
    if t.ndim == 2:
        sizes["t"] = t.shape[0]
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        raise ParameterError(f"batch sizes disagree ({detail}); give every array the same length")
    return next(iter(sizes.values())) if sizes else 1


def _ids(ids: Iterable[str] | None, n: int) -> tuple[str, ...]:
    out = tuple(str(i) for i in range(n)) if ids is None else tuple(str(i) for i in ids)
    if len(out) != n:
        raise ParameterError(f"{len(out)} patient_ids given for a batch of {n}")
    return out


def _require_states(cls: type[AbstractModel], x0: Mapping[str, Any]) -> tuple[str, ...]:
    missing = [s for s in cls.state_names() if s not in x0]
    unknown = sorted(set(x0) - set(cls.state_names()))
    if missing or unknown:
        raise ParameterError(
            f"x0 must give every state of {cls.__name__} (missing {missing}, unknown {unknown})"
        )
    return cls.state_names()


def _record(
    cls: type[AbstractModel], record: Iterable[str] | str | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    obs = tuple(o.name for o in cls.observations)
    if record is None:
        return (), obs
    if record == "all":
        return cls.state_names(), obs
    names = [record] if isinstance(record, str) else list(record)
    unknown = [r for r in names if r not in cls.state_names() and r not in obs]
    if unknown:
        raise ConfigurationError(
            f"cannot record {unknown}: {cls.__name__} has states {', '.join(cls.state_names())} "
            f"and observations {', '.join(obs)}"
        )
    return tuple(r for r in names if r in cls.state_names()), tuple(r for r in names if r in obs)


# ---------------------------------------------------------------------------------------------
# The plan: which event groups exist (static), which doses need a steady state
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Plan:
    infusions: bool
    resets: bool
    ss_columns: tuple[int, ...]


def _plan(cls: type[PKModel], table: DoseTable) -> _Plan:
    given = np.asarray(table.amount_mg) > 0
    dur = np.asarray(table.duration_h)
    cmt = np.asarray(table.cmt)
    infusion = given & (dur > 0)
    names = cls.state_names()
    for where in np.argwhere(infusion):
        state = names[int(cmt[tuple(where)]) - 1]
        if state not in cls.dose_inputs:
            raise ScheduleError(
                f"dose {tuple(int(i) for i in where)} is an infusion into {state!r}, which "
                f"{cls.__name__} has no rate input for (infusions go to "
                f"{', '.join(cls.dose_inputs)})"
            )
    ss = np.asarray(table.ss) > 0
    resets = bool(np.asarray(table.reset).any() or np.isfinite(np.asarray(table.until_h)).any())
    columns = tuple(int(c) for c in np.flatnonzero(ss.any(axis=0)))
    return _Plan(bool(infusion.any()), resets or bool(ss.any()), columns)


# ---------------------------------------------------------------------------------------------
# The compiled run
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Events:
    """Per-subject events, arrays (B, E): when, which state jumps by how much, which rate changes.

    ``mode``: 0 nothing, 1 reset to the initial state, 2 reset to a steady state, 3 add one;
    ``slot`` indexes the steady states of the dose.
    """

    time: Array
    state: Array
    jump: Array
    input: Array
    rate: Array
    mode: Array
    slot: Array


def _runner(mdl: PKModel, h_max: float, plan: _Plan, has_x0: bool) -> Callable[..., Any]:
    key = (type(mdl), h_max, plan, has_x0)
    if key not in _RUNNERS:
        _RUNNERS[key] = jax.jit(_build(mdl, h_max, plan))
    return _RUNNERS[key]


def _build(mdl: PKModel, h_max: float, plan: _Plan) -> Callable[..., Any]:
    cls = type(mdl)
    states = cls.state_names()
    dose_inputs = tuple(cls.dose_inputs.items())  # (state, input)
    input_names = tuple(i for _, i in dose_inputs)
    observations = cls.observations

    def per_state(values: Mapping[str, Array], cmt0: Array, default: float) -> Array:
        out = jnp.full(cmt0.shape, default)
        for k, s in enumerate(states):
            if s in values:
                out = jnp.where(cmt0 == k, values[s], out)
        return out

    def run(
        params: dict[str, Array], table: dict[str, Array], obs_t: Array, x0: dict[str, Array] | None
    ) -> tuple[dict[str, Array], Array]:
        p = mdl.with_derived(params)
        b = obs_t.shape[0]
        cmt0 = table["cmt"] - 1
        f = per_state(_broadcast(mdl.bioavailability(p), b), cmt0, 1.0)
        lag = per_state(_broadcast(mdl.lag_time(p), b), cmt0, 0.0)
        amount, duration, until = table["amount_mg"], table["duration_h"], table["until_h"]
        entry = table["time_h"] + lag
        live = (amount > 0) & (entry < until)
        infusion = live & (duration > 0)
        rate = jnp.where(infusion, amount / jnp.where(duration > 0, duration, 1.0), 0.0)
        input_of = jnp.full(cmt0.shape, -1)
        for i, (s, _) in enumerate(dose_inputs):
            input_of = jnp.where(cmt0 == states.index(s), i, input_of)
        zeros_i = jnp.zeros_like(cmt0)
        zeros_f = jnp.zeros_like(entry)

        x_init = mdl.initial_state(p)
        x_init = {s: jnp.broadcast_to(x_init[s], (b,)) for s in states}
        groups = []
        if plan.infusions:  # infusion ends first: a dose at the same instant follows them
            stop = jnp.where(infusion, jnp.minimum(entry + duration, until), entry)
            groups.append(_Events(stop, zeros_i, zeros_f, input_of, -rate, zeros_i, zeros_i))
        if plan.resets:
            mode = jnp.where(table["reset"], 1, 0)
            mode = jnp.where(table["ss"] == 1, 2, jnp.where(table["ss"] == 2, 3, mode))
            mode = jnp.where(amount > 0, mode, jnp.where(table["reset"], 1, 0))
            slot = zeros_i
            for j, col in enumerate(plan.ss_columns):
                slot = slot.at[:, col].set(j)
            groups.append(_Events(table["time_h"], zeros_i, zeros_f, input_of, zeros_f, mode, slot))
        jump = jnp.where(live & (duration <= 0), f * amount, 0.0)
        groups.append(_Events(entry, cmt0, jump, input_of, rate, zeros_i, zeros_i))
        events = _Events(*(jnp.concatenate([getattr(g, fl.name) for g in groups], axis=1)
                           for fl in dataclasses.fields(_Events)))  # fmt: skip

        # steady states of the SS doses: fixed points of the one-interval map, one traced
        # solve mapped over the dose columns that hold SS doses
        xss = {s: jnp.zeros((b, 1)) for s in states}
        bad = jnp.zeros(b, dtype=bool)
        if plan.ss_columns:
            cols = jnp.asarray(plan.ss_columns)

            def solve(col: Array) -> tuple[dict[str, Array], Array]:
                def at(a: Array) -> Array:
                    return a[:, col]

                x_star, ok = _steady_state(
                    mdl, p, x_init, h_max, b, at(cmt0), at(input_of), at(f), at(lag),
                    at(amount), at(duration), at(table["ii_h"]),
                )  # fmt: skip
                is_ss = (at(table["ss"]) > 0) & (at(amount) > 0)
                return {s: jnp.where(is_ss, x_star[s], 0.0) for s in states}, is_ss & ~ok

            stars, failed = jax.lax.map(solve, cols)  # (n_ss, B) each
            xss = {s: stars[s].T for s in states}
            bad = failed.any(axis=0)

        start = x_init if x0 is None else x0
        at_obs = _integrate(mdl, p, start, events, obs_t, h_max, input_names, x_init, xss)
        out = dict(at_obs)
        p_col = {k: (v[:, None] if jnp.ndim(v) == 1 else v) for k, v in p.items()}  # (B, T)
        for o in observations:
            out[o.name] = o.evaluate(at_obs, p_col)
        return out, bad

    return run


def _broadcast(values: Mapping[str, Any], b: int) -> dict[str, Array]:
    return {k: jnp.broadcast_to(jnp.asarray(v, dtype=float), (b,))[:, None] for k, v in
            values.items()}  # fmt: skip


def _integrate(
    mdl: PKModel,
    p: Mapping[str, Array],
    x_start: Mapping[str, Array],
    events: _Events,
    obs_t: Array,
    h_max: float,
    input_names: tuple[str, ...],
    x_init: Mapping[str, Array],
    xss: Mapping[str, Array],
    obs_first: bool = False,
) -> dict[str, Array]:
    """States at ``obs_t`` (B, T), visiting events and observations in time order."""
    cls = type(mdl)
    states = cls.state_names()
    b, n_events = events.time.shape
    n_obs = obs_t.shape[1]
    keys = (
        jnp.concatenate([obs_t, events.time], axis=1)
        if obs_first
        else jnp.concatenate([events.time, obs_t], axis=1)
    )
    order = jnp.argsort(keys, axis=1, stable=True)
    if obs_first:  # map positions back to (events, observations) numbering
        order = jnp.where(order < n_obs, order + n_events, order - n_obs)
    sorted_t = jnp.take_along_axis(jnp.concatenate([events.time, obs_t], axis=1), order, axis=1)
    other = {i.name: jnp.zeros(b) for i in cls.inputs if i.name not in input_names}
    rows = jnp.arange(b)

    def rk4(x: dict[str, Array], t: Array, h: Array, u: dict[str, Array]) -> dict[str, Array]:
        def axpy(a: Array, k: Mapping[str, Array]) -> dict[str, Array]:
            return {s: x[s] + a * k[s] for s in states}

        k1 = mdl.rhs(t, x, p, u)
        k2 = mdl.rhs(t + h / 2, axpy(h / 2, k1), p, u)
        k3 = mdl.rhs(t + h / 2, axpy(h / 2, k2), p, u)
        k4 = mdl.rhs(t + h, axpy(h, k3), p, u)
        return {s: x[s] + (h / 6) * (k1[s] + 2 * k2[s] + 2 * k3[s] + k4[s]) for s in states}

    def step(carry: Any, k: Array) -> tuple[Any, dict[str, Array]]:
        x, r, t_now = carry
        target = sorted_t[:, k]
        span = target - t_now
        # each subject takes its own number of equal substeps, so its result never depends on
        # which other subjects share its chunk; the loop runs to the chunk's largest count
        n_sub = jnp.ceil(span / h_max)
        h = span / jnp.maximum(n_sub, 1.0)
        u = {**other, **{name: r[i] for i, name in enumerate(input_names)}}

        def substep(i: Array, xi: dict[str, Array]) -> dict[str, Array]:
            moved = rk4(xi, t_now + i * h, h, u)
            return {s: jnp.where(i < n_sub, moved[s], xi[s]) for s in states}

        x = jax.lax.fori_loop(0, jnp.max(n_sub).astype(jnp.int32), substep, x)
        j = order[:, k]
        is_event = j < n_events
        e = jnp.minimum(j, n_events - 1)[:, None]

        def field(a: Array) -> Array:
            return jnp.take_along_axis(a, e, axis=1)[:, 0]

        mode = jnp.where(is_event, field(events.mode), 0)
        slot = field(events.slot)[:, None]
        x_new = {}
        for s in states:
            steady = jnp.take_along_axis(xss[s], slot, axis=1)[:, 0]
            v = jnp.where(mode == 1, x_init[s], x[s])
            v = jnp.where(mode == 2, steady, v)
            v = jnp.where(mode == 3, v + steady, v)
            x_new[s] = v
        reset = (mode == 1) | (mode == 2)
        target_state, jump = field(events.state), jnp.where(is_event, field(events.jump), 0.0)
        x_new = {s: x_new[s] + jnp.where(target_state == i, jump, 0.0) for i, s in
                 enumerate(states)}  # fmt: skip
        which, delta = field(events.input), jnp.where(is_event, field(events.rate), 0.0)
        r = [jnp.where(reset, 0.0, r[i]) + jnp.where(which == i, delta, 0.0) for i in
             range(len(input_names))]  # fmt: skip
        return (x_new, r, target), x_new

    x0 = {s: jnp.broadcast_to(jnp.asarray(x_start[s], dtype=float), (b,)) for s in states}
    r0 = [jnp.zeros(b) for _ in input_names]
    _, trace = jax.lax.scan(step, (x0, r0, sorted_t[:, 0]), jnp.arange(n_events + n_obs))
    position = jnp.argsort(order, axis=1)[:, n_events:]  # where each observation was visited
    return {s: trace[s][position, rows[:, None]] for s in states}


def _steady_state(
    mdl: PKModel,
    p: Mapping[str, Array],
    x_init: Mapping[str, Array],
    h_max: float,
    b: int,
    cmt0: Array,
    input_of: Array,
    f: Array,
    lag: Array,
    amount: Array,
    duration: Array,
    ii: Array,
) -> tuple[dict[str, Array], Array]:
    """The state just before a dose given every ``ii`` forever, and whether it was found."""
    cls = type(mdl)
    states = cls.state_names()
    input_names = tuple(cls.dose_inputs.values())
    tau = jnp.where(ii > 0, ii, 1.0)
    infusion = duration > 0
    fits = jnp.where(infusion, lag + duration <= tau, lag < tau)
    lag_ok = jnp.where(fits, lag, 0.0)
    rate = jnp.where(infusion, amount / jnp.where(infusion, duration, 1.0), 0.0)
    zi, zf = jnp.zeros((b, 1), dtype=cmt0.dtype), jnp.zeros((b, 1))
    col = lambda a: a[:, None]  # noqa: E731
    start = _Events(col(lag_ok), col(cmt0), col(jnp.where(infusion, 0.0, f * amount)),
                    col(input_of), col(rate), zi, zi)  # fmt: skip
    stop = _Events(col(jnp.where(infusion, lag_ok + duration, lag_ok)), zi, zf, col(input_of),
                   col(-rate), zi, zi)  # fmt: skip
    events = _Events(*(jnp.concatenate([getattr(stop, fl.name), getattr(start, fl.name)], axis=1)
                       for fl in dataclasses.fields(_Events)))  # fmt: skip
    obs = col(tau)
    empty = {s: jnp.zeros((b, 1)) for s in states}

    def period(x: Array) -> Array:
        """The state at the end of one interval (before the next dose) from ``x`` at its start."""
        xs = {s: x[:, i] for i, s in enumerate(states)}
        # the interval starts at 0 with x; events are offsets within it
        full = _Events(
            jnp.concatenate([jnp.zeros((b, 1)), events.time], axis=1),
            *(jnp.concatenate([jnp.zeros((b, 1), dtype=getattr(events, fl.name).dtype),
                               getattr(events, fl.name)], axis=1)
              for fl in dataclasses.fields(_Events)[1:]),
        )  # fmt: skip
        out = _integrate(mdl, p, xs, full, obs, h_max, input_names, x_init, empty, obs_first=True)
        return jnp.stack([out[s][:, 0] for s in states], axis=1)

    n = len(states)
    basis = jnp.eye(n)
    x = jnp.stack([jnp.broadcast_to(x_init[s], (b,)) for s in states], axis=1)

    def newton(_: Array, carry: tuple[Array, Array]) -> tuple[Array, Array]:
        x, _step = carry

        def tangent(v: Array) -> tuple[Array, Array]:
            return jax.jvp(period, (x,), (jnp.broadcast_to(v, (b, n)),))

        fx, jac = jax.vmap(tangent, out_axes=(0, 2))(basis)
        step = jnp.linalg.solve(jnp.eye(n) - jac, (fx[0] - x)[..., None])[..., 0]
        return x + step, step

    iterations = _NEWTON_LINEAR if cls.linear else _NEWTON_NONLINEAR
    x, last = jax.lax.fori_loop(0, iterations, newton, (x, jnp.zeros_like(x)))
    # Newton converges quadratically: a negligible last step means x solves x = P(x)
    scale = jnp.maximum(jnp.max(jnp.abs(x), axis=1), 1e-300)
    converged = jnp.all(jnp.isfinite(x), axis=1) & (
        jnp.max(jnp.abs(last), axis=1) <= _SS_TOLERANCE * scale + 1e-12
    )
    return {s: x[:, i] for i, s in enumerate(states)}, fits & converged
