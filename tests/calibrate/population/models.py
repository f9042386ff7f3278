"""Prediction functions and data shared by the population tests.

The theophylline models predict with the PK library's closed form
(:func:`medtwin.models.pk.concentration` of :class:`~medtwin.models.pk.OneCompartmentOral`:
``C(t) = F Dose ka / (V (ka - ke)) (exp(-ke t) - exp(-ka t))`` for one oral dose, F = 1);
``one_compartment_oral`` writes the same formula out, as a check on it.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd

from medtwin.calibrate.population import Additive, PopulationData, PopulationModel
from medtwin.interop.nonmem import read_theophylline
from medtwin.models.pk import (
    Dose,
    DoseTable,
    OneCompartmentOral,
    Regimen,
    concentration,
    dose_kinds,
)

DATA = Path(__file__).parents[2] / "interop" / "data"  # theoph.csv, with its README

ORAL = dose_kinds(OneCompartmentOral, Regimen.oral(1.0))
"""Plain oral doses only: the closed form skips the code of other dose kinds under jit/vmap."""


def theoph_frame() -> pd.DataFrame:
    return pd.read_csv(DATA / "theoph.csv")


def theoph_data(per_kg: bool = True) -> PopulationData:
    """The theophylline data, one oral dose at time 0 into the depot: mg/kg or mg.

    In mg, through the NONMEM reader (``read_theophylline``: dose = Dose x Wt); in mg/kg (nlme's
    parameterisation) from the long table with the dose table written here.
    """
    if not per_kg:
        return PopulationData.from_nonmem(read_theophylline(DATA / "theoph.csv"))
    frame = theoph_frame()
    first = frame.groupby("Subject", sort=False).first()
    doses = DoseTable.from_doses([[Dose(0.0, float(a), cmt=1)] for a in first["Dose"]])
    return PopulationData.from_frame(
        frame, id="Subject", time="Time", dv="conc", covariates=("Dose", "Wt"), doses=doses
    )


def one_compartment_oral(dose, ka, ke, v, t):
    return dose * ka / (v * (ka - ke)) * (jnp.exp(-ke * t) - jnp.exp(-ka * t))


def theoph_fm3(theta, eta, s):
    """nlme's fm3Theo.nlme: log-scale lKe, lKa, lCl; V = Cl/Ke; dose in mg/kg."""
    lke = theta["lKe"]
    lka = theta["lKa"] + eta["eta_lKa"]
    lcl = theta["lCl"] + eta["eta_lCl"]
    ke, ka, cl = jnp.exp(lke), jnp.exp(lka), jnp.exp(lcl)
    params = {"KA": ka, "CL": cl, "V": cl / ke}
    return concentration(OneCompartmentOral, params, s["doses"], s["time"], kinds=ORAL)


def theoph_nlmixr(theta, eta, s):
    """nlmixr2's theo_sd one.cmt: ka, cl, v log-normal with IIV on all three; dose in mg."""
    ka = jnp.exp(theta["tka"] + eta["eta_ka"])
    cl = jnp.exp(theta["tcl"] + eta["eta_cl"])
    v = jnp.exp(theta["tv"] + eta["eta_v"])
    params = {"KA": ka, "CL": cl, "V": v}
    return concentration(OneCompartmentOral, params, s["doses"], s["time"], kinds=ORAL)


FM3 = PopulationModel(
    theoph_fm3,
    {"lKe": -2.5, "lKa": 0.5, "lCl": -3.2},
    {"eta_lKa": 0.36, "eta_lCl": 0.04},
    Additive(0.7),
)
"""Initial estimates as in Pinheiro & Bates (2000), section 8.2."""

NLMIXR = PopulationModel(
    theoph_nlmixr,
    {"tka": 0.45, "tcl": 1.0, "tv": 3.45},
    {"eta_ka": 0.6, "eta_cl": 0.3, "eta_v": 0.1},
    Additive(0.7),
)
"""Initial estimates of the nlmixr2 theophylline example (``ini({...})`` of ``one.cmt``)."""


def linear_predict(theta, eta, s):
    """A linear mixed model: random intercept and slope, so FOCE-I and Laplace are exact."""
    return theta["a"] + eta["eta_a"] + (theta["b"] + eta["eta_b"]) * s["time"]


def simulate_linear(n_subjects: int, seed: int, omega: np.ndarray, sd: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.array([0.0, 1.0, 2.0, 4.0, 6.0])
    rows = []
    for i in range(n_subjects):
        n = rng.integers(3, 6)  # unequal numbers of observations: padding is exercised
        ti = t[:n]
        eta = rng.multivariate_normal(np.zeros(2), omega)
        y = 10.0 + eta[0] + (-1.0 + eta[1]) * ti + rng.normal(0.0, sd, n)
        rows += [(i + 1, tt, yy) for tt, yy in zip(ti, y, strict=True)]
    return pd.DataFrame(rows, columns=["ID", "TIME", "DV"])


def exact_linear_ofv(frame: pd.DataFrame, a, b, omega, sd) -> float:
    """-2 ln L - n ln(2 pi) of the linear mixed model, from its Gaussian marginal."""
    total = 0.0
    for _, g in frame.groupby("ID"):
        t = g["TIME"].to_numpy()
        z = np.column_stack([np.ones_like(t), t])
        c = z @ omega @ z.T + sd**2 * np.eye(t.size)
        e = g["DV"].to_numpy() - (a + b * t)
        total += np.linalg.slogdet(c)[1] + e @ np.linalg.solve(c, e)
    return float(total)
