from __future__ import annotations

import json

import pandas as pd
import pytest

from medtwin.errors import DataFormatError, ParameterError, UnitError
from medtwin.interop.wearables import read_nightscout

T0 = pd.Timestamp("2026-01-01T08:00Z")


def _sgv(k, value, **extra):
    t = T0 + pd.Timedelta(minutes=5 * k)
    return {"type": "sgv", "sgv": value, "date": int(t.value // 1_000_000), **extra}


def _entries(values):
    return [_sgv(k, v) for k, v in enumerate(values)]


def _at(minutes):
    return (T0 + pd.Timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _kinds(h):
    return [i.kind for i in h.issues]


def test_reads_files_and_lists_alike(tmp_path):
    entries = _entries([100, 110])
    path = tmp_path / "entries.json"
    path.write_text(json.dumps(entries))
    from_file, from_list = read_nightscout(path), read_nightscout(entries)
    pd.testing.assert_frame_equal(from_file.cgm, from_list.cgm)
    assert from_file.glucose().tolist() == [100.0, 110.0]
    assert from_file.source == f"nightscout:{path}"


def test_descending_order_of_the_api_is_not_an_issue():
    h = read_nightscout(_entries([100, 110, 120])[::-1])
    assert h.glucose().tolist() == [100.0, 110.0, 120.0]
    assert h.issues == ()


def test_mixed_order_sorted_and_reported():
    e = _entries([100, 110, 120])
    h = read_nightscout([e[1], e[0], e[2]])
    assert h.glucose().tolist() == [100.0, 110.0, 120.0]
    assert _kinds(h) == ["out_of_order"] and h.issues[0].where == "first at entries[1]"


def test_date_string_used_without_date():
    h = read_nightscout([{"type": "sgv", "sgv": 120, "dateString": "2026-01-01T09:00:00+01:00"}])
    assert h.cgm["time"][0] == T0


def test_meter_and_calibration_entries_reported_not_read():
    entries = [*_entries([100, 110]), {"type": "mbg", "mbg": 105, "date": 1767254400000},
               {"type": "cal", "slope": 800, "date": 1767254400000},
               {"type": "mbg", "mbg": 99, "date": 1767254500000}]  # fmt: skip
    h = read_nightscout(entries)
    assert len(h.cgm) == 2
    skipped = {i.message.split("'")[1]: i for i in h.issues if i.kind == "skipped"}
    assert set(skipped) == {"mbg", "cal"}
    assert skipped["mbg"].message.startswith("2 entries") and skipped["mbg"].where == (
        "first at entries[2]"
    )


def test_duplicate_uploads_removed():
    e = _entries([100, 110])
    h = read_nightscout([e[0], e[0], e[1]])
    assert h.glucose().tolist() == [100.0, 110.0] and _kinds(h) == ["duplicate"]


def test_low_sgv_codes_are_implausible():
    h = read_nightscout(_entries([100, 110, 39, 5, 120, 130, 125, 118, 111, 104, 100, 99]))
    assert _kinds(h) == ["implausible"]
    assert "5 mg/dL" in h.issues[0].message and h.issues[0].where == "entries[3]"
    assert 39.0 in h.glucose()


def test_treatments_bolus_and_carbs():
    treatments = [
        {"eventType": "Meal Bolus", "created_at": _at(2), "insulin": 4.0, "carbs": 45},
        {"eventType": "Correction Bolus", "created_at": _at(30), "insulin": 1.5},
        {"eventType": "Carb Correction", "created_at": _at(60), "carbs": 15, "insulin": None},
        {"eventType": "Bolus Wizard", "timestamp": _at(90), "insulin": 2},
        {"eventType": "Note", "created_at": _at(91), "notes": "walk"},
    ]
    h = read_nightscout(_entries([100] * 20), treatments)
    assert h.events["kind"].tolist() == ["bolus", "carbs", "bolus", "carbs", "bolus"]
    assert h.events["value"].tolist() == [4.0, 45.0, 1.5, 15.0, 2.0]
    assert h.events["time"][0] == T0 + pd.Timedelta(minutes=2)
    [note] = h.issues
    assert note.kind == "skipped" and "'Note'" in note.message


def test_treatments_newest_first_are_not_out_of_order():
    treatments = [
        {"eventType": "Correction Bolus", "created_at": _at(60), "insulin": 1.0},
        {"eventType": "Meal Bolus", "created_at": _at(30), "insulin": 4.0, "carbs": 50},
        {"eventType": "Correction Bolus", "created_at": _at(0), "insulin": 2.0},
    ]
    h = read_nightscout(_entries([100] * 15), treatments)
    assert h.events["value"].tolist() == [2.0, 4.0, 50.0, 1.0]
    assert h.issues == ()
    h = read_nightscout(_entries([100] * 15), [treatments[1], treatments[0], treatments[2]])
    assert [i.kind for i in h.issues] == ["out_of_order"]
    assert h.events["value"].tolist() == [2.0, 4.0, 50.0, 1.0]


def test_unknown_event_type_reported_and_its_insulin_still_read():
    treatments = [
        {"eventType": "Mystery", "created_at": _at(0)},
        {"eventType": "Pizza Bolus", "created_at": _at(5), "insulin": 3.0},
    ]
    h = read_nightscout(_entries([100, 100]), treatments)
    assert h.events["value"].tolist() == [3.0]
    unknown = [i for i in h.issues if i.kind == "unknown_event"]
    assert [i.where for i in unknown] == ["treatments[0]", "treatments[1]"]
    assert "'Mystery'" in unknown[0].message and "was read" in unknown[1].message


def test_duplicate_bolus_upload_is_not_doubled():
    bolus = {"eventType": "Correction Bolus", "created_at": _at(0), "insulin": 2.0}
    h = read_nightscout(_entries([100]), [bolus, dict(bolus)])
    assert h.events["value"].tolist() == [2.0] and _kinds(h) == ["duplicate"]


def test_temp_basal_returns_to_scheduled_rate_when_known():
    treatments = [
        {"eventType": "Temp Basal", "created_at": _at(0), "absolute": 0.5, "duration": 30},
        {"eventType": "Temp Basal", "created_at": _at(60), "rate": 2.0, "duration": 60},
        {"eventType": "Temp Basal", "created_at": _at(90), "percent": -50, "duration": 30},
    ]
    h = read_nightscout(_entries([100] * 40), treatments, basal_u_per_h=1.0)
    basal = h.events[h.events["kind"] == "basal"]
    minutes = ((basal["time"] - T0).dt.total_seconds() / 60).tolist()
    # the second temp basal is cut short by the third, which then returns to 1.0 U/h
    assert list(zip(minutes, basal["value"], strict=True)) == [
        (0.0, 0.5), (30.0, 1.0), (60.0, 2.0), (90.0, 0.5), (120.0, 1.0),
    ]  # fmt: skip
    assert h.issues == ()


def test_temp_basal_without_scheduled_rate_records_the_start_only():
    treatments = [
        {"eventType": "Temp Basal", "created_at": _at(0), "absolute": 0.0, "duration": 30},
        {"eventType": "Temp Basal", "created_at": _at(60), "duration": 0},
        {"eventType": "Temp Basal", "created_at": _at(70), "percent": 20, "duration": 30},
    ]
    h = read_nightscout(_entries([100]), treatments)
    assert h.events["value"].tolist() == [0.0]
    messages = [i.message for i in h.issues if i.kind == "skipped"]
    assert any("+20 %" in m for m in messages)
    assert any(m.startswith("2 returns to the scheduled basal") for m in messages)


def test_suspend_and_resume_pump():
    treatments = [
        {"eventType": "Suspend Pump", "created_at": _at(0)},
        {"eventType": "Resume Pump", "created_at": _at(20)},
        {"eventType": "Temp Basal", "created_at": _at(30), "absolute": 2.0},
        {"eventType": "Temp Basal End", "created_at": _at(40)},
    ]
    h = read_nightscout(_entries([100]), treatments, basal_u_per_h=0.8)
    assert h.events["value"].tolist() == [0.0, 0.8, 2.0, 0.8]
    with pytest.raises(ParameterError, match="basal_u_per_h"):
        read_nightscout(_entries([100]), treatments, basal_u_per_h=-1)


def test_combo_bolus_extension_reported():
    treatments = [{"eventType": "Combo Bolus", "created_at": _at(0), "insulin": 2.0,
                   "enteredinsulin": 5.0, "relative": 1.5, "duration": 120}]  # fmt: skip
    h = read_nightscout(_entries([100]), treatments)
    assert h.events["value"].tolist() == [2.0]
    assert _kinds(h) == ["skipped"] and "3 U of 5 U" in h.issues[0].message


def test_sensor_start_excludes_warm_up():
    entries = _entries([100 + k for k in range(36)])  # 3 h of readings
    treatments = [{"eventType": "Sensor Start", "created_at": _at(30)}]
    h = read_nightscout(entries, treatments)
    warm = [i for i in h.issues if i.kind == "warm_up"]
    assert len(warm) == 24  # 30 min .. 145 min after the start of the readings
    assert warm[0].where == "entries[6]"
    assert len(h.cgm) == 36 - 24
    assert _kinds(h).count("gap") == 1  # the twin sees the warm-up as a gap


def test_mmol_units_converted_and_confusion_detected():
    assert read_nightscout(_entries([5.5]), units="mmol/L").glucose().round(2).tolist() == [99.09]
    with pytest.raises(UnitError, match="entries: glucose declared in mg/dL"):
        read_nightscout(_entries([5.5, 6.0, 8.2]))


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"type": "sgv", "sgv": "high", "date": 1767254400000}], r"entries\[0\]\.sgv: cannot"),
        ([{"type": "sgv", "sgv": 100}], r"entries\[0\]: entry has neither 'date'"),
        ([{"type": "sgv", "date": 1767254400000}], r"entries\[0\]\.sgv: an sgv entry has no"),
        ([{"type": "sgv", "sgv": 100, "date": 1767254400}], r"entries\[0\]\.date: .*milliseconds"),
        ([{"type": "sgv", "sgv": 100, "dateString": "yesterday noon"}], r"\[0\]\.dateString"),
        ([{"type": "sgv", "sgv": 100, "dateString": "2026-01-01T08:00"}], "no UTC offset"),
        ([_sgv(0, 100), "oops"], r"entries\[1\]: expected an object"),
        ({"sgv": 100}, "expected a JSON array"),
    ],
)
def test_malformed_entries_name_the_field(entries, message):
    with pytest.raises(DataFormatError, match=message):
        read_nightscout(entries)


