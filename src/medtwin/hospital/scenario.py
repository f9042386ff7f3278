"""What-if scenarios: small declarative changes applied to a hospital.

A :class:`Scenario` (or the same as a dict, e.g. from YAML) names what changes:

- ``beds`` (unit -> beds) and ``extra_beds`` (unit -> +/- beds);
- ``roster`` (resource -> a new :class:`~medtwin.hospital.spec.Resource`) and ``extra_staff``
  (resource -> +/- staff at every hour, floored at 0);
- ``surge``: ED arrivals times ``multiplier`` from hour ``from_h`` to ``to_h`` of the run
  (to the end when omitted); the baseline patients stay, extra ones are added (or some
  baseline patients stay away when the multiplier is below 1);
- ``los_multiplier``: lengths of stay times a factor (one for all units, or per unit);
- ``discharge_lounge``: a :class:`~medtwin.hospital.spec.Lounge` (patients going home leave
  their bed for the lounge as soon as ready);
- ``discharge_shift_h``: every discharge home ``h`` hours earlier (negative; never before the
  patient is medically ready) or later, the same patients on the same days; and/or a new
  ``discharge_profile`` (24 hourly weights).

Scenarios are compared with their baseline on common random numbers: see
:func:`medtwin.hospital.compare`.

>>> from medtwin.hospital import load_hospital
>>> spec = Scenario(name="+20 medical beds", extra_beds={"medicine": 20}).apply(
...     load_hospital("example_hospital"))
>>> spec.units["medicine"].beds
199
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator

from medtwin.errors import ConfigurationError
from medtwin.hospital.spec import (
    HospitalSpec,
    Lounge,
    NonNegative,
    Positive,
    Resource,
    _Spec,
    validation_message,
)

__all__ = ["Scenario", "Surge", "as_scenario"]


class Surge(_Spec):
    """ED arrivals times ``multiplier`` from hour ``from_h`` (of the run) to ``to_h``."""

    multiplier: Positive
    from_h: NonNegative = 0.0
    to_h: Positive | None = None

    @model_validator(mode="after")
    def _window(self) -> Surge:
        if self.to_h is not None and self.to_h <= self.from_h:
            raise ValueError(f"to_h ({self.to_h}) must be after from_h ({self.from_h})")
        return self


class Scenario(_Spec):
    """A what-if: changes to beds, rosters, arrivals, length of stay and discharge."""

    name: str = "scenario"
    beds: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    extra_beds: dict[str, int] = Field(default_factory=dict)
    roster: dict[str, Resource] = Field(default_factory=dict)
    extra_staff: dict[str, int] = Field(default_factory=dict)
    surge: Surge | None = None
    los_multiplier: Positive | dict[str, Positive] = 1.0
    discharge_lounge: Lounge | None = None
    discharge_shift_h: float = Field(0.0, ge=-12, le=12)
    discharge_profile: list[NonNegative] | None = Field(None, min_length=24, max_length=24)

    def apply(self, spec: HospitalSpec) -> HospitalSpec:
        """The hospital with this scenario's beds, rosters, lounge and discharge profile.

        Arrival surges, LOS multipliers and discharge shifts act in the model
        (:func:`~medtwin.hospital.simulate`), on the same random draws as the baseline.
        """
        problems = []
        units = spec.units
        resources = spec.ed.resources if spec.ed is not None else {}
        for field in ("beds", "extra_beds"):
            for u in getattr(self, field):
                if u not in units:
                    problems.append(
                        f"{field}.{u}: unknown unit (known: {', '.join(units) or 'none'})"
                    )
        if isinstance(self.los_multiplier, dict):
            for u in self.los_multiplier:
                if u not in units:
                    problems.append(f"los_multiplier.{u}: unknown unit")
        for field in ("roster", "extra_staff"):
            for r in getattr(self, field):
                if r not in resources:
                    problems.append(
                        f"{field}.{r}: unknown resource (known: {', '.join(resources) or 'none'})"
                    )
        if self.surge is not None and spec.ed is None:
            problems.append("surge: the hospital has no ED")
        if problems:
            raise ConfigurationError(f"scenario {self.name!r}:\n" + "\n".join(problems))
        data = spec.model_dump(mode="json", exclude_none=True)
        for u, unit in data["units"].items():
            unit["beds"] = self.beds.get(u, unit["beds"]) + self.extra_beds.get(u, 0)
        if spec.ed is not None:
            res = data["ed"]["resources"]
            for r, new in self.roster.items():
                res[r] = new.model_dump(mode="json", exclude_none=True)
            for r, extra in self.extra_staff.items():
                res[r]["adjust"] = res[r].get("adjust", 0) + extra
        if self.discharge_lounge is not None:
            data["lounge"] = self.discharge_lounge.model_dump(mode="json")
        if self.discharge_profile is not None:
            data["discharge"] = {"hour_profile": list(self.discharge_profile)}
        try:
            return HospitalSpec.model_validate(data)
        except ValidationError as exc:
            raise ConfigurationError(
                f"scenario {self.name!r} makes hospital {spec.name!r} invalid:\n"
                f"{validation_message(exc)}"
            ) from None

    def surge_window(self, horizon_min: float) -> tuple[float, float, float] | None:
        """``(multiplier, from_min, to_min)`` of the arrival surge, if any."""
        if self.surge is None or self.surge.multiplier == 1:
            return None
        to = horizon_min if self.surge.to_h is None else self.surge.to_h * 60
        return self.surge.multiplier, self.surge.from_h * 60, min(to, horizon_min)

    def los_multipliers(self, spec: HospitalSpec) -> dict[str, float]:
        """Length-of-stay factor for every unit."""
        m = self.los_multiplier
        if isinstance(m, dict):
            return {u: float(m.get(u, 1.0)) for u in spec.units}
        return {u: float(m) for u in spec.units}


def as_scenario(value: Scenario | Mapping[str, Any] | None) -> Scenario | None:
    """A :class:`Scenario` from itself, a dict, or None.

    A bad dict raises :class:`~medtwin.errors.ConfigurationError` naming the field.
    """
    if value is None or isinstance(value, Scenario):
        return value
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"a scenario is a Scenario or a dict, got {type(value).__name__}")
    try:
        return Scenario.model_validate(dict(value))
    except ValidationError as exc:
        name = value.get("name", "scenario")
        raise ConfigurationError(f"invalid scenario {name!r}:\n{validation_message(exc)}") from None
