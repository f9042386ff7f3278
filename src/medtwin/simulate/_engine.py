"""The batched engine: one compiled loop advances N patients at once.

The state is a structure of arrays (one length-N array per state).  A ``lax.scan`` over *ticks*
(the greatest common period of the output grid and the sensor/controller) wraps a ``lax.scan``
over *input periods* (``solver.dt``); inputs are held constant over each input period and the model
is integrated by the solver (RK4 by default).  Sensors and controllers are evaluated inside the
same compiled loop, so closed-loop control costs no trip back to Python.  Large cohorts are cut
into chunks of fixed size (the last one padded), so one compilation serves every chunk and memory
stays bounded; each patient's sensor noise is drawn from ``fold_in(seed, patient index)``, so the
result does not depend on the chunk size.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from medtwin.errors import ConfigurationError, ParameterError, SimulationError
from medtwin.models._base import AbstractModel, Array, Fixed
from medtwin.models.pk.dosing import DoseTable, Regimen
from medtwin.simulate._protocols import Controller, ControlObservation, Pump, Sensor
from medtwin.simulate.schedule import Schedule, as_schedules, compile_schedules
from medtwin.simulate.solution import Solution
from medtwin.simulate.solvers import RK4, Adaptive

__all__ = ["default_chunk_size", "simulate", "trajectory_function"]

_RUNNERS: dict[Any, Callable[..., Any]] = {}


def default_chunk_size() -> int:
    """Patients per compiled call: 10^3 on a CPU (the working set stays in cache), 10^5 on a GPU."""
    return 100_000 if jax.default_backend() == "gpu" else 1_000


def _workers() -> int:
    """Chunks run at once: one per CPU core on the CPU backend, one on an accelerator."""
    if jax.default_backend() != "cpu":
        return 1
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _IdealSensor:
    """Noise-free sampling of a model observation (what a controller sees by default)."""

    observation: str
    sample_time: float

    def noise(self, key: Any, n_samples: int) -> Array:
        return jnp.zeros(n_samples)

    def read(self, value: Array, noise: Array) -> Array:
        return value + noise


def simulate(
    model: AbstractModel | type[AbstractModel],
    schedule: Schedule | Iterable[Schedule] | None = None,
    t: Any = None,
    *,
    params: Mapping[str, Any] | None = None,
    x0: Mapping[str, Any] | None = None,
    solver: RK4 | Adaptive | None = None,
    controller: Controller | None = None,
    sensor: Sensor | None = None,
    pump: Pump | None = None,
    seed: int = 0,
    n: int | None = None,
    record: Iterable[str] | str | None = None,
    patient_ids: Iterable[str] | None = None,
    chunk_size: int | None = None,
    dtype: str = "float64",
    progress: bool = False,
) -> Solution:
    """Simulate a batch of N patients of ``model`` on the output grid ``t``.

    Parameters
    ----------
    model:
        A model class or instance from :mod:`medtwin.models`.
    schedule:
        One :class:`~medtwin.simulate.Schedule` shared by the batch, or one per patient; or, for
        a PK model, a :class:`~medtwin.models.pk.Regimen` or :class:`~medtwin.models.pk.DoseTable`,
        which runs with exact dose events (:func:`~medtwin.simulate.simulate_doses`; ``t`` is
        then any set of observation times in hours).
    t:
        Output times in the model's time unit: equally spaced, spacing a multiple of ``solver.dt``.
    params, x0:
        Parameters and initial states by name; scalars are broadcast, arrays have length N.
        Missing parameters take their defaults; ``x0=None`` uses the model's initial state.
        ``x0`` may also carry the model's discrete states, as ``Solution.final_state`` does, so
        a run continues exactly where another stopped.
    solver:
        :class:`RK4` (default, ``dt=1``) or :class:`Adaptive` (diffrax).
    controller, sensor, pump:
        Closed-loop control: the controller sees the sensor's reading every
        ``sensor.sample_time`` and its rates pass through the pump.  Without a sensor the
        controller sees the model's first observation, noise-free, every input period.
    seed:
        Seed of the sensor noise; patient i's noise comes from ``fold_in(seed, i)``.
    record:
        Names to record: states and observations, or ``"all"``.  Default: every observation,
        the sensor reading, and per output interval the amount of every input: rate inputs as
        ``<input>_delivered`` (insulin given, U), amount inputs as ``<input>_announced``
        (carbohydrate announced, g; the model eats it at its own pace).
    dtype:
        ``"float64"`` (default) or ``"float32"`` for throughput.

    Returns
    -------
    Solution
        (N, T) trajectories; see :class:`~medtwin.simulate.Solution`.

    Examples
    --------
    >>> import numpy as np
    >>> from medtwin.models import UvaPadova2008, load_patients
    >>> from medtwin.simulate import Schedule, simulate
    >>> vp = load_patients("adult#001")
    >>> sol = simulate(UvaPadova2008, Schedule().meal(60, 50), np.arange(0, 241, 5.0),
    ...                params=vp.params, x0=vp.x0)
    >>> sol["Gsub"].shape
    (1, 49)
    """
    if isinstance(schedule, (Regimen, DoseTable)):
        return _simulate_doses(
            model, schedule, t, params, x0, solver, (controller, sensor, pump), record,
            patient_ids, chunk_size, dtype,
        )  # fmt: skip
    mdl = _instance(model)
    cls = type(mdl)
    if dtype not in ("float64", "float32"):
        raise ConfigurationError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    schedules = as_schedules(schedule)
    params = dict(params or {})
    x0_in = None if x0 is None else dict(x0)
    n_batch = _batch_size(params, x0_in, schedules, n)
    ids = _patient_ids(patient_ids, n_batch)
    p_full = _full_params(cls, params, n_batch)
    x0_full = _initial_state(mdl, p_full, x0_in, n_batch)
    plan = _plan(mdl, schedules, t, solver, controller, sensor, pump, record)
    t_out, compiled, runner, sensor = plan.t, plan.compiled, plan.runner, plan.sensor
    per_patient_schedule = len(schedules) > 1
    rec_states, rec_obs = plan.loop.rec_states, plan.loop.rec_obs
    ctrl_arrays = _controller_arrays(controller, n_batch)
    size = min(chunk_size or default_chunk_size(), n_batch)
    if size < 1:
        raise ConfigurationError(f"chunk_size must be >= 1, got {chunk_size}")
    np_dtype = np.float32 if dtype == "float32" else np.float64

    values: dict[str, np.ndarray] = {}
    final: dict[str, np.ndarray] = {}

    def run_chunk(start: int) -> int:
        stop = min(start + size, n_batch)
        idx = np.arange(start, start + size).clip(max=n_batch - 1)  # pad with the last patient

        def take(a: np.ndarray) -> np.ndarray:
            return np.asarray(a[idx] if np.ndim(a) else np.full(idx.size, a), dtype=np_dtype)

        def take_sched(a: np.ndarray) -> np.ndarray:
            return np.asarray(a[:, idx] if per_patient_schedule else a, dtype=np_dtype)

        ys, final_x = runner(
            {k: take(v) for k, v in x0_full.items()},
            {k: take(v) for k, v in p_full.items()},
            {k: take_sched(v) for k, v in compiled.base_abs.items()},
            {k: take_sched(v) for k, v in compiled.base_factor.items()},
            {k: take_sched(v) for k, v in compiled.pulse.items()},
            np.int64(seed),
            idx,
            {k: (take(v) if np.ndim(v) else v) for k, v in ctrl_arrays.items()},
            np.float64(t_out[0]),
        )
        m = stop - start
        chunk_ids = ids[start:stop]
        for name, arr in ys.items():
            arr = np.asarray(arr)[:m]
            _check_finite(name, arr, chunk_ids, t_out)
            values[name][start:stop] = arr
        for name, arr in final_x.items():
            arr = np.asarray(arr)[:m]
            _check_finite(f"final {name}", arr, chunk_ids, t_out)
            final[name][start:stop] = arr
        return m

    out_shapes, final_names = _output_layout(cls, sensor, rec_states, rec_obs)
    for name in out_shapes:
        values[name] = np.empty((n_batch, t_out.size), dtype=np_dtype)
    for name in final_names:
        final[name] = np.empty(n_batch, dtype=np_dtype)
    starts = list(range(0, n_batch, size))
    bar = _progress(len(starts), n_batch, size, progress)
    # XLA runs one chunk on one core; chunks on the other cores run in threads (the GIL is
    # released while a compiled call executes).  Each chunk writes its own rows of the output.
    workers = min(len(starts), _workers())
    if workers == 1:
        done: Iterable[int] = map(run_chunk, starts)
    else:
        pool = ThreadPoolExecutor(max_workers=workers)
        done = pool.map(run_chunk, starts)
    try:
        for m in done:
            if bar is not None:
                bar.update(m)
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    if bar is not None:
        bar.close()
    return Solution(
        t=t_out,
        values=values,
        units=out_shapes,
        patient_ids=ids,
        final_state=final,
        time_unit=cls.time_unit,
        model_name=cls.__name__,
    )


def _simulate_doses(
    model: AbstractModel | type[AbstractModel],
    doses: Regimen | DoseTable,
    t: Any,
    params: Mapping[str, Any] | None,
    x0: Mapping[str, Any] | None,
    solver: RK4 | Adaptive | None,
    closed_loop: tuple[Any, ...],
    record: Iterable[str] | str | None,
    patient_ids: Iterable[str] | None,
    chunk_size: int | None,
    dtype: str,
) -> Solution:
    from medtwin.simulate._dosing import simulate_doses

    if any(part is not None for part in closed_loop):
        raise ConfigurationError(
            "a regimen or dose table runs open loop: drop controller, sensor, pump"
        )
    if dtype != "float64":
        raise ConfigurationError("dose events run in float64")
    if solver is not None and not isinstance(solver, RK4):
        raise ConfigurationError(f"dose events run on RK4, got {type(solver).__name__}")
    return simulate_doses(
        model, doses, t, params=params, x0=x0, solver=solver, record=record,
        patient_ids=patient_ids, chunk_size=chunk_size,
    )  # fmt: skip


def trajectory_function(
    model: AbstractModel | type[AbstractModel],
    schedule: Schedule | Iterable[Schedule] | None,
    t: Any,
    *,
    solver: RK4 | Adaptive | None = None,
    controller: Controller | None = None,
    sensor: Sensor | None = None,
    pump: Pump | None = None,
    record: Iterable[str] | str | None = None,
    seed: int = 0,
) -> Callable[[Mapping[str, Array], Mapping[str, Array]], dict[str, Array]]:
    """A pure, differentiable function ``(params, x0) -> {name: (N, T) array}``.

    The same compiled loop as :func:`simulate`, without chunking, validation of values or the
    trip back to NumPy, so it can sit inside ``jax.jit``, ``jax.grad``, ``jax.jacfwd`` or
    ``jax.vmap``: what calibration and filters are built on.  ``params`` must give every model
    parameter and ``x0`` every state (discrete states optional), each as a length-N array; N is
    fixed by the first call (or by a per-patient schedule list).  ``seed`` fixes the sensor noise.

    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from medtwin.models import UvaPadova2008, load_patients
    >>> from medtwin.simulate import Schedule, trajectory_function
    >>> vp = load_patients("adult#001")
    >>> meal = Schedule().meal(30, 50).bolus(30, 5)
    >>> f = trajectory_function(UvaPadova2008, meal, np.arange(0, 181, 5.0))
    >>> p = {k: jnp.asarray(v) for k, v in vp.params.items()}
    >>> x0 = {k: jnp.asarray(v) for k, v in vp.x0.items()}
    >>> mean_bg = lambda vmx: f(p | {"Vmx": vmx}, x0)["Gsub"].mean()
    >>> bool(jax.grad(mean_bg)(p["Vmx"])[0] < 0)  # more insulin sensitivity, lower glucose
    True
    """
    mdl = _instance(model)
    schedules = as_schedules(schedule)
    plan = _plan(mdl, schedules, t, solver, controller, sensor, pump, record)
    sched = {
        "abs": {k: jnp.asarray(v) for k, v in plan.compiled.base_abs.items()},
        "fac": {k: jnp.asarray(v) for k, v in plan.compiled.base_factor.items()},
        "pulse": {k: jnp.asarray(v) for k, v in plan.compiled.pulse.items()},
    }
    names = set(mdl.param_names())

    def trajectories(params: Mapping[str, Array], x0: Mapping[str, Array]) -> dict[str, Array]:
        missing = names - set(params)
        if missing:
            raise ParameterError(
                f"trajectory function needs every parameter; missing {sorted(missing)}"
            )
        p = {k: jnp.asarray(params[k]) for k in mdl.param_names()}
        n_batch = p[mdl.params[0].name].shape[0]
        carrays = _controller_arrays(controller, n_batch)
        ys, _ = plan.runner(
            dict(x0), p, sched["abs"], sched["fac"], sched["pulse"],
            jnp.asarray(seed), jnp.arange(n_batch), carrays, jnp.asarray(plan.t[0]),
        )  # fmt: skip
        return dict(ys)

    return trajectories


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a run needs besides values: the output grid, dense inputs and the compiled loop."""

    t: np.ndarray
    compiled: Any
    runner: Callable[..., Any]
    loop: _Loop
    sensor: Sensor | None