@pytest.mark.parametrize(
    ("treatment", "message"),
    [
        ({"eventType": "Meal Bolus", "insulin": 2}, r"treatments\[0\]: treatment has no 'created_at'"),
        ({"eventType": "Meal Bolus", "created_at": _at(0), "insulin": -2}, r"\[0\]\.insulin: insulin must"),
        ({"eventType": "Meal Bolus", "created_at": _at(0), "carbs": "lots"}, r"\[0\]\.carbs: cannot read"),
        ({"eventType": "Temp Basal", "created_at": _at(0), "duration": 30}, r"\[0\]: Temp Basal has no"),
        ({"eventType": 7, "created_at": _at(0)}, r"\[0\]\.eventType"),
        ({"eventType": "Note", "created_at": "soon"}, r"\[0\]\.created_at: cannot read 'soon'"),
    ],
)  # fmt: skip
def test_malformed_treatments_name_the_field(treatment, message):
    with pytest.raises(DataFormatError, match=message):
        read_nightscout(_entries([100]), [treatment])


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "entries.json"
    path.write_text('[\n  {"type": "sgv", "sgv": 100,\n   "date": }\n]')
    with pytest.raises(DataFormatError, match=r"entries\.json, line 3, column 12: invalid JSON"):
        read_nightscout(path)


def test_newest_first_treatments_with_a_temp_basal_are_not_out_of_order():
    from medtwin.interop import read_nightscout

    entries = [
        {"type": "sgv", "sgv": 120 + k, "date": 1_767_225_600_000 + k * 300_000} for k in range(12)
    ][::-1]
    treatments = [
        {"eventType": "Meal Bolus", "created_at": "2026-01-01T00:30:00Z", "carbs": 40, "insulin": 4},
        {"eventType": "Temp Basal", "created_at": "2026-01-01T00:00:00Z", "absolute": 0.8,
         "duration": 60},
    ]  # fmt: skip
    h = read_nightscout(entries, treatments, basal_u_per_h=1.0)
    assert not [i for i in h.issues if i.kind == "out_of_order"]
    assert list(h.events["time"]) == sorted(h.events["time"])
    assert (h.events["kind"] == "basal").sum() == 2  # the temp basal and its return to 1 U/h
