"""The checks every reader shares, exercised through the plain CSV reader and directly."""

from __future__ import annotations

import pandas as pd
import pytest

from medtwin.errors import ConfigurationError, ParameterError, UnitError
from medtwin.interop.wearables import read_csv
from medtwin.interop.wearables._quality import RawReading, assemble_history, check_units


def _csv(tmp_path, rows, header="time,glucose"):
    path = tmp_path / "cgm.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _kinds(h):
    return [i.kind for i in h.issues]


def _every_5_min(values, start="2026-01-01T08:00:00Z"):
    t0 = pd.Timestamp(start)
    return [f"{(t0 + pd.Timedelta(minutes=5 * k)).isoformat()},{v}" for k, v in enumerate(values)]


def test_clean_data_has_no_issues(tmp_path):
    h = read_csv(_csv(tmp_path, _every_5_min([100, 105, 110])))
    assert h.issues == ()
    assert h.glucose().tolist() == [100.0, 105.0, 110.0]


def test_exact_duplicate_removed_and_reported(tmp_path):
    rows = _every_5_min([100, 105])
    h = read_csv(_csv(tmp_path, [rows[0], rows[0], rows[1]]))
    assert h.glucose().tolist() == [100.0, 105.0]
    [issue] = h.issues
    assert issue.kind == "duplicate"
    assert issue.where == "line 3" and "line 2" in issue.message
    assert issue.time == pd.Timestamp("2026-01-01T08:00Z")


def test_conflicting_duplicate_keeps_the_first(tmp_path):
    h = read_csv(_csv(tmp_path, ["2026-01-01T08:00Z,100", "2026-01-01T08:00Z,140"]))
    assert h.glucose().tolist() == [100.0]
    [issue] = h.issues
    assert issue.kind == "conflict" and "140" in issue.message and "kept the first" in issue.message


def test_out_of_order_sorted_and_reported(tmp_path):
    rows = _every_5_min([100, 105, 110])
    h = read_csv(_csv(tmp_path, [rows[1], rows[0], rows[2]]))
    assert h.glucose().tolist() == [100.0, 105.0, 110.0]
    assert h.cgm["time"].is_monotonic_increasing
    [issue] = h.issues
    assert issue.kind == "out_of_order" and issue.where == "first at line 3"


def test_implausible_readings_excluded_with_their_values(tmp_path):
    h = read_csv(_csv(tmp_path, _every_5_min([100, 30, 450, 39, 401, 110])))
    assert h.glucose().tolist() == [100.0, 39.0, 401.0, 110.0]  # the limits are plausible
    implausible = [i for i in h.issues if i.kind == "implausible"]
    assert [i.where for i in implausible] == ["line 3", "line 4"]
    assert "30 mg/dL" in implausible[0].message and "450 mg/dL" in implausible[1].message


def test_gaps_over_15_min_reported_not_filled(tmp_path):
    rows = ["2026-01-01T08:00Z,100", "2026-01-01T08:15Z,105", "2026-01-01T08:45Z,110"]
    h = read_csv(_csv(tmp_path, rows))
    assert len(h.cgm) == 3
    [gap] = h.issues
    assert gap.kind == "gap" and "30 min" in gap.message
    assert gap.time == pd.Timestamp("2026-01-01T08:15Z")
    assert gap.where == "between line 3 and line 4"


def test_gap_threshold_is_configurable(tmp_path):
    rows = ["2026-01-01T08:00Z,100", "2026-01-01T08:15Z,105"]
    assert _kinds(read_csv(_csv(tmp_path, rows), max_gap_min=10)) == ["gap"]
    with pytest.raises(ConfigurationError, match="max_gap_min"):
        read_csv(_csv(tmp_path, rows), max_gap_min=0)
    with pytest.raises(ConfigurationError, match="warm_up_min"):
        read_csv(_csv(tmp_path, rows), warm_up_min=-1)


def test_warm_up_after_a_sensor_start_excluded(tmp_path):
    rows = [f"2026-01-01T{h:02d}:00Z,{100 + h}" for h in range(8, 13)]
    h = read_csv(_csv(tmp_path, rows), sensor_starts=[pd.Timestamp("2026-01-01T08:30Z")],
                 max_gap_min=120)  # fmt: skip
    # 09:00 and 10:00 are within 2 h of 08:30; 08:00 (before) and 11:00 on are kept
    assert h.glucose().tolist() == [108.0, 111.0, 112.0]
    warm = [i for i in h.issues if i.kind == "warm_up"]
    assert [i.where for i in warm] == ["line 3", "line 4"]
    assert "sensor start" in warm[0].message


def test_sensor_starts_must_be_aware(tmp_path):
    with pytest.raises(ParameterError, match="no time zone"):
        read_csv(_csv(tmp_path, _every_5_min([100])), sensor_starts=[pd.Timestamp("2026-01-01")])


def test_gap_is_measured_over_the_readings_kept(tmp_path):
    rows = _every_5_min([100, 500, 500, 500, 110])  # 20 min between the plausible ones
    h = read_csv(_csv(tmp_path, rows))
    assert _kinds(h).count("gap") == 1


def test_mmol_converted_at_the_boundary(tmp_path):
    h = read_csv(_csv(tmp_path, _every_5_min([5.5, 10.0])), units="mmol/L")
    assert h.glucose().round(2).tolist() == [99.09, 180.16]


def test_mmol_data_declared_mg_dl_raises(tmp_path):
    with pytest.raises(UnitError, match=r"look like mmol/L.*units='mmol/L'"):
        read_csv(_csv(tmp_path, _every_5_min([5.5, 6.1, 7.8, 12.0])))


def test_mg_dl_data_declared_mmol_raises(tmp_path):
    with pytest.raises(UnitError, match=r"look like mg/dL.*units='mg/dL'"):
        read_csv(_csv(tmp_path, _every_5_min([99, 110, 180, 250])), units="mmol/L")


def test_ambiguous_units_are_reported_not_raised(tmp_path):
    h = read_csv(_csv(tmp_path, _every_5_min([100, 110, 6.0, 6.2, 120, 130])))
    assert _kinds(h)[0] == "unit_suspect"
    assert "2 of 6 values declared in mg/dL look like mmol/L" in h.issues[0].message
    assert _kinds(h).count("implausible") == 2


def test_check_units_thresholds():
    assert check_units([], "mg/dL", source="x") == []
    assert check_units([40, 400, 120], "mg/dL", source="x") == []
    assert check_units([2.2, 22.2, 6.0], "mmol/L", source="x") == []
    [issue] = check_units([5.0, 6.0, 7.0, 150.0], "mmol/L", source="x")
    assert issue.kind == "unit_suspect"


def test_unknown_units_and_time_zone_rejected(tmp_path):
    path = _csv(tmp_path, _every_5_min([100]))
    with pytest.raises(UnitError, match="'mg/dL' or 'mmol/L'"):
        read_csv(path, units="mg")
    with pytest.raises(ConfigurationError, match="unknown time zone 'Mars/Base'"):
        read_csv(path, tz="Mars/Base")


def test_assemble_history_directly():
    t = pd.Timestamp("2026-01-01T08:00Z")
    h = assemble_history([RawReading(t, 120.0, "here")], source="test", patient_id="p")
    assert (h.source, h.patient_id, h.glucose().tolist()) == ("test", "p", [120.0])
    assert h.events.empty