def _instance(model: AbstractModel | type[AbstractModel]) -> AbstractModel:
    mdl = model() if isinstance(model, type) else model
    if not isinstance(mdl, AbstractModel):
        raise ConfigurationError(f"model must be an AbstractModel, got {type(model).__name__}")
    return mdl


def _plan(
    mdl: AbstractModel,
    schedules: list[Schedule],
    t: Any,
    solver: RK4 | Adaptive | None,
    controller: Controller | None,
    sensor: Sensor | None,
    pump: Pump | None,
    record: Iterable[str] | str | None,
) -> _Plan:
    cls = type(mdl)
    solver = RK4() if solver is None else solver
    if not isinstance(solver, (RK4, Adaptive)):
        raise ConfigurationError(f"solver must be RK4 or Adaptive, got {type(solver).__name__}")
    dt = float(solver.dt)
    t_out = _check_grid(t, dt, cls.time_unit)
    t0 = float(t_out[0])
    out_steps = round((t_out[1] - t_out[0]) / dt)
    n_steps = out_steps * (t_out.size - 1)
    if controller is not None and sensor is None:
        sensor = _IdealSensor(cls.observation().name, dt)
    if sensor is not None:
        cls.observation(sensor.observation)  # raises if the model has no such observation
    if controller is not None:
        for name in controller.controls:
            if name not in cls.input_names():
                raise ConfigurationError(
                    f"controller drives {name!r}, which {cls.__name__} has no input for"
                )
    ctrl_steps = out_steps
    if sensor is not None:
        ratio = sensor.sample_time / dt
        if not (ratio >= 1 and abs(ratio - round(ratio)) < 1e-9):
            raise ConfigurationError(
                f"sensor sample time {sensor.sample_time} must be a multiple of the solver step {dt}"
            )
        ctrl_steps = round(ratio)
    tick_steps = math.gcd(out_steps, ctrl_steps)
    rec_states, rec_obs = _record_names(cls, record)
    loop = _Loop(
        tick_steps=tick_steps,
        n_ticks=n_steps // tick_steps,
        ctrl_every=ctrl_steps // tick_steps,
        out_every=out_steps // tick_steps,
        dt=dt,
        rec_states=rec_states,
        rec_obs=rec_obs,
    )
    compiled = compile_schedules(cls, schedules, t0=t0, n_steps=n_steps, dt=dt)
    runner = _runner(mdl, solver, controller, sensor, pump, loop)
    return _Plan(t_out, compiled, runner, loop, sensor)


