import jax
import numpy as np
import pytest

from medtwin.errors import ParameterError, ScheduleError
from medtwin.models import UvaPadova2008
from medtwin.models.pk import (
    Dose,
    DoseTable,
    OneCompartment,
    Regimen,
    TwoCompartmentOral,
)


def test_addl_expands_into_plain_doses():
    doses = Dose(2.0, 100.0, 1, duration_h=0.5, ii_h=24.0, addl=3).expand()
    assert [d.time_h for d in doses] == [2.0, 26.0, 50.0, 74.0]
    assert all(d.addl == 0 and d.duration_h == 0.5 for d in doses)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_h": -1.0}, "time_h must be >= 0"),
        ({"amount_mg": -5.0}, "amount_mg must be >= 0"),
        ({"cmt": 0}, "compartment number"),
        ({"cmt": 1.5}, "compartment number"),
        ({"addl": 2}, "interval ii_h > 0"),
        ({"ss": 1}, "interval ii_h > 0"),
        ({"ss": 3, "ii_h": 12.0}, "ss must be 0, 1 or 2"),
        ({"duration_h": float("nan")}, "finite"),
        ({"time_h": "8:00"}, "must be a number"),
    ],
)
def test_bad_records_are_rejected(kwargs, message):
    fields = {"time_h": 0.0, "amount_mg": 100.0, "cmt": 1} | kwargs
    with pytest.raises(ScheduleError, match=message):
        Dose(**fields)


def test_a_table_pads_subjects_and_records_when_resets_cancel_doses():
    table = DoseTable.from_doses(
        [
            [Dose(0.0, 100.0, 1, ii_h=12.0, addl=2), Dose(30.0, 50.0, 1, ii_h=12.0, ss=1)],
            [Dose(5.0, 10.0, 2, duration_h=2.0)],
        ]
    )
    assert table.shape == (2, 4)
    np.testing.assert_array_equal(table.time_h[0], [0.0, 12.0, 24.0, 30.0])
    np.testing.assert_array_equal(table.until_h[0], [30.0, 30.0, 30.0, np.inf])  # SS=1 resets
    assert table.reset[0].tolist() == [False, False, False, True]
    assert table.amount_mg[1].tolist() == [10.0, 0.0, 0.0, 0.0]  # padding: amount 0
    assert table.time_h[1].tolist() == [5.0] * 4  # at the last dose time, adding no new time
    assert table.end_h == 30.0
    sub = table.subjects(np.array([1]))
    assert sub.shape == (1, 4) and sub.duration_h[0, 0] == 2.0


def test_a_reset_cancels_pending_additional_doses():
    table = DoseTable.from_doses(
        [[Dose(0.0, 1.0, 1, ii_h=10.0, addl=4), Dose(25.0, 0.0, 1, reset=True)]]
    )
    # doses at 30 and 40 h were recorded before the reset: they never act
    assert table.time_h[0].tolist() == [0.0, 10.0, 20.0, 25.0, 30.0, 40.0]
    assert table.until_h[0].tolist() == [25.0, 25.0, 25.0, np.inf, 25.0, 25.0]


def test_dose_tables_are_pytrees():
    table = Regimen.oral(100, every_h=12, doses=2).to_doses(TwoCompartmentOral)
    leaves = jax.tree_util.tree_leaves(table)
    assert len(leaves) == 8
    doubled = jax.tree_util.tree_map(lambda a: a, table)
    assert isinstance(doubled, DoseTable) and doubled.cmt.tolist() == [1, 1]


def test_regimens_name_their_units_and_map_routes_to_compartments():
    r = Regimen.oral(500, every_h=12, doses=14) + Regimen.infusion(1000, 0.5, start_h=168.0)
    table = r.to_doses(TwoCompartmentOral)
    assert table.shape == (15,)
    assert set(table.cmt.tolist()) == {1, 2}  # oral into the depot, infusion into the central
    assert table.duration_h[-1] == 0.5 and table.amount_mg[-1] == 1000.0
    np.testing.assert_array_equal(r.dose_times_h()[:3], [0.0, 12.0, 24.0])
    ss = Regimen.bolus(100, every_h=8, doses=3, steady_state=True).to_doses(OneCompartment)
    assert ss.ss.tolist() == [1, 0, 0] and ss.ii_h[0] == 8.0


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: Regimen.oral(500, doses=14), ScheduleError, "every_h > 0"),
        (lambda: Regimen.oral(-5), ScheduleError, "dose_mg must be > 0"),
        (lambda: Regimen.oral(5, every_h=12, doses=0), ScheduleError, "doses must be an integer"),
        (lambda: Regimen.infusion(5, 0.0), ScheduleError, "duration_h > 0"),
        (lambda: Regimen.oral(5).to_doses(OneCompartment), ParameterError, "no 'oral' doses"),
        (lambda: Regimen().to_doses(OneCompartment), ScheduleError, "empty"),
        (lambda: Regimen.oral(5).to_doses(UvaPadova2008), ScheduleError, "not a PK model"),
        (
            lambda: DoseTable.from_doses([[Dose(0, 1, 1)], [Dose(0, 1, 1)]]).broadcast(3),
            ScheduleError,
            "2 subjects",
        ),
    ],
)
def test_bad_regimens_are_rejected(build, error, message):
    with pytest.raises(error, match=message):
        build()
