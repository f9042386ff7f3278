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


def test_update_many_equals_one_update_at_a_time(monkeypatch):
    import numpy as np

    from medtwin.assimilate import EnsembleKalmanFilter, particle, update_many
    from medtwin.simulate import Schedule

    filters = [
        ParticleFilter(n_members=30, seed=1),
        ParticleFilter(n_members=30, seed=2),
        ParticleFilter(n_members=30, seed=3),
        ParticleFilter(n_members=30, seed=4, roughening=0.1),  # another configuration: alone
        EnsembleKalmanFilter(n_members=30, seed=5),  # not a particle filter: alone
    ]
    ensembles = [f.init(t0=10.0 * k) for k, f in enumerate(filters)]
    times = [e.t + (5.0 if k != 2 else 3.0) for k, e in enumerate(ensembles)]  # 2: its own dt
    readings = [150.0, 90.0, 200.0, 120.0, 130.0]
    schedules = [
        Schedule().basal(ensembles[0].t, 0.8),
        Schedule()
        .basal(ensembles[1].t, 2.0)
        .bolus(ensembles[1].t + 2, 4.0)
        .meal(ensembles[1].t + 1, 30),
        None,
        None,
        Schedule().basal(0.0, 1.0),
    ]
    batches = []
    run_steps = particle.run_steps

    def counted(cores, step, ensembles, *args):
        batches.append([e.t for e in ensembles])
        return run_steps(cores, step, ensembles, *args)

    monkeypatch.setattr(particle, "run_steps", counted)
    together = update_many(filters, ensembles, times, readings, schedules)
    alone = [
        f.update(e, t, r, s)
        for f, e, t, r, s in zip(filters, ensembles, times, readings, schedules, strict=True)
    ]
    for a, b in zip(alone, together, strict=True):
        assert a.t == b.t and a.step == b.step
        np.testing.assert_allclose(b.weights, a.weights, rtol=1e-9, atol=1e-15)
        for k in a.states:
            np.testing.assert_allclose(b.states[k], a.states[k], rtol=1e-9)
        for k in a.params:
            np.testing.assert_allclose(b.params[k], a.params[k], rtol=1e-9)
        np.testing.assert_allclose(b.info.innovation, a.info.innovation, rtol=1e-9)
    assert batches == [[0.0, 10.0]]  # only the two particle filters alike went together
