r"""UVA/Padova 2008 type-1 diabetes simulator (Dalla Man et al. 2007; Kovatchev et al. 2009).

The 13-state glucose-insulin model of the academic UVA/Padova simulator, exactly as implemented in
simglucose 0.2.11 (``simglucose/patient/t1dpatient.py``, J. Xie, MIT licence), meal handling
included.  Time is in minutes.

Equations (``x`` are the states below, ``u`` insulin in pmol/kg/min, ``d`` carbohydrate in mg/min)::

    Gastro-intestinal tract (Dalla Man 2006):
      dQsto1/dt = -kmax Qsto1 + d
      dQsto2/dt =  kmax Qsto1 - kgut Qsto2
      dQgut/dt  =  kgut Qsto2 - kabs Qgut
      kgut = kmin + (kmax - kmin)/2 [tanh(a (Qsto - b D)) - tanh(c (Qsto - d D)) + 2]
      a = 5 / (2 D (1 - b)),  c = 5 / (2 D d),  Qsto = Qsto1 + Qsto2
      D = Qsto at the start of the meal + carbohydrate eaten since (mg)
      Ra = f kabs Qgut / BW
    Glucose:
      EGP = max(kp1 - kp2 Gp - kp3 Id, 0)
      E   = ke1 (Gp - ke2) if Gp > ke2 else 0
      dGp/dt = EGP + Ra - Fsnc - E - k1 Gp + k2 Gt
      dGt/dt = -(Vm0 + Vmx X) Gt / (Km0 + Gt) + k1 Gp - k2 Gt
    Insulin:
      dIp/dt = -(m2 + m4) Ip + m1 Il + ka1 Isc1 + ka2 Isc2,    I = Ip / Vi
      dX/dt  = -p2u X + p2u (I - Ib)
      dI1/dt = -ki (I1 - I),   dId/dt = -ki (Id - I1)
      dIl/dt = -(m1 + m30) Il + m2 Ip
      dIsc1/dt = u - (ka1 + kd) Isc1,   dIsc2/dt = kd Isc1 - ka2 Isc2
    Subcutaneous glucose (what a CGM sees):
      dGs/dt = -ksc Gs + ksc Gp,   Gsub = Gs / Vg   (mg/dL)

As in simglucose, the derivative of a non-negative state is zeroed while that state is negative, and
a meal announced at minute t is eaten at 5 g/min from that minute on.

References
----------
- C. Dalla Man, R. A. Rizza, C. Cobelli. Meal simulation model of the glucose-insulin system.
  IEEE Trans Biomed Eng 54(10):1740-1749, 2007.
- B. P. Kovatchev, M. Breton, C. Dalla Man, C. Cobelli. In silico preclinical trials: a proof of
  concept in closed-loop control of type 1 diabetes. J Diabetes Sci Technol 3(1):44-55, 2009.
- J. Xie. Simglucose v0.2.1 (2018), https://github.com/jxx123/simglucose (patient parameters).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
import pandas as pd

from medtwin.errors import UnknownPatientError
from medtwin.models._base import (
    AbstractModel,
    Array,
    Fixed,
    Input,
    LogNormal,
    Observation,
    Param,
    State,
)

__all__ = [
    "EAT_RATE_G_PER_MIN",
    "UvaPadova2008",
    "VirtualPatients",
    "load_patients",
    "patient_names",
]

EAT_RATE_G_PER_MIN = 5.0
"""How fast an announced meal is eaten (simglucose's ``T1DPatient.EAT_RATE``)."""

_U_TO_PMOL = 6000.0  # 1 U of insulin = 6000 pmol (simglucose's conversion)

# (name, unit, description) of the parameters the equations use, in the CSV's spelling.
_PARAMS: tuple[tuple[str, str, str], ...] = (
    ("BW", "kg", "body weight"),
    ("kmax", "1/min", "maximal gastric emptying rate"),
    ("kmin", "1/min", "minimal gastric emptying rate"),
    ("b", "1", "fraction of the dose at which kgut first falls to (kmax+kmin)/2"),
    ("d", "1", "fraction of the dose at which kgut recovers to (kmax+kmin)/2"),
    ("kabs", "1/min", "intestinal absorption rate"),
    ("f", "1", "fraction of intestinal absorption appearing in plasma"),
    ("kp1", "mg/kg/min", "extrapolated endogenous glucose production at zero glucose and insulin"),
    ("kp2", "1/min", "liver glucose effectiveness"),
    ("kp3", "mg.L/kg/min/pmol", "insulin action on the liver"),
    ("Fsnc", "mg/kg/min", "insulin-independent glucose utilisation (brain, erythrocytes)"),
    ("ke1", "1/min", "renal glomerular filtration rate"),
    ("ke2", "mg/kg", "renal threshold of glucose"),
    ("k1", "1/min", "rate from plasma to tissue glucose"),
    ("k2", "1/min", "rate from tissue to plasma glucose"),
    ("Vm0", "mg/kg/min", "insulin-independent maximal utilisation"),
    ("Vmx", "mg.L/kg/min/pmol", "insulin sensitivity of peripheral utilisation"),
    ("Km0", "mg/kg", "Michaelis-Menten constant of utilisation"),
    ("m1", "1/min", "liver insulin clearance rate"),
    ("m2", "1/min", "rate from plasma to liver insulin"),
    ("m4", "1/min", "peripheral insulin degradation"),
    ("m30", "1/min", "hepatic insulin extraction rate"),
    ("Vi", "L/kg", "insulin distribution volume"),
    ("Vg", "dL/kg", "glucose distribution volume"),
    ("p2u", "1/min", "rate of insulin action on peripheral utilisation"),
    ("Ib", "pmol/L", "basal plasma insulin"),
    ("ki", "1/min", "delay between insulin signal and action on the liver"),
    ("kd", "1/min", "subcutaneous insulin degradation/transfer rate"),
    ("ka1", "1/min", "absorption of non-monomeric subcutaneous insulin"),
    ("ka2", "1/min", "absorption of monomeric subcutaneous insulin"),
    ("ksc", "1/min", "plasma to subcutaneous glucose rate"),
    ("u2ss", "pmol/kg/min", "steady-state (basal) insulin infusion"),
)

_STATES: tuple[State, ...] = (
    State("Qsto1", "mg", "glucose in the stomach, solid phase"),
    State("Qsto2", "mg", "glucose in the stomach, liquid phase"),
    State("Qgut", "mg", "glucose in the intestine"),
    State("Gp", "mg/kg", "glucose mass in plasma and rapidly equilibrating tissues"),
    State("Gt", "mg/kg", "glucose mass in slowly equilibrating tissues"),
    State("Ip", "pmol/kg", "insulin mass in plasma"),
    State("X", "pmol/L", "insulin action on glucose utilisation"),
    State("I1", "pmol/L", "first delay compartment of insulin action on the liver"),
    State("Id", "pmol/L", "delayed insulin signal on the liver"),
    State("Il", "pmol/kg", "insulin mass in the liver"),
    State("Isc1", "pmol/kg", "subcutaneous insulin, non-monomeric"),
    State("Isc2", "pmol/kg", "subcutaneous insulin, monomeric"),
    State("Gs", "mg/kg", "subcutaneous glucose"),
)


@cache
def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = resources.files("medtwin.models") / "data"
    with (data / "uva_padova_2008_patients.csv").open() as fh:
        patients = pd.read_csv(fh)
    with (data / "uva_padova_2008_quest.csv").open() as fh:
        quest = pd.read_csv(fh)
    return patients, quest


def _declare_params() -> tuple[Param, ...]:
    """Parameters with population priors fitted to the 30 virtual patients.

    Default: the geometric mean over the 10 adults.  Prior: log-normal with the geometric mean and
    the SD of log values over all 30 patients; parameters equal in every patient are fixed.
    """
    patients, _ = _tables()
    adults = patients[patients["Name"].str.startswith("adult")]
    out = []
    for name, unit, desc in _PARAMS:
        values = patients[name].to_numpy(float)
        if np.ptp(values) == 0.0:
            out.append(Param(name, unit, float(values[0]), Fixed(float(values[0])), desc))
            continue
        logs = np.log(values)
        default = float(np.exp(np.log(adults[name].to_numpy(float)).mean()))
        prior = LogNormal(float(np.exp(logs.mean())), float(logs.std(ddof=1)))
        out.append(Param(name, unit, default, prior, desc))
    return tuple(out)


class UvaPadova2008(AbstractModel):
    """UVA/Padova 2008 type-1 diabetes model (13 states), as in simglucose 0.2.11.

    >>> from medtwin.models import UvaPadova2008
    >>> len(UvaPadova2008.states), UvaPadova2008.observation().name
    (13, 'Gsub')
    """

    name = "uva_padova_2008"
    time_unit = "min"
    reference = (
        "Dalla Man, Rizza & Cobelli, IEEE TBME 54:1740 (2007); Kovatchev et al., "
        "J Diabetes Sci Technol 3:44 (2009); simglucose 0.2.11"
    )
    states = _STATES
    params = _declare_params()
    inputs: ClassVar[tuple[Input, ...]] = (
        Input("cho", "g", kind="amount", role="meal", description="carbohydrate announced"),
        Input("insulin", "U/min", kind="rate", role="insulin", description="insulin infusion"),
    )
    observations = (
        Observation("Gsub", "mg/dL", lambda x, p: x["Gs"] / p["Vg"], None, "subcutaneous glucose"),
        Observation("Gplasma", "mg/dL", lambda x, p: x["Gp"] / p["Vg"], None, "plasma glucose"),
        Observation("Iplasma", "pmol/L", lambda x, p: x["Ip"] / p["Vi"], None, "plasma insulin"),
    )
    discrete_states = (
        State("planned_meal", "g", "announced carbohydrate not yet eaten"),
        State("last_qsto", "mg", "stomach content when the current meal began"),
        State("last_foodtaken", "g", "carbohydrate eaten since the current meal began"),
        State("last_cho", "g/min", "eating rate in the previous minute"),
        State("is_eating", "1", "1 while a meal is being eaten"),
    )

    def default_inputs(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """Basal insulin that holds the patient at steady state: u2ss * BW / 6000 U/min."""
        basal = p["u2ss"] * p["BW"] / _U_TO_PMOL
        return {"cho": jnp.zeros_like(basal), "insulin": basal}

    def initial_discrete_state(
        self, x: Mapping[str, Array], p: Mapping[str, Array]
    ) -> dict[str, Array]:
        """No meal planned or under way; the meal reference is the current stomach content."""
        zero = jnp.zeros_like(x["Gp"])
        return {
            "planned_meal": zero,
            "last_qsto": x["Qsto1"] + x["Qsto2"],
            "last_foodtaken": zero,
            "last_cho": zero,
            "is_eating": zero,
        }

    def derived(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """Parameter combinations used in every step, computed once per simulation."""
        return {
            "u_to_pmol_per_kg": _U_TO_PMOL / p["BW"],
            "kgut_half_range": (p["kmax"] - p["kmin"]) / 2.0,
            "ra_per_qgut": p["f"] * p["kabs"] / p["BW"],
            "inv_Vi": 1.0 / p["Vi"],
            "m2_m4": p["m2"] + p["m4"],
            "m1_m30": p["m1"] + p["m30"],
            "ka1_kd": p["ka1"] + p["kd"],
        }

    def discrete_update(
        self,
        t: Array,
        x: Mapping[str, Array],
        z: Mapping[str, Array],
        p: Mapping[str, Array],
        u: Mapping[str, Array],
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        """Turn announced carbohydrate into an eating rate (simglucose ``T1DPatient.step``).

        Also evaluates, once per minute, the meal-size terms of the gastric-emptying rate
        (``D``, ``a``, ``c``), which stay constant within the minute.
        """
        planned = z["planned_meal"] + u["cho"]
        to_eat = jnp.where(planned > 0, jnp.minimum(EAT_RATE_G_PER_MIN, planned), 0.0)
        planned = jnp.maximum(planned - to_eat, 0.0)
        starts = (to_eat > 0) & (z["last_cho"] <= 0)
        last_qsto = jnp.where(starts, x["Qsto1"] + x["Qsto2"], z["last_qsto"])
        eaten = jnp.where(starts, 0.0, z["last_foodtaken"])
        eating = jnp.where(starts, 1.0, z["is_eating"])
        eaten = jnp.where(eating > 0, eaten + to_eat, eaten)
        eating = jnp.where((to_eat <= 0) & (z["last_cho"] > 0), 0.0, eating)
        z_new = {
            "planned_meal": planned,
            "last_qsto": last_qsto,
            "last_foodtaken": eaten,
            "last_cho": to_eat,
            "is_eating": eating,
        }
        dbar = last_qsto + eaten * 1000.0  # mg; simglucose issue #41 fixed the g -> mg factor
        has_meal = dbar > 0
        safe = jnp.where(has_meal, dbar, 1.0)
        u_eff = {
            "cho": to_eat,
            "insulin": u["insulin"],
            "has_meal": has_meal,
            "a": 5.0 / (2.0 * safe * (1.0 - p["b"])),
            "c": 5.0 / (2.0 * safe * p["d"]),
            "bD": p["b"] * safe,
            "dD": p["d"] * safe,
        }
        return u_eff, z_new

    def rhs(
        self,
        t: Array,
        x: Mapping[str, Array],
        p: Mapping[str, Array],
        u: Mapping[str, Array],
    ) -> dict[str, Array]:
        """The 13 derivatives (per minute).

        ``u`` comes from :meth:`discrete_update`: cho (g/min eaten), insulin (U/min) and the
        meal-size terms of kgut; ``p`` includes :meth:`derived`.
        """
        qsto1, qsto2, qgut = x["Qsto1"], x["Qsto2"], x["Qgut"]
        gp, gt, ip, xx = x["Gp"], x["Gt"], x["Ip"], x["X"]
        i1, id_, il, isc1, isc2, gs = x["I1"], x["Id"], x["Il"], x["Isc1"], x["Isc2"], x["Gs"]
        kmax = p["kmax"]

        qsto = qsto1 + qsto2
        kgut_meal = p["kmin"] + p["kgut_half_range"] * (
            jnp.tanh(u["a"] * (qsto - u["bD"])) - jnp.tanh(u["c"] * (qsto - u["dD"])) + 2.0
        )
        kgut = jnp.where(u["has_meal"], kgut_meal, kmax)

        rat = p["ra_per_qgut"] * qgut
        egp = jnp.maximum(p["kp1"] - p["kp2"] * gp - p["kp3"] * id_, 0.0)
        et = jnp.where(gp > p["ke2"], p["ke1"] * (gp - p["ke2"]), 0.0)
        uidt = (p["Vm0"] + p["Vmx"] * xx) * gt / (p["Km0"] + gt)
        it = ip * p["inv_Vi"]

        def nonneg(state: Array, rate: Array) -> Array:
            return jnp.where(state >= 0, rate, 0.0)

        return {
            "Qsto1": -kmax * qsto1 + u["cho"] * 1000.0,  # g/min -> mg/min
            "Qsto2": kmax * qsto1 - qsto2 * kgut,
            "Qgut": kgut * qsto2 - p["kabs"] * qgut,
            "Gp": nonneg(gp, egp + rat - p["Fsnc"] - et - p["k1"] * gp + p["k2"] * gt),
            "Gt": nonneg(gt, -uidt + p["k1"] * gp - p["k2"] * gt),
            "Ip": nonneg(ip, -p["m2_m4"] * ip + p["m1"] * il + p["ka1"] * isc1 + p["ka2"] * isc2),
            "X": -p["p2u"] * xx + p["p2u"] * (it - p["Ib"]),
            "I1": -p["ki"] * (i1 - it),
            "Id": -p["ki"] * (id_ - i1),
            "Il": nonneg(il, -p["m1_m30"] * il + p["m2"] * ip),
            # insulin U/min -> pmol/kg/min
            "Isc1": nonneg(isc1, u["insulin"] * p["u_to_pmol_per_kg"] - p["ka1_kd"] * isc1),
            "Isc2": nonneg(isc2, p["kd"] * isc1 - p["ka2"] * isc2),
            "Gs": nonneg(gs, -p["ksc"] * gs + p["ksc"] * gp),
        }

    def initial_state(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """Fasting steady state under the basal infusion u2ss (empty gut).

        Insulin states are linear and solved in closed form; plasma glucose ``Gp`` is the root of
        the two glucose equations, found by bisection so that it is robust for any prior draw.
        """
        p = {k: jnp.asarray(v) for k, v in p.items()}
        u = p["u2ss"]
        isc1 = u / (p["ka1"] + p["kd"])
        isc2 = p["kd"] * isc1 / p["ka2"]
        ip = (p["ka1"] * isc1 + p["ka2"] * isc2) / (
            p["m2"] + p["m4"] - p["m1"] * p["m2"] / (p["m1"] + p["m30"])
        )
        il = p["m2"] * ip / (p["m1"] + p["m30"])
        ins = ip / p["Vi"]
        xx = ins - p["Ib"]

        def residual(gp: Array) -> Array:
            egp = jnp.maximum(p["kp1"] - p["kp2"] * gp - p["kp3"] * ins, 0.0)
            et = jnp.where(gp > p["ke2"], p["ke1"] * (gp - p["ke2"]), 0.0)
            gt = (p["Fsnc"] + et + p["k1"] * gp - egp) / p["k2"]
            gt = jnp.maximum(gt, 0.0)
            return -(p["Vm0"] + p["Vmx"] * xx) * gt / (p["Km0"] + gt) + p["k1"] * gp - p["k2"] * gt

        lo = jnp.zeros_like(u)
        hi = jnp.full_like(u, 5000.0)
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            # Below the root tissue glucose accumulates (residual > 0); above it, it drains.
            below = residual(mid) > 0
            lo, hi = jnp.where(below, mid, lo), jnp.where(below, hi, mid)
        gp = 0.5 * (lo + hi)
        egp = jnp.maximum(p["kp1"] - p["kp2"] * gp - p["kp3"] * ins, 0.0)
        et = jnp.where(gp > p["ke2"], p["ke1"] * (gp - p["ke2"]), 0.0)
        gt = jnp.maximum((p["Fsnc"] + et + p["k1"] * gp - egp) / p["k2"], 0.0)
        zero = jnp.zeros_like(u)
        return {
            "Qsto1": zero,
            "Qsto2": zero,
            "Qgut": zero,
            "Gp": gp,
            "Gt": gt,
            "Ip": ip,
            "X": xx,
            "I1": ins,
            "Id": ins,
            "Il": il,
            "Isc1": isc1,
            "Isc2": isc2,
            "Gs": gp,
        }


class UvaPadova2008Circadian(UvaPadova2008):
    r"""UVA/Padova 2008 with time-varying insulin sensitivity and endogenous glucose production.

    Two extra dimensionless inputs, held constant over each minute like any input (default 1):
    ``si_factor`` multiplies both insulin sensitivities, peripheral ``Vmx`` and hepatic ``kp3``;
    ``egp_factor`` multiplies ``kp1``, the extrapolated endogenous glucose production::

        Vmx(t) = Vmx si(t),   kp3(t) = kp3 si(t),   kp1(t) = kp1 egp(t)

    This is how the UVA/Padova 2013 simulator represents intraday variability of insulin
    sensitivity, and an early-morning rise of ``egp`` is the dawn phenomenon (Visentin et al.,
    J Diabetes Sci Technol 10:1003, 2016; Dalla Man et al., J Diabetes Sci Technol 8:26, 2014).
    The virtual-patient test bench uses it as the "real" patient that a twin built on
    :class:`UvaPadova2008` has to follow without being told about the variation.

    >>> UvaPadova2008Circadian.input_names()
    ('cho', 'insulin', 'si_factor', 'egp_factor')
    """

    name = "uva_padova_2008_circadian"
    inputs = (
        *UvaPadova2008.inputs,
        Input("si_factor", "1", kind="rate", role="insulin_sensitivity",
              description="multiplier of Vmx and kp3"),
        Input("egp_factor", "1", kind="rate", role="egp", description="multiplier of kp1"),
    )  # fmt: skip

    def default_inputs(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """Steady-state basal insulin and unit factors."""
        u = super().default_inputs(p)
        one = jnp.ones_like(u["insulin"])
        return {**u, "si_factor": one, "egp_factor": one}

    def discrete_update(
        self,
        t: Array,
        x: Mapping[str, Array],
        z: Mapping[str, Array],
        p: Mapping[str, Array],
        u: Mapping[str, Array],
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        """As :class:`UvaPadova2008`, passing the two factors through."""
        u_eff, z_new = super().discrete_update(t, x, z, p, u)
        return {**u_eff, "si_factor": u["si_factor"], "egp_factor": u["egp_factor"]}, z_new

    def rhs(
        self,
        t: Array,
        x: Mapping[str, Array],
        p: Mapping[str, Array],
        u: Mapping[str, Array],
    ) -> dict[str, Array]:
        """The UVA/Padova derivatives with the scaled sensitivities and production."""
        scaled = {
            **p,
            "Vmx": p["Vmx"] * u["si_factor"],
            "kp3": p["kp3"] * u["si_factor"],
            "kp1": p["kp1"] * u["egp_factor"],
        }
        return super().rhs(t, x, scaled, u)


@dataclass(frozen=True, slots=True)
class VirtualPatients:
    """Named virtual patients: parameters, initial states and therapy settings, one row each."""

    names: tuple[str, ...]
    params: dict[str, np.ndarray]
    x0: dict[str, np.ndarray]
    carb_ratio_g_per_u: np.ndarray
    correction_factor_mg_dl_per_u: np.ndarray
    age_years: np.ndarray
    total_daily_insulin_u: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    @property
    def basal_u_per_min(self) -> np.ndarray:
        """Steady-state basal insulin rate u2ss * BW / 6000 (U/min)."""
        return self.params["u2ss"] * self.params["BW"] / _U_TO_PMOL


def patient_names() -> tuple[str, ...]:
    """The 30 virtual patients: adolescent#001-010, adult#001-010, child#001-010."""
    return tuple(_tables()[0].Name)


def load_patients(names: str | list[str] | tuple[str, ...] | None = None) -> VirtualPatients:
    """Load virtual patients by name, by group (``"adults"``, ``"adolescents"``, ``"children"``) or all.

    >>> load_patients("adult#001").names
    ('adult#001',)
    >>> len(load_patients("children"))
    10
    """
    patients, quest = _tables()
    groups = {"adolescents": "adolescent#", "adults": "adult#", "children": "child#"}
    if names is None or names == "all":
        selected = list(patients.Name)
    else:
        requested = [names] if isinstance(names, str) else list(names)
        selected = []
        for name in requested:
            if name in groups:
                selected += [n for n in patients.Name if n.startswith(groups[name])]
            elif name in set(patients.Name):
                selected.append(name)
            else:
                raise UnknownPatientError(
                    f"unknown virtual patient {name!r}; choose adolescent#001-010, adult#001-010, "
                    "child#001-010, a group (adolescents, adults, children) or 'all'"
                )
    rows = patients.set_index("Name").loc[selected]
    q = quest.set_index("Name").loc[selected]
    x0_cols = [c for c in patients.columns if c.startswith("x0_")]
    return VirtualPatients(
        names=tuple(selected),
        params={name: rows[name].to_numpy(float) for name, _, _ in _PARAMS},
        x0={s.name: rows[c].to_numpy(float) for s, c in zip(_STATES, x0_cols, strict=True)},
        carb_ratio_g_per_u=q["CR"].to_numpy(float),
        correction_factor_mg_dl_per_u=q["CF"].to_numpy(float),
        age_years=q["Age"].to_numpy(float),
        total_daily_insulin_u=q["TDI"].to_numpy(float),
    )
