import numpy as np
import pytest

from medtwin.errors import ScheduleError
from medtwin.models import UvaPadova2008
from medtwin.simulate import Event, Schedule, compile_schedules


def test_meals_bolus_and_basal_compile_to_dense_inputs():
    s = Schedule().meal(60, 45).bolus(60, 3.0).basal(120, 1.2).basal(180, factor=0.5)
    c = compile_schedules(UvaPadova2008, [s], t0=0.0, n_steps=240, dt=1.0)
    assert c.pulse["cho"][60, 0] == 45.0 and c.pulse["cho"].sum() == 45.0
    assert c.pulse["insulin"][60, 0] == pytest.approx(3.0)  # 3 U over one minute = 3 U/min
    # before any basal event: the model's default (factor 1); then 1.2 U/h = 0.02 U/min; then 0.5x
    assert c.base_factor["insulin"][0, 0] == 1.0 and c.base_abs["insulin"][0, 0] == 0.0
    assert c.base_abs["insulin"][150, 0] == pytest.approx(0.02)
    assert c.base_factor["insulin"][150, 0] == 0.0
    assert c.base_factor["insulin"][239, 0] == 0.5 and c.base_abs["insulin"][239, 0] == 0.0


def test_a_bolus_with_duration_is_spread_evenly():
    c = compile_schedules(
        UvaPadova2008, [Schedule().bolus(10, 6.0, duration=30)], t0=0.0, n_steps=60, dt=1.0
    )
    delivered = c.pulse["insulin"][:, 0]
    assert delivered.sum() == pytest.approx(6.0)
    assert np.count_nonzero(delivered) == 30


def test_per_patient_schedules_are_columns():
    c = compile_schedules(
        UvaPadova2008, [Schedule().meal(5, 10), Schedule()], t0=0.0, n_steps=10, dt=1.0
    )
    assert c.pulse["cho"].shape == (10, 2)
    assert c.pulse["cho"][:, 1].sum() == 0.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Schedule().meal(60, -5), "negative amount"),
        (lambda: Schedule().meal(float("nan"), 5), "non-finite time"),
        (lambda: Schedule().bolus(-1, 2), "negative"),
        (lambda: Schedule().basal(0), "exactly one"),
        (lambda: Schedule().bolus(0, 1.0, duration=0), "duration"),
        (lambda: Schedule.from_dict({"meals": [[60, 45]], "snacks": []}), "unknown schedule keys"),
        (lambda: Schedule.from_dict({"meals": [[60]]}), "meals entry"),
        (lambda: Schedule.from_dict({"meals": [["noon", 45]]}), "malformed"),
    ],
)
def test_malformed_events_are_rejected(make, message):
    with pytest.raises(ScheduleError, match=message):
        make()


def test_events_outside_the_simulated_time_are_rejected():
    with pytest.raises(ScheduleError, match="outside the simulated time"):
        compile_schedules(UvaPadova2008, [Schedule().meal(1440, 50)], t0=0.0, n_steps=1440, dt=1.0)


def test_unknown_inputs_and_units_are_rejected():
    with pytest.raises(ScheduleError, match="no input"):
        compile_schedules(
            UvaPadova2008, [Schedule().dose(0, 100, input="drug")], t0=0.0, n_steps=10, dt=1.0
        )
    with pytest.raises(ScheduleError, match="cannot convert"):
        compile_schedules(
            UvaPadova2008,
            [Schedule().add(Event(0, "insulin", "rate", 1.0, "mg/dL"))],
            t0=0.0,
            n_steps=10,
            dt=1.0,
        )


def test_from_dict_and_repeat():
    s = Schedule.from_dict(
        {
            "meals": [[420, 45], {"time": 720, "carbs_g": 70}],
            "boluses": [[420, 4]],
            "basal": [[0, 1.0], {"time": 600, "factor": 0.8}],
        }
    ).repeated(3, every=1440)
    assert len(s.events) == 15
    assert max(e.time for e in s.events) == 720 + 2 * 1440
