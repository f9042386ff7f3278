"""Every controller runs its init/step under jax.jit on a batch and keeps its state's structure."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medtwin.control import PID, BasalBolus
from medtwin.models import load_patients
from medtwin.simulate import Controller, ControlObservation

N = 3

CONTROLLERS = {
    "basal_bolus": BasalBolus(0.01, carb_ratio_g_per_u=10.0, correction_factor_mg_dl_per_u=40.0),
    "basal_bolus_patients": BasalBolus.for_patients(
        load_patients(["adolescent#001", "adult#001", "child#001"])
    ),
    "pid": PID(kp=1e-4, ki=1e-7, kd=1e-3, basal_u_per_min=0.01),
    "pid_limited": PID(
        kp=[1e-4, 2e-4, 3e-4],
        ki=0.0,
        kd=1e-3,
        max_rate_u_per_min=0.5,
        derivative_on_first_sample=False,
    ),
}


def _observation(glucose: jax.Array, cho: jax.Array, period: float) -> ControlObservation:
    return ControlObservation(
        t=jnp.asarray(0.0), glucose=glucose, announced={"cho": cho}, period=period
    )


@pytest.fixture(params=sorted(CONTROLLERS))
def controller(request: pytest.FixtureRequest) -> Controller:
    ctrl = CONTROLLERS[request.param]
    assert isinstance(ctrl, Controller)
    return ctrl


def test_arrays_are_per_patient(controller: Controller) -> None:
    arrays = controller.arrays(N)
    for name, value in arrays.items():
        assert np.shape(value) in {(), (N,)}, name
        assert np.all(np.isfinite(value)), name  # the engine rejects non-finite settings


def test_init_and_step_run_under_jit(controller: Controller) -> None:
    arrays = {k: jnp.asarray(v) for k, v in controller.arrays(N).items()}
    state = jax.jit(controller.init)(arrays)
    for name, value in state.items():
        assert value.shape == (N,), name

    @jax.jit
    def step(glucose: jax.Array, cho: jax.Array, state: dict, arrays: dict) -> tuple[dict, dict]:
        return controller.step(_observation(glucose, cho, 5.0), state, arrays)

    glucose = jnp.array([60.0, 140.0, 300.0])
    cho = jnp.array([0.0, 50.0, 20.0])
    rates, new_state = step(glucose, cho, state, arrays)
    assert set(rates) == set(controller.controls)
    for name, rate in rates.items():
        assert rate.shape == (N,), name
        assert rate.dtype == jnp.float64, name
        assert bool(jnp.all(jnp.isfinite(rate))), name
        assert bool(jnp.all(rate >= 0)), name
    # The state can be carried through the engine's loop: same keys, shapes and dtypes.
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for name in state:
        assert new_state[name].shape == state[name].shape, name
        assert new_state[name].dtype == state[name].dtype, name


def test_step_scans_and_accepts_a_traced_period(controller: Controller) -> None:
    arrays = controller.arrays(N)

    def body(state: dict, x: tuple[jax.Array, jax.Array]) -> tuple[dict, dict]:
        rates, state = controller.step(_observation(x[0], x[1], 5.0), state, arrays)
        return state, rates

    glucose = jnp.linspace(80.0, 250.0, 4 * N).reshape(4, N)
    cho = jnp.zeros((4, N)).at[1].set(45.0)
    _, rates = jax.jit(lambda g, c: jax.lax.scan(body, controller.init(arrays), (g, c)))(
        glucose, cho
    )
    assert set(rates) == set(controller.controls)
    assert all(r.shape == (4, N) for r in rates.values())

    # The observation is a pytree; an engine that passes it whole traces the period too.
    obs = _observation(glucose[0], cho[1], 5.0)
    traced = jax.jit(lambda o: controller.step(o, controller.init(arrays), arrays)[0])(obs)
    eager = controller.step(obs, controller.init(arrays), arrays)[0]
    for name in controller.controls:
        np.testing.assert_allclose(traced[name], eager[name], rtol=1e-14)


def test_controllers_are_hashable_value_objects(controller: Controller) -> None:
    assert hash(controller) == hash(controller)
    assert isinstance(controller.controls, tuple)
    assert all(isinstance(c, str) for c in controller.controls)
