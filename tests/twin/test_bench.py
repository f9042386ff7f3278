import numpy as np
import pandas as pd

from medtwin.twin import make_bench
from medtwin.twin.evaluate import baseline_forecasts, score_alerts


def test_bench_is_reproducible_and_hides_the_truth():
    a = make_bench(n_patients=2, days=1, seed=5)
    b = make_bench(n_patients=2, days=1, seed=5)
    pd.testing.assert_frame_equal(a[0].history.cgm, b[0].history.cgm)
    p = a[0]
    # what the twin sees is CGM (truth + sensor error) and the logged events only
    merged = p.history.cgm.merge(p.truth, on="time", suffixes=("_cgm", "_true"))
    err = merged.glucose_mg_dl_cgm - merged.glucose_mg_dl_true
    assert 2.0 < err.std() < 25.0
    assert set(p.history.events["kind"]) <= {"basal", "bolus", "carbs"}
    logged = p.history.events.query("kind == 'carbs'")["value"].sum()
    assert logged != p.meals["carbs_g"].sum()  # unannounced or mis-estimated meals
    assert p.true_params["Vmx"] != 0


def test_persistence_and_linear_baselines():
    t = np.arange(0, 60, 5.0)
    g = 100 + 2 * t
    p, lin = baseline_forecasts(t, g, 30)
    assert (p == g).all()
    np.testing.assert_allclose(lin[3:], g[3:] + 60)


def test_alert_scoring_counts_events_hits_and_false_alerts():
    t = np.arange(0, 300, 5.0)
    g = np.full(t.size, 120.0)
    g[(t >= 100) & (t < 130)] = 60.0  # one hypoglycaemia event starting at 100
    events, predicted, false = score_alerts(t, g, [80.0, 85.0, 200.0])
    assert (events, predicted, false) == (1, 1, 1)