# ---------------------------------------------------------------------------------------------
# Argument checking
# ---------------------------------------------------------------------------------------------


def _check_grid(t: Any, dt: float, unit: str) -> np.ndarray:
    if t is None:
        raise ConfigurationError("t (the output times) is required, e.g. np.arange(0, 1441, 5)")
    try:
        grid = np.asarray(t, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"t must be an array of numbers: {exc}") from None
    if grid.ndim != 1 or grid.size < 2:
        raise ConfigurationError("t must be a 1-D array of at least two output times")
    if not np.isfinite(grid).all():
        raise ConfigurationError("t contains NaN or infinite times")
    step = np.diff(grid)
    if (step <= 0).any() or not np.allclose(step, step[0], rtol=1e-9, atol=1e-9):
        raise ConfigurationError("t must be strictly increasing and equally spaced")
    ratio = step[0] / dt
    if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-9:
        raise ConfigurationError(
            f"the output spacing {step[0]:g} {unit} must be a multiple of the solver step {dt:g}"
        )
    return grid


def _batch_size(
    params: Mapping[str, Any],
    x0: Mapping[str, Any] | None,
    schedules: list[Schedule],
    n: int | None,
) -> int:
    sizes: dict[str, int] = {}
    for where, mapping in (("params", params), ("x0", x0 or {})):
        for k, v in mapping.items():
            if np.ndim(v) > 1:
                raise ParameterError(
                    f"{where}[{k!r}] must be a scalar or 1-D, got shape {np.shape(v)}"
                )
            if np.ndim(v) == 1:
                sizes[f"{where}[{k!r}]"] = len(v)
    if len(schedules) > 1:
        sizes["schedule"] = len(schedules)
    if n is not None:
        if not (isinstance(n, int) and n >= 1):
            raise ConfigurationError(f"n must be a positive integer, got {n!r}")
        sizes["n"] = n
    distinct = set(sizes.values())
    if len(distinct) > 1:
        detail = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        raise ParameterError(f"batch sizes disagree ({detail}); give every array the same length")
    return distinct.pop() if distinct else 1


