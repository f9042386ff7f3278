import copy

import numpy as np
import pytest
import yaml

from medtwin.errors import ConfigurationError
from medtwin.hospital import HospitalSpec, Scenario, load_hospital
from medtwin.hospital.spec import LogNormal, Resource, residual


@pytest.fixture(scope="module")
def example_dict():
    return load_hospital("example_hospital").model_dump(mode="json", exclude_none=True)


def test_the_bundled_hospitals_load():
    spec = load_hospital("example_hospital")
    assert isinstance(spec, HospitalSpec)
    assert sum(u.beds for u in spec.units.values()) == 400
    assert spec.ed is not None and spec.ed.arrivals.week_rates().sum() / 7 == pytest.approx(150)
    assert spec.unit_names()["ITU"] == "ICU" and spec.unit_names()["AE"] == "ED"
    ts = load_hospital("treat_sim_nelson2013")
    assert ts.ed is not None and set(ts.ed.classes) == {"trauma", "non_trauma"}
    assert load_hospital(spec) is spec


def test_a_file_round_trips(tmp_path, example_dict):
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(example_dict))
    assert load_hospital(path) == load_hospital("example_hospital")
    (tmp_path / "h.json").write_text(__import__("json").dumps(example_dict))
    assert load_hospital(tmp_path / "h.json") == load_hospital("example_hospital")


def _error(data) -> str:
    with pytest.raises(ConfigurationError) as info:
        load_hospital(data)
    return str(info.value)


@pytest.mark.parametrize(
    ("edit", "path", "words"),
    [
        (
            lambda d: d["units"]["ICU"].update(beds=0),
            "units.ICU.beds",
            "greater than or equal to 1",
        ),
        (lambda d: d["units"]["AMU"]["los"].update(sd=-1), "units.AMU.los.sd", "greater than 0"),
        (
            lambda d: d["ed"]["resources"]["doctor"].update(shifs=[]),
            "ed.resources.doctor.shifs",
            "Extra inputs",
        ),
        (
            lambda d: d["ed"]["resources"]["doctor"]["shifts"][0].update(start="25:00"),
            "ed.resources.doctor.shifts[0].start",
            "clock time",
        ),
        (
            lambda d: d["ed"]["pathways"]["majors"][1].update(use=["docter"]),
            "ed.pathways.majors[1].use[0]",
            "unknown resource 'docter'",
        ),
        (
            lambda d: d["ed"]["classes"]["urgent"]["admission"]["units"].update(ICU=0.5),
            "ed.classes.urgent.admission.units",
            "sum to 1",
        ),
        (
            lambda d: d["ed"]["classes"]["urgent"].update(pathway="trauma"),
            "ed.classes.urgent.pathway",
            "unknown pathway 'trauma'",
        ),
        (
            lambda d: d["units"]["ICU"]["next"].update(ward9=0.1),
            "units.ICU.next.ward9",
            "unknown unit",
        ),
        (
            lambda d: d["units"]["surgery"]["los_by_class"].update(
                nobody={"dist": "fixed", "value": 1}
            ),
            "units.surgery.los_by_class.nobody",
            "unknown class",
        ),
        (
            lambda d: d["ed"]["pathways"]["minors"][1]["duration"].update(dist="weibull"),
            "ed.pathways.minors[1].duration",
            "weibull",
        ),
        (
            lambda d: d["ed"]["arrivals"].update(hour_of_day=[1.0] * 23),
            "ed.arrivals.hour_of_day",
            "at least 24",
        ),
        (lambda d: d.update(timezone="Mars/Olympus"), "timezone", "unknown time zone"),
        (
            lambda d: d["admissions"]["elective_surgery"].update(unit="theatre"),
            "admissions.elective_surgery.unit",
            "unknown unit 'theatre'",
        ),
        (
            lambda d: d["units"]["AMU"].update(aliases=["ITU"]),
            "units.ICU.aliases",
            "also used by units.AMU",
        ),
    ],
)
def test_a_bad_field_is_named_by_its_path(example_dict, edit, path, words):
    data = copy.deepcopy(example_dict)
    edit(data)
    message = _error(data)
    assert path in message, message
    assert words in message, message
    assert "Example District General Hospital" in message


def test_every_bad_field_is_reported_at_once(example_dict):
    data = copy.deepcopy(example_dict)
    data["units"]["ICU"]["beds"] = -1
    data["units"]["AMU"]["beds"] = "many"
    message = _error(data)
    assert "units.ICU.beds" in message and "units.AMU.beds" in message


def test_bad_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nunits: [1, 2\n")
    assert "bad.yaml" in _error(bad)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    assert "mapping" in _error(tmp_path / "list.yaml")
    assert "no hospital file" in _error("no_such_hospital")


def test_a_bad_scenario_is_a_configuration_error():
    spec = load_hospital("example_hospital")
    with pytest.raises(ConfigurationError, match=r"extra_beds\.ward9: unknown unit"):
        Scenario(extra_beds={"ward9": 3}).apply(spec)
    with pytest.raises(ConfigurationError, match=r"extra_staff\.surgeon: unknown resource"):
        Scenario(extra_staff={"surgeon": 1}).apply(spec)
    with pytest.raises(ConfigurationError, match=r"units\.ICU\.beds"):
        Scenario(extra_beds={"ICU": -16}).apply(spec)
    from medtwin.hospital import simulate

    with pytest.raises(ConfigurationError, match=r"surge\.multiplier"):
        simulate(spec, days=1, warmup_days=0, scenario={"surge": {"multiplier": -2}})


def test_shift_rosters_compile_to_weekly_capacity():
    r = Resource(
        shifts=[
            {"start": "08:00", "end": "20:00", "staff": 3},
            {"start": "20:00", "end": "08:00", "staff": 2},
            {"start": "10:00", "end": "14:00", "staff": 1, "days": ["Sat", "Sun"]},
        ]
    )
    times, levels = r.schedule()

    def at(day, hhmm):
        h, m = map(int, hhmm.split(":"))
        w = day * 1440 + h * 60 + m
        return int(levels[np.searchsorted(times, w, side="right") - 1])

    assert at(0, "00:00") == 2  # Sunday's night shift runs into Monday
    assert at(0, "08:00") == 3 and at(0, "19:59") == 3 and at(0, "20:00") == 2
    assert at(5, "11:00") == 4 and at(6, "13:59") == 4 and at(6, "14:00") == 3
    assert at(6, "23:00") == 2
    assert Resource(by_hour=[1] * 8 + [4] * 12 + [2] * 4).schedule()[1].max() == 4
    assert Resource(capacity=5, adjust=-7).schedule()[1].tolist() == [0]


def test_residual_stays_follow_the_conditional_distribution():
    """X - e | X > e: memoryless for the exponential, longer with elapsed time for a lognormal."""
    rng = np.random.default_rng(3)
    los = LogNormal(dist="lognormal", mean=5.0, sd=6.0, unit="d")
    frozen = los.frozen()
    for elapsed_d in (0.0, 3.0, 15.0):
        e = elapsed_d * 1440
        rest = residual(los, np.full(40_000, e), rng.random(40_000))
        # E[X - e | X > e] = int_e^inf S(x) dx / S(e)
        grid = np.linspace(e, e + 200 * 1440, 400_001)
        expected = np.trapezoid(frozen.sf(grid), grid) / frozen.sf(e)
        assert rest.mean() == pytest.approx(expected, rel=0.03)
    young = residual(los, np.zeros(1000), rng.random(1000)).mean()
    old = residual(los, np.full(1000, 15 * 1440.0), rng.random(1000)).mean()
    assert old > young
