"""Basal-bolus therapy: steady basal insulin plus a meal bolus, as simglucose's ``BBController``.

At the start of every control period of length ``T`` (min), with ``G`` the sensor reading (mg/dL)
and ``CHO`` the carbohydrate announced during the previous period (g)::

    bolus = CHO / CR + [G > threshold] (G - target) / CF   if CHO > 0, else 0      (U)
    rate  = basal + bolus / T                                                       (U/min)

simglucose 0.2.11 computes ``meal * sample_time / CR`` from the meal rate in g/min over its
sample time, which is the same carbohydrate in grams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import jax.numpy as jnp

from medtwin.control._settings import Setting, broadcast, normalise, value_key
from medtwin.errors import ConfigurationError
from medtwin.models._base import Array

if TYPE_CHECKING:
    from medtwin.models.uva_padova import VirtualPatients
    from medtwin.simulate import ControlObservation

__all__ = ["BasalBolus"]

_SETTINGS = (
    "basal_u_per_min",
    "carb_ratio_g_per_u",
    "correction_factor_mg_dl_per_u",
    "target_mg_dl",
    "correction_threshold_mg_dl",
)


@dataclass(frozen=True, slots=True, eq=False)
class BasalBolus:
    """A patient's basal-bolus therapy; every setting is a scalar or one value per patient.

    ``meal_input`` names the announced model input the carbohydrate ratio applies to.

    >>> import jax.numpy as jnp
    >>> from medtwin.control import BasalBolus
    >>> from medtwin.simulate import ControlObservation
    >>> ctrl = BasalBolus(0.02, carb_ratio_g_per_u=10.0, correction_factor_mg_dl_per_u=40.0)
    >>> arrays = ctrl.arrays(2)
    >>> obs = ControlObservation(
    ...     t=jnp.asarray(0.0),
    ...     glucose=jnp.array([180.0, 180.0]),
    ...     announced={"cho": jnp.array([0.0, 50.0])},
    ...     period=1.0,
    ... )
    >>> rates, state = ctrl.step(obs, ctrl.init(arrays), arrays)
    >>> rates["insulin"].tolist()  # 50 g / 10 g/U + (180 - 140) / 40 mg/dL/U = 6 U in 1 min
    [0.02, 6.02]
    """

    basal_u_per_min: Setting
    carb_ratio_g_per_u: Setting
    correction_factor_mg_dl_per_u: Setting
    target_mg_dl: Setting = 140.0
    correction_threshold_mg_dl: Setting = 150.0
    meal_input: str = "cho"

    controls: ClassVar[tuple[str, ...]] = ("insulin",)

    def __post_init__(self) -> None:
        # Basal may be 0 (a pump suspended); the ratios divide, so they must be positive.
        for name in _SETTINGS:
            positive = name in ("carb_ratio_g_per_u", "correction_factor_mg_dl_per_u")
            low = 0.0 if positive or name == "basal_u_per_min" else None
            value = normalise("BasalBolus", name, getattr(self, name), minimum=low, strict=positive)
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return value_key(self) == value_key(other)

    def __hash__(self) -> int:
        return hash(value_key(self))

    @classmethod
    def for_patients(cls, patients: VirtualPatients, target_mg_dl: float = 140.0) -> BasalBolus:
        """Build the therapy of virtual patients: steady-state basal, their CR and CF.

        >>> from medtwin.models import load_patients
        >>> ctrl = BasalBolus.for_patients(load_patients("adults"))
        >>> ctrl.arrays(10)["carb_ratio_g_per_u"].shape
        (10,)
        """
        return cls(
            basal_u_per_min=patients.basal_u_per_min,
            carb_ratio_g_per_u=patients.carb_ratio_g_per_u,
            correction_factor_mg_dl_per_u=patients.correction_factor_mg_dl_per_u,
            target_mg_dl=target_mg_dl,
        )

    def arrays(self, n: int) -> dict[str, Array]:
        """Return the settings as length-``n`` arrays."""
        return {name: broadcast("BasalBolus", name, getattr(self, name), n) for name in _SETTINGS}

    def init(self, arrays: Mapping[str, Array]) -> dict[str, Array]:
        """No state: the policy looks only at the current reading and announcement."""
        return {}

    def step(
        self,
        obs: ControlObservation,
        state: Mapping[str, Array],
        arrays: Mapping[str, Array],
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        """Basal plus the bolus for the carbohydrate announced in the previous period."""
        if self.meal_input not in obs.announced:
            raise ConfigurationError(
                f"BasalBolus doses for the announced input {self.meal_input!r}, but the model "
                f"announces {', '.join(obs.announced) or 'nothing'}; set meal_input="
            )
        glucose = obs.glucose
        cho = obs.announced[self.meal_input]
        correction = jnp.where(
            glucose > arrays["correction_threshold_mg_dl"],
            (glucose - arrays["target_mg_dl"]) / arrays["correction_factor_mg_dl_per_u"],
            0.0,
        )
        bolus_u = jnp.where(cho > 0, cho / arrays["carb_ratio_g_per_u"] + correction, 0.0)
        return {"insulin": arrays["basal_u_per_min"] + bolus_u / obs.period}, {}