def _patient_ids(ids: Iterable[str] | None, n: int) -> tuple[str, ...]:
    if ids is None:
        return tuple(str(i) for i in range(n))
    out = tuple(str(i) for i in ids)
    if len(out) != n:
        raise ParameterError(f"{len(out)} patient_ids given for a batch of {n}")
    return out


def _full_params(
    cls: type[AbstractModel], params: Mapping[str, Any], n: int
) -> dict[str, np.ndarray]:
    declared = set(cls.param_names())
    unknown = set(params) - declared
    if unknown:
        raise ParameterError(
            f"{cls.__name__} has no parameter(s) {sorted(unknown)}; "
            f"known: {', '.join(cls.param_names())}"
        )
    out: dict[str, np.ndarray] = {}
    for decl in cls.params:
        try:
            value = np.asarray(params.get(decl.name, decl.default), dtype=float)
        except (TypeError, ValueError):
            raise ParameterError(f"parameter {decl.name!r} must be numeric") from None
        value = np.broadcast_to(value, (n,)).copy()
        bad = ~np.isfinite(value)
        if bad.any():
            raise ParameterError(
                f"parameter {decl.name!r} is not finite for patient index "
                f"{int(np.flatnonzero(bad)[0])} (value {value[bad][0]}); every parameter needs a number"
            )
        prior = decl.prior
        if prior is not None and not isinstance(prior, Fixed):
            outside = ~np.asarray(prior.contains(value), dtype=bool)
            if outside.any():
                i = int(np.flatnonzero(outside)[0])
                raise ParameterError(
                    f"parameter {decl.name!r} = {value[i]} (patient index {i}) lies outside "
                    f"the support of its prior {prior}"
                )
        out[decl.name] = value
    return out


