"""Contract tests run over every model in ALL_MODELS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medtwin.models import ALL_MODELS
from medtwin.units import is_unit


@pytest.fixture(params=ALL_MODELS, ids=lambda m: m.__name__)
def model(request):
    return request.param()


def _batch(model, n=4, seed=0):
    p = {k: jnp.asarray(v) for k, v in type(model).sample_params(n, seed).items()}
    return model.with_derived(p)


def test_declaration_is_documented(model):
    cls = type(model)
    assert cls.__doc__ and cls.reference, "every model carries its reference"
    module_doc = __import__(cls.__module__, fromlist=["_"]).__doc__ or ""
    assert "Equations" in module_doc or "equations" in module_doc, "the equations live in the docs"
    for item in (*cls.states, *cls.params, *cls.inputs, *cls.observations):
        assert is_unit(item.unit)


def test_rhs_returns_every_state_with_the_batch_shape(model):
    p = _batch(model)
    x = model.initial_state(p)
    u = {i.name: jnp.zeros(4) for i in model.inputs}
    z = model.initial_discrete_state(x, p)
    u_eff, z = model.discrete_update(0.0, x, z, p, u)
    dx = model.rhs(0.0, x, p, u_eff)
    assert set(dx) == set(model.state_names())
    for v in dx.values():
        assert v.shape == (4,)
        assert np.isfinite(np.asarray(v)).all()


def test_initial_state_is_a_steady_state_under_default_inputs(model):
    p = _batch(model, n=16, seed=3)
    x = model.initial_state(p)
    u = model.default_inputs(p)
    z = model.initial_discrete_state(x, p)
    u_eff, _ = model.discrete_update(0.0, x, z, p, u)
    dx = model.rhs(0.0, x, p, u_eff)
    for name, v in dx.items():
        scale = np.abs(np.asarray(x[name])).max() + 1.0
        assert np.abs(np.asarray(v)).max() / scale < 1e-8, name


def test_rhs_is_jittable_and_differentiable(model):
    p = _batch(model, n=2)
    x = model.initial_state(p)
    u = model.default_inputs(p)
    z = model.initial_discrete_state(x, p)
    first_param = model.params[1].name

    def f(theta):
        q = dict(p)
        q[first_param] = theta
        q = model.with_derived(q)
        u_eff, _ = model.discrete_update(0.0, x, z, q, u)
        return sum(jnp.sum(v) for v in model.rhs(0.0, x, q, u_eff).values())

    g = jax.jit(jax.grad(f))(p[first_param])
    assert np.isfinite(np.asarray(g)).all()


def test_defaults_lie_inside_the_priors(model):
    for param in model.params:
        if param.prior is not None:
            assert param.prior.contains(param.default), param.name
