"""The particle filter's compiled steps."""

from __future__ import annotations

from medtwin.assimilate import ParticleFilter


def test_filters_that_differ_only_in_seed_share_one_compiled_step():
    from medtwin.assimilate._ensemble import _STEPS

    a = ParticleFilter(n_members=20, seed=1)
    b = ParticleFilter(n_members=20, seed=2)
    ens_a, ens_b = a.init(None, t0=0.0), b.init(None, t0=0.0)
    a.update(ens_a, 5.0, 120.0)
    n = len(_STEPS)
    b.update(ens_b, 5.0, 120.0)
    assert len(_STEPS) == n  # a service's twins (a seed each) must not compile one step each