def _initial_state(
    mdl: AbstractModel,
    p: dict[str, np.ndarray],
    x0: Mapping[str, Any] | None,
    n: int,
) -> dict[str, np.ndarray]:
    names = mdl.state_names()
    discrete = tuple(s.name for s in mdl.discrete_states)
    if x0 is None:
        computed = mdl.initial_state({k: jnp.asarray(v) for k, v in p.items()})
        x0 = {k: np.asarray(v) for k, v in computed.items()}
    missing = [s for s in names if s not in x0]
    unknown = sorted(set(x0) - set(names) - set(discrete))
    if missing or unknown:
        raise ParameterError(
            f"x0 must give every state of {type(mdl).__name__}: "
            + (f"missing {missing}" if missing else "")
            + (f"{'; ' if missing else ''}unknown {unknown}" if unknown else "")
        )
    out = {}
    for s in (*names, *(d for d in discrete if d in x0)):
        v = np.broadcast_to(np.asarray(x0[s], dtype=float), (n,)).copy()
        if not np.isfinite(v).all():
            i = int(np.flatnonzero(~np.isfinite(v))[0])
            raise ParameterError(f"initial state {s!r} is not finite for patient index {i}")
        out[s] = v
    return out


def _record_names(
    cls: type[AbstractModel], record: Iterable[str] | str | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    obs_names = tuple(o.name for o in cls.observations)
    if record is None:
        return (), obs_names
    if record == "all":
        return cls.state_names(), obs_names
    names = [record] if isinstance(record, str) else list(record)
    states = tuple(r for r in names if r in cls.state_names())
    obs = tuple(r for r in names if r in obs_names)
    unknown = [r for r in names if r not in states and r not in obs]
    if unknown:
        raise ConfigurationError(
            f"cannot record {unknown}: {cls.__name__} has states {', '.join(cls.state_names())} "
            f"and observations {', '.join(obs_names)}"
        )
    return states, obs


def _controller_arrays(controller: Controller | None, n: int) -> dict[str, Any]:
    if controller is None:
        return {}
    arrays = dict(controller.arrays(n))
    for k, v in arrays.items():
        if np.ndim(v) == 1 and len(v) != n:
            raise ParameterError(f"controller setting {k!r} has length {len(v)}, batch is {n}")
        if not np.isfinite(np.asarray(v, dtype=float)).all():
            raise ParameterError(f"controller setting {k!r} is not finite")
    return arrays


def _progress(n_chunks: int, n: int, size: int, enabled: bool) -> Any:
    if not enabled or n_chunks < 2:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=n, unit="patient", desc=f"simulating ({n_chunks} chunks of {size})")


