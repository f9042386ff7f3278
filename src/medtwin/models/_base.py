"""The model declaration API: states, parameters, inputs, observations and the right-hand side.

A physiology model is data plus one function.  A subclass of :class:`AbstractModel` declares

- ``states``: :class:`State` entries (name, unit), integrated by the engine;
- ``params``: :class:`Param` entries (name, unit, default, population prior);
- ``inputs``: :class:`Input` entries (meals, insulin, drug doses), held constant over each input period;
- ``observations``: :class:`Observation` entries, what a sensor sees and with which noise;
- ``rhs(t, x, p, u)``: the time derivative of every state, written over a *structure of arrays*
  (``x["Gp"]`` is an array of length N, one entry per patient), so one call advances a whole batch.

Models with discrete bookkeeping between input periods (the UVA/Padova meal model tracks how much
of the current meal has been eaten) also declare ``discrete_states`` and override
:meth:`AbstractModel.discrete_update`.

The declaration is checked when the class is defined: duplicate names, unknown units, a default
outside its prior's support, or a missing ``rhs`` raise :class:`~medtwin.errors.ModelDefinitionError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import jax.numpy as jnp
import numpy as np

from medtwin.errors import ModelDefinitionError, ParameterError
from medtwin.units import UnitError, parse_unit

__all__ = [
    "AbstractModel",
    "Additive",
    "Array",
    "Combined",
    "Fixed",
    "Input",
    "LogNormal",
    "NoiseModel",
    "Normal",
    "Observation",
    "Param",
    "Prior",
    "Proportional",
    "State",
    "Uniform",
]

Array = Any  # a jax or numpy array; kept loose so model files stay readable


# ---------------------------------------------------------------------------------------------
# Population priors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Log-normal prior: ``log(theta) ~ Normal(log(median), sigma)``."""

    median: float
    sigma: float

    def __post_init__(self) -> None:
        if not (self.median > 0 and math.isfinite(self.median)):
            raise ModelDefinitionError(f"LogNormal median must be > 0, got {self.median!r}")
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ModelDefinitionError(f"LogNormal sigma must be > 0, got {self.sigma!r}")

    def contains(self, value: Any) -> Any:
        """Whether ``value`` (a number or an array) lies in the support."""
        return np.isfinite(value) & (np.asarray(value) > 0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values."""
        return self.median * np.exp(self.sigma * rng.standard_normal(n))

    def logpdf(self, value: Array) -> Array:
        """Log density at ``value`` (natural scale)."""
        z = (jnp.log(value) - math.log(self.median)) / self.sigma
        return -0.5 * z**2 - jnp.log(value * self.sigma * math.sqrt(2 * math.pi))


@dataclass(frozen=True, slots=True)
class Normal:
    """Normal prior, optionally truncated to ``[low, high]``."""

    mean: float
    sd: float
    low: float = -math.inf
    high: float = math.inf

    def __post_init__(self) -> None:
        if not (self.sd > 0 and math.isfinite(self.sd)):
            raise ModelDefinitionError(f"Normal sd must be > 0, got {self.sd!r}")
        if not self.low < self.high:
            raise ModelDefinitionError(f"Normal bounds must satisfy low < high, got {self}")

    def contains(self, value: Any) -> Any:
        """Whether ``value`` (a number or an array) lies in the support."""
        v = np.asarray(value)
        return np.isfinite(v) & (v >= self.low) & (v <= self.high)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values (rejection for the truncation)."""
        out = self.mean + self.sd * rng.standard_normal(n)
        bad = (out < self.low) | (out > self.high)
        while bad.any():
            out[bad] = self.mean + self.sd * rng.standard_normal(int(bad.sum()))
            bad = (out < self.low) | (out > self.high)
        return out

    def logpdf(self, value: Array) -> Array:
        """Log density at ``value`` (untruncated normalisation)."""
        z = (value - self.mean) / self.sd
        return -0.5 * z**2 - math.log(self.sd * math.sqrt(2 * math.pi))


@dataclass(frozen=True, slots=True)
class Uniform:
    """Uniform prior on ``[low, high]``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ModelDefinitionError(f"Uniform needs finite low < high, got {self}")

    def contains(self, value: Any) -> Any:
        """Whether ``value`` (a number or an array) lies in the support."""
        v = np.asarray(value)
        return (v >= self.low) & (v <= self.high)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values."""
        return rng.uniform(self.low, self.high, n)

    def logpdf(self, value: Array) -> Array:
        """Log density at ``value``."""
        inside = (value >= self.low) & (value <= self.high)
        return jnp.where(inside, -math.log(self.high - self.low), -jnp.inf)


@dataclass(frozen=True, slots=True)
class Fixed:
    """No population variability: the parameter is a constant of the model."""

    value: float

    def contains(self, value: Any) -> Any:
        """Whether ``value`` (a number or an array) equals the fixed value."""
        return np.asarray(value) == self.value

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Return ``n`` copies of the value."""
        return np.full(n, self.value)

    def logpdf(self, value: Array) -> Array:
        """Zero: a fixed parameter adds nothing to a posterior."""
        return jnp.zeros_like(value)


Prior = LogNormal | Normal | Uniform | Fixed


# ---------------------------------------------------------------------------------------------
# Observation noise
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Additive:
    """Additive Gaussian noise, ``y = f + sd * e``."""

    sd: float

    def scale(self, f: Array) -> Array:
        """Standard deviation of the noise at prediction ``f``."""
        return jnp.full_like(f, self.sd)


@dataclass(frozen=True, slots=True)
class Proportional:
    """Proportional Gaussian noise, ``y = f * (1 + cv * e)``."""

    cv: float

    def scale(self, f: Array) -> Array:
        """Standard deviation of the noise at prediction ``f``."""
        return self.cv * jnp.abs(f)


@dataclass(frozen=True, slots=True)
class Combined:
    """Combined additive and proportional noise, ``sd^2 + (cv f)^2``."""

    sd: float
    cv: float

    def scale(self, f: Array) -> Array:
        """Standard deviation of the noise at prediction ``f``."""
        return jnp.sqrt(self.sd**2 + (self.cv * f) ** 2)


NoiseModel = Additive | Proportional | Combined


# ---------------------------------------------------------------------------------------------
# Declarations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class State:
    """A state variable integrated by the engine."""

    name: str
    unit: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Param:
    """A model parameter with its unit, default value and population prior."""

    name: str
    unit: str
    default: float
    prior: Prior | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Input:
    """An exogenous input, held constant over each input period.

    ``kind="rate"`` inputs are rates (U/min of insulin); a bolus of amount A is delivered as A/dt
    over one input period.  ``kind="amount"`` inputs are quantities handed over in one period (the
    grams of a meal announced at that minute); the model's :meth:`AbstractModel.discrete_update`
    turns them into rates.  ``role`` lets a schedule address an input by meaning (``"meal"``,
    ``"insulin"``, ``"dose"``) instead of by the model's name for it.
    """

    name: str
    unit: str
    kind: Literal["rate", "amount"] = "rate"
    role: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """What a sensor sees: a state (by name) or an expression of the state and parameters."""

    name: str
    unit: str
    expr: str | Callable[[Mapping[str, Array], Mapping[str, Array]], Array]
    noise: NoiseModel | None = None
    description: str = ""

    def evaluate(self, x: Mapping[str, Array], p: Mapping[str, Array]) -> Array:
        """The noise-free observation for a batch."""
        if isinstance(self.expr, str):
            return x[self.expr]
        return self.expr(x, p)


# ---------------------------------------------------------------------------------------------
# The model base class
# ---------------------------------------------------------------------------------------------


class AbstractModel:
    """Base of every physiology model; subclasses declare and implement ``rhs``.

    Instances are cheap and stateless; the class attributes are the declaration.

    >>> from medtwin.models import ALL_MODELS
    >>> all(issubclass(m, AbstractModel) for m in ALL_MODELS)
    True
    """

    name: ClassVar[str] = ""
    time_unit: ClassVar[str] = "min"
    reference: ClassVar[str] = ""
    states: ClassVar[tuple[State, ...]] = ()
    params: ClassVar[tuple[Param, ...]] = ()
    inputs: ClassVar[tuple[Input, ...]] = ()
    observations: ClassVar[tuple[Observation, ...]] = ()
    discrete_states: ClassVar[tuple[State, ...]] = ()

    _param_index: ClassVar[dict[str, Param]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("__abstract__", False):
            return
        _check_declaration(cls)
        cls._param_index = {p.name: p for p in cls.params}

    # -- the physics ---------------------------------------------------------------------------

    def rhs(
        self,
        t: Array,
        x: Mapping[str, Array],
        p: Mapping[str, Array],
        u: Mapping[str, Array],
    ) -> dict[str, Array]:
        """Time derivative of every state, per unit of ``time_unit``."""
        raise NotImplementedError

    def discrete_update(
        self,
        t: Array,
        x: Mapping[str, Array],
        z: Mapping[str, Array],
        p: Mapping[str, Array],
        u: Mapping[str, Array],
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        """Map this period's inputs to the rates the ODE sees, updating discrete states ``z``.

        Called once at the start of every input period.  The default passes inputs through.
        """
        return dict(u), dict(z)

    def derived(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """Quantities that depend on parameters only, computed once before the time loop.

        ``rhs``, ``discrete_update`` and observations receive ``p`` merged with these (see
        :meth:`with_derived`), so a model can name a micro-constant once instead of recomputing
        it in every stage of every step.  The default derives nothing.
        """
        return {}

    def with_derived(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """``p`` plus :meth:`derived` quantities: what ``rhs`` is called with."""
        return {**p, **self.derived(p)}

    def default_inputs(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """Baseline value of every input when a schedule sets none (zero unless overridden)."""
        return {i.name: jnp.zeros_like(next(iter(p.values()))) for i in self.inputs}

    def initial_state(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """Initial state for parameters ``p`` (a model without a natural one raises)."""
        raise ParameterError(
            f"{type(self).__name__} has no default initial state; pass x0= to simulate()"
        )

    def initial_discrete_state(
        self, x: Mapping[str, Array], p: Mapping[str, Array]
    ) -> dict[str, Array]:
        """Initial discrete states (zeros unless overridden)."""
        like = next(iter(x.values()))
        return {s.name: jnp.zeros_like(like) for s in self.discrete_states}

    # -- declarations as data ------------------------------------------------------------------

    @classmethod
    def state_names(cls) -> tuple[str, ...]:
        """Names of the states, in declaration order."""
        return tuple(s.name for s in cls.states)

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """Names of the parameters, in declaration order."""
        return tuple(p.name for p in cls.params)

    @classmethod
    def input_names(cls) -> tuple[str, ...]:
        """Names of the inputs, in declaration order."""
        return tuple(i.name for i in cls.inputs)

    @classmethod
    def param(cls, name: str) -> Param:
        """The declaration of parameter ``name``."""
        try:
            return cls._param_index[name]
        except KeyError:
            raise ParameterError(
                f"{cls.__name__} has no parameter {name!r}; it has {', '.join(cls.param_names())}"
            ) from None

    @classmethod
    def input_for(cls, role_or_name: str) -> Input:
        """The input with this name or role."""
        for i in cls.inputs:
            if role_or_name in (i.name, i.role):
                return i
        raise ParameterError(
            f"{cls.__name__} has no input named or playing the role {role_or_name!r}; "
            f"its inputs are {', '.join(f'{i.name} ({i.role or i.kind})' for i in cls.inputs)}"
        )

    @classmethod
    def observation(cls, name: str | None = None) -> Observation:
        """The observation ``name`` (the first one when ``name`` is None)."""
        if name is None:
            return cls.observations[0]
        for o in cls.observations:
            if o.name == name:
                return o
        raise ParameterError(
            f"{cls.__name__} has no observation {name!r}; "
            f"it has {', '.join(o.name for o in cls.observations)}"
        )

    @classmethod
    def defaults(cls) -> dict[str, float]:
        """The default value of every parameter."""
        return {p.name: p.default for p in cls.params}

    @classmethod
    def sample_params(cls, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Draw ``n`` independent parameter vectors from the population priors.

        Parameters without a prior take their default.  Correlated sampling belongs to
        ``medtwin.trials``; this is the independent-marginals baseline.
        """
        rng = np.random.default_rng(seed)
        return {
            p.name: (p.prior.sample(rng, n) if p.prior is not None else np.full(n, p.default))
            for p in cls.params
        }

    @classmethod
    def describe(cls) -> str:
        """A plain-text summary of the declaration, for ``medtwin models``."""
        lines = [f"{cls.__name__}  ({cls.name}; time in {cls.time_unit})"]
        if cls.reference:
            lines.append(f"  reference: {cls.reference}")
        lines.append(f"  states ({len(cls.states)}):")
        lines += [f"    {s.name:<10} [{s.unit}]  {s.description}" for s in cls.states]
        lines.append(f"  parameters ({len(cls.params)}):")
        for p in cls.params:
            prior = "" if p.prior is None else f"  prior {p.prior}"
            lines.append(f"    {p.name:<10} = {p.default:<12.6g} [{p.unit}]{prior}")
        lines.append("  inputs:")
        lines += [
            f"    {i.name:<10} [{i.unit}] {i.kind}{' (' + i.role + ')' if i.role else ''}"
            for i in cls.inputs
        ]
        lines.append("  observations:")
        lines += [f"    {o.name:<10} [{o.unit}]  {o.description}" for o in cls.observations]
        return "\n".join(lines)


def _check_declaration(cls: type[AbstractModel]) -> None:
    where = cls.__name__
    if cls.rhs is AbstractModel.rhs:
        raise ModelDefinitionError(f"{where} does not implement rhs(t, x, p, u)")
    if not cls.states:
        raise ModelDefinitionError(f"{where} declares no states")
    groups: dict[str, tuple[Any, ...]] = {
        "states": cls.states,
        "params": cls.params,
        "inputs": cls.inputs,
        "observations": cls.observations,
        "discrete_states": cls.discrete_states,
    }
    expected_type: dict[str, type[State | Param | Input | Observation]] = {
        "states": State,
        "params": Param,
        "inputs": Input,
        "observations": Observation,
        "discrete_states": State,
    }
    seen: dict[str, str] = {}
    for group, items in groups.items():
        if not isinstance(items, tuple):
            raise ModelDefinitionError(
                f"{where}.{group} must be a tuple, got {type(items).__name__}"
            )
        item: State | Param | Input | Observation
        for item in items:
            if not isinstance(item, expected_type[group]):
                raise ModelDefinitionError(
                    f"{where}.{group} holds {item!r}; expected {expected_type[group].__name__}"
                )
            if not item.name.isidentifier():
                raise ModelDefinitionError(f"{where}: {item.name!r} is not a valid identifier")
            if item.name in seen:
                raise ModelDefinitionError(
                    f"{where}: name {item.name!r} is declared twice ({seen[item.name]} and {group})"
                )
            seen[item.name] = group
            try:
                parse_unit(item.unit)
            except UnitError as exc:
                raise ModelDefinitionError(f"{where}.{item.name}: {exc}") from exc
    try:
        parse_unit(cls.time_unit)
    except UnitError as exc:
        raise ModelDefinitionError(f"{where}.time_unit: {exc}") from exc
    for p in cls.params:
        if not math.isfinite(p.default):
            raise ModelDefinitionError(f"{where}.{p.name}: default {p.default!r} is not finite")
        if p.prior is not None and not bool(p.prior.contains(p.default)):
            raise ModelDefinitionError(
                f"{where}.{p.name}: default {p.default!r} lies outside its prior {p.prior}"
            )
    state_names = {s.name for s in cls.states}
    for o in cls.observations:
        if isinstance(o.expr, str) and o.expr not in state_names:
            raise ModelDefinitionError(
                f"{where}.observations[{o.name!r}] refers to unknown state {o.expr!r}"
            )
    roles = [i.role for i in cls.inputs if i.role]
    if len(roles) != len(set(roles)):
        raise ModelDefinitionError(f"{where}: two inputs share a role ({roles})")
