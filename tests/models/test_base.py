import math

import numpy as np
import pytest

from medtwin.errors import ModelDefinitionError
from medtwin.models import (
    AbstractModel,
    Fixed,
    Input,
    LogNormal,
    Normal,
    Observation,
    Param,
    State,
    Uniform,
)


def _define(**attrs):
    def rhs(self, t, x, p, u):
        return {"A": -p["k"] * x["A"]}

    body = {
        "states": (State("A", "mg"),),
        "params": (Param("k", "1/h", 0.1, LogNormal(0.1, 0.3)),),
        "rhs": rhs,
        "time_unit": "h",
    }
    body.update(attrs)
    return type("Decay", (AbstractModel,), body)


def test_a_valid_declaration_is_accepted():
    model = _define()
    assert model.state_names() == ("A",)
    assert model.defaults() == {"k": 0.1}


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"states": (State("A", "mg"), State("A", "mg"))}, "declared twice"),
        ({"params": (Param("A", "1/h", 0.1),)}, "declared twice"),
        ({"states": (State("A", "milligrams"),)}, "unknown unit"),
        ({"params": (Param("k", "1/h", -0.1, LogNormal(0.1, 0.3)),)}, "outside its prior"),
        ({"params": (Param("k", "1/h", 2.0, Uniform(0.0, 1.0)),)}, "outside its prior"),
        ({"params": (Param("k", "1/h", math.nan),)}, "not finite"),
        ({"observations": (Observation("y", "mg", "B"),)}, "unknown state"),
        ({"states": ()}, "no states"),
        ({"time_unit": "fortnights"}, "unknown unit"),
        (
            {"inputs": (Input("a", "mg", role="dose"), Input("b", "mg", role="dose"))},
            "share a role",
        ),
        ({"params": [Param("k", "1/h", 0.1)]}, "must be a tuple"),
    ],
)
def test_bad_declarations_are_rejected_when_the_class_is_defined(attrs, message):
    with pytest.raises(ModelDefinitionError, match=message):
        _define(**attrs)


def test_a_model_without_rhs_is_rejected():
    with pytest.raises(ModelDefinitionError, match="rhs"):
        type("NoRhs", (AbstractModel,), {"states": (State("A", "mg"),)})


def test_priors_sample_inside_their_support():
    rng = np.random.default_rng(0)
    assert (LogNormal(2.0, 0.5).sample(rng, 1000) > 0).all()
    draws = Normal(0.0, 1.0, low=-1.0, high=1.0).sample(rng, 1000)
    assert draws.min() >= -1.0 and draws.max() <= 1.0
    assert np.median(LogNormal(2.0, 0.5).sample(rng, 20000)) == pytest.approx(2.0, rel=0.03)
    assert (Fixed(3.0).sample(rng, 5) == 3.0).all()


def test_prior_log_densities():
    # N(0,1) at 0: -0.5 ln(2 pi)
    assert float(Normal(0.0, 1.0).logpdf(0.0)) == pytest.approx(-0.9189385332)
    assert float(Uniform(0.0, 4.0).logpdf(1.0)) == pytest.approx(-math.log(4.0))
    assert float(Uniform(0.0, 4.0).logpdf(5.0)) == -math.inf


def test_lookup_errors_name_what_exists():
    model = _define()
    with pytest.raises(ValueError, match=r"has no parameter .q.*k"):
        model.param("q")