def _check_finite(name: str, arr: np.ndarray, ids: tuple[str, ...], t: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0]
        when = f" at t={t[where[1]]:g}" if arr.ndim == 2 else ""
        raise SimulationError(
            f"{name} became non-finite for patient {ids[where[0]]}{when}; check its parameters "
            "and schedule, or use a smaller solver step (RK4(substeps=...))"
        )


def _output_layout(
    cls: type[AbstractModel],
    sensor: Sensor | None,
    rec_states: tuple[str, ...],
    rec_obs: tuple[str, ...],
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Recorded names with their units, and the names of the final (discrete) states."""
    unit_of = {s.name: s.unit for s in cls.states} | {o.name: o.unit for o in cls.observations}
    units = {name: unit_of[name] for name in (*rec_states, *rec_obs)}
    if sensor is not None:
        units["sensor"] = unit_of[sensor.observation]
    for i in cls.inputs:
        suffix = "announced" if i.kind == "amount" else "delivered"
        units[f"{i.name}_{suffix}"] = _integral_unit(i.unit, i.kind, cls.time_unit)
    return units, (*cls.state_names(), *(d.name for d in cls.discrete_states))


def _integral_unit(unit: str, kind: str, time_unit: str) -> str:
    if kind == "amount":
        return unit
    suffix = f"/{time_unit}"
    return unit[: -len(suffix)] if unit.endswith(suffix) else f"{unit}.{time_unit}"


# ---------------------------------------------------------------------------------------------
# The compiled loop
# ---------------------------------------------------------------------------------------------


def _signature(obj: Any) -> Any:
    """A hashable description of a strategy object, with arrays standing in as placeholders."""
    if obj is None:
        return None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return (
            type(obj),
            tuple(
                (f.name, _signature_value(getattr(obj, f.name))) for f in dataclasses.fields(obj)
            ),
        )
    try:
        hash(obj)
    except TypeError:
        return (type(obj), id(obj))
    return obj


def _signature_value(v: Any) -> Any:
    if isinstance(v, (np.ndarray, jax.Array)):
        return ("array", np.shape(v))
    try:
        hash(v)
    except TypeError:
        return ("unhashable", id(v))
    return v


@dataclasses.dataclass(frozen=True, slots=True)
class _Loop:
    """The static shape of a compiled loop (part of the compilation key)."""

    tick_steps: int
    n_ticks: int
    ctrl_every: int
    out_every: int
    dt: float
    rec_states: tuple[str, ...]
    rec_obs: tuple[str, ...]


def _runner(
    mdl: AbstractModel,
    solver: RK4 | Adaptive,
    controller: Controller | None,
    sensor: Sensor | None,
    pump: Pump | None,
    loop: _Loop,
) -> Callable[..., Any]:
    key = (
        type(mdl),
        solver,
        _signature(controller),
        _signature(sensor),
        _signature(pump),
        loop,
    )
    if key not in _RUNNERS:
        _RUNNERS[key] = jax.jit(_build(mdl, solver, controller, sensor, pump, loop))
    return _RUNNERS[key]


def _build(
    mdl: AbstractModel,
    solver: RK4 | Adaptive,
    controller: Controller | None,
    sensor: Sensor | None,
    pump: Pump | None,
    loop: _Loop,
) -> Callable[..., Any]:
    tick_steps, n_ticks, ctrl_every, dt = (
        loop.tick_steps,
        loop.n_ticks,
        loop.ctrl_every,
        loop.dt,
    )
    n_samples = n_ticks // ctrl_every + 1
    rec_states, rec_obs = loop.rec_states, loop.rec_obs
    cls = type(mdl)
    inputs = cls.inputs
    controlled = tuple(controller.controls) if controller is not None else ()
    amount_inputs = tuple(i.name for i in inputs if i.kind == "amount")
    observations = {o.name: o for o in cls.observations}
    sensed = observations[sensor.observation] if sensor is not None else None
    period = ctrl_every * tick_steps * dt

    def run(
        x0: dict[str, Array],
        p: dict[str, Array],
        base_abs: dict[str, Array],
        base_fac: dict[str, Array],
        pulse: dict[str, Array],
        seed: Array,
        idx: Array,
        carrays: dict[str, Array],
        t0: Array,
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        zeros = jnp.zeros_like(x0[cls.states[0].name])
        p = mdl.with_derived(p)  # parameter-only terms leave the time loop
        if sensor is not None:
            # patient i's noise depends on (seed, i) only, never on the chunking
            key = jax.random.PRNGKey(seed)
            keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(idx)
            noise = jax.vmap(lambda k: sensor.noise(k, n_samples), out_axes=1)(keys)
            noise = noise.astype(zeros.dtype)
        default_u = mdl.default_inputs(p)
        # discrete states given with x0 (continuing a run) override the model's initial ones
        z0 = mdl.initial_discrete_state(x0, p) | {
            d.name: x0[d.name] for d in cls.discrete_states if d.name in x0
        }
        x0 = {s.name: x0[s.name] for s in cls.states}

        def one_period(carry: Any, s: Array) -> tuple[Any, None]:
            x, z, uc, acc = carry
            u = {}
            for inp in inputs:
                name = inp.name
                base = (
                    uc[name]
                    if name in controlled
                    else base_abs[name][s] + base_fac[name][s] * default_u[name]
                )
                u[name] = base + pulse[name][s]
            t = t0 + s * dt
            u_eff, z = mdl.discrete_update(t, x, z, p, u)
            x = solver.advance(mdl, t, x, p, u_eff)
            acc = {
                i.name: acc[i.name] + (u[i.name] if i.kind == "amount" else u[i.name] * dt)
                for i in inputs
            }
            return (x, z, uc, acc), None

        def sample(x: dict[str, Array], k: Array, cs: Any, ann: Any) -> tuple[Any, ...]:
            assert sensor is not None and sensed is not None
            reading = sensor.read(sensed.evaluate(x, p), noise[k // ctrl_every])
            if controller is None:
                return reading, {}, cs, ann
            obs = ControlObservation(t0 + k * tick_steps * dt, reading, ann, period)
            rates, cs = controller.step(obs, cs, carrays)
            if pump is not None:
                rates = pump.deliver(rates)
            uc = {name: jnp.broadcast_to(rates[name], zeros.shape) for name in controlled}
            return reading, uc, cs, {name: zeros for name in amount_inputs}

        def one_tick(carry: Any, k: Array) -> tuple[Any, Any]:
            x, z, uc, cs, ann, reading = carry
            if sensor is not None:
                if ctrl_every == 1:
                    reading, uc_new, cs, ann = sample(x, k, cs, ann)
                else:
                    reading, uc_new, cs, ann = jax.lax.cond(
                        k % ctrl_every == 0,
                        lambda args: sample(x, k, args[0], args[1]),
                        lambda args: (reading, {n: uc[n] for n in controlled}, args[0], args[1]),
                        (cs, ann),
                    )
                uc = uc_new if controller is not None else uc
            rec = {s: x[s] for s in rec_states} | {
                o: observations[o].evaluate(x, p) for o in rec_obs
            }
            if sensor is not None:
                rec["sensor"] = reading
            acc0 = {i.name: zeros for i in inputs}
            steps = k * tick_steps + jnp.arange(tick_steps)
            (x, z, uc, acc), _ = jax.lax.scan(one_period, (x, z, uc, acc0), steps)
            for i in inputs:
                suffix = "announced" if i.kind == "amount" else "delivered"
                rec[f"{i.name}_{suffix}"] = acc[i.name]
            ann = {name: ann[name] + acc[name] for name in amount_inputs}
            return (x, z, uc, cs, ann, reading), rec

        cs0 = controller.init(carrays) if controller is not None else {}
        uc0 = {name: zeros for name in controlled}
        ann0 = {name: zeros for name in amount_inputs}
        carry0 = (x0, z0, uc0, cs0, ann0, zeros)
        (xf, zf, *_), ys = jax.lax.scan(one_tick, carry0, jnp.arange(n_ticks))
        # append the state at the final time so outputs cover t[0] .. t[-1] inclusive
        last = {s: xf[s] for s in rec_states} | {
            o: observations[o].evaluate(xf, p) for o in rec_obs
        }
        if sensor is not None:
            final_k = jnp.asarray(n_ticks)
            last_reading = jnp.where(
                final_k % ctrl_every == 0,
                sensor.read(sensed.evaluate(xf, p), noise[final_k // ctrl_every])
                if sensed
                else zeros,
                ys["sensor"][-1],
            )
            last["sensor"] = last_reading
        # (ticks, N) -> (N, T): sample every out_every ticks; amounts summed per output interval
        out = {}
        every = loop.out_every
        for name, arr in ys.items():
            if name.endswith(("_delivered", "_announced")):
                summed = arr.reshape(n_ticks // every, every, -1).sum(axis=1)
                out[name] = jnp.concatenate([summed, jnp.zeros_like(summed[:1])], axis=0).T
            else:
                out[name] = jnp.concatenate([arr[::every], last[name][None]], axis=0).T
        return out, xf | zf

    return run
