"""Replications give the same numbers in this process, in local workers and on a Dask cluster."""

import pandas as pd
import pytest

from medtwin.hospital import forecast, load_hospital, replicate, simulate

EXAMPLE = load_hospital("example_hospital")


@pytest.fixture(scope="module")
def reference():
    """In-process results: the treat-sim scenario, and the example hospital with a scenario."""
    ts = replicate("treat_sim_nelson2013", replications=6, seed=3, workers=1).kpis
    ex = replicate(
        EXAMPLE,
        replications=3,
        days=3,
        warmup_days=0,
        seed=5,
        workers=1,
        scenario={"extra_staff": {"doctor": 1}},
    ).kpis
    return ts, ex


def test_same_seed_same_results_on_one_and_two_workers(reference):
    ts, ex = reference
    pd.testing.assert_frame_equal(
        ts, replicate("treat_sim_nelson2013", replications=6, seed=3, workers=2).kpis
    )
    pd.testing.assert_frame_equal(
        ex,
        replicate(
            EXAMPLE,
            replications=3,
            days=3,
            warmup_days=0,
            seed=5,
            workers=2,
            scenario={"extra_staff": {"doctor": 1}},
        ).kpis,
    )
    assert not ts.equals(replicate("treat_sim_nelson2013", replications=6, seed=4).kpis)


def test_a_local_dask_cluster_gives_the_same_results(reference, monkeypatch):
    distributed = pytest.importorskip("distributed")
    ts, ex = reference
    snap = simulate(EXAMPLE, days=10, warmup_days=0, seed=2).snapshot()
    local = forecast(EXAMPLE, snap, horizon_hours=12, replications=4, seed=6)
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pd.testing.assert_frame_equal(
            ts, replicate("treat_sim_nelson2013", replications=6, seed=3, client=client).kpis
        )
        remote = forecast(EXAMPLE, snap, horizon_hours=12, replications=4, seed=6, client=client)
        for name, x in local.samples.items():
            pd.testing.assert_frame_equal(pd.DataFrame(x), pd.DataFrame(remote.samples[name]))
        # MEDTWIN_DASK_SCHEDULER points replications at a running scheduler
        monkeypatch.setenv("MEDTWIN_DASK_SCHEDULER", cluster.scheduler_address)
        pd.testing.assert_frame_equal(
            ex,
            replicate(
                EXAMPLE,
                replications=3,
                days=3,
                warmup_days=0,
                seed=5,
                scenario={"extra_staff": {"doctor": 1}},
            ).kpis,
        )
