"""Test-suite wide settings.

``MEDTWIN_REQUIRE_SERVICES=1`` (set by .ci/run) turns a skip for a missing service (PostgreSQL,
Mosquitto, a browser) into a failure, so CI can never pass by skipping what it must test.
"""

from __future__ import annotations

import os

import pytest

import medtwin  # noqa: F401  (float64 before any test touches JAX)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if (
        os.environ.get("MEDTWIN_REQUIRE_SERVICES") == "1"
        and report.skipped
        and item.get_closest_marker("service")
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} needs a service but skipped with MEDTWIN_REQUIRE_SERVICES=1: {reason}"
        )
    return report


# -- the service, for API, MQTT and browser tests ---------------------------------------------


def hypo_trace(start):
    """A patient heading into hypoglycaemia, as the twin's own model says one would.

    UVA/Padova adolescent#001 on its basal rate is given a 10 U correction bolus an hour in:
    glucose falls from 149 mg/dL and crosses 70 about 3.5 hours later.  Returns the logged
    events (basal, bolus) as records for patient ``"{pid}"`` to fill in, the reading times, and
    the noise-free CGM values down to 80 mg/dL (the twin should then warn of what follows).
    """
    import datetime as dt

    import numpy as np

    from medtwin.models import UvaPadova2008, load_patients
    from medtwin.simulate import Schedule, simulate

    catalogue = load_patients(["adolescent#001"])
    basal = float(catalogue.basal_u_per_min[0] * 60)
    t = np.arange(0, 361, 5.0)
    sol = simulate(
        UvaPadova2008(), Schedule().basal(0, basal).bolus(60, 10), t, params=catalogue.params
    )
    g = np.asarray(sol["Gsub"][0])
    n = int(np.argmax(g < 79))
    events = [
        ("basal", start, basal, "U/h"),
        ("bolus", start + dt.timedelta(minutes=60), 10.0, "U"),
    ]
    times = [start + dt.timedelta(minutes=5 * i) for i in range(n)]
    return events, times, [float(v) for v in g[:n]]


class ServiceHarness:
    """A running service with an admin, and shortcuts to set up patients and push readings."""

    def __init__(self, service, base_url: str, admin_password: str) -> None:
        self.service = service
        self.base_url = base_url
        self.admin_password = admin_password

    def add_clinician(self, username: str, patients: tuple[str, ...] = ()) -> str:
        from medtwin.security import Role

        password = f"pw-{username}-0123456789"
        user_id = self.service.store.create_user(username, password, Role.clinician)
        for pid in patients:
            self.service.store.assign_clinician(pid, user_id)
        return password

    def add_patient(self, patient_id: str, *, device: bool = True) -> str | None:
        from medtwin.records import DeviceRecord, PatientRecord

        self.service.store.add_patient(
            PatientRecord(
                patient_id, identifier=f"urn:test|{patient_id}", name=f"Test {patient_id}"
            )
        )
        if not device:
            return None
        self.service.store.add_device(DeviceRecord(f"cgm-{patient_id}", patient_id, "cgm"))
        return self.service.device_token(f"cgm-{patient_id}")

    def push(self, patient_id: str, start, values, *, first_seq: int = 0, every_min: float = 5):
        """Store CGM readings every ``every_min`` from ``start`` through the device path."""
        import datetime as dt

        times = [start + dt.timedelta(minutes=every_min * i) for i in range(len(values))]
        message = {
            "token": self.service.device_token(f"cgm-{patient_id}"),
            "first_seq": first_seq,
            "times": times,
            "values": [float(v) for v in values],
        }
        return self.service.ingest_device_message(f"cgm-{patient_id}", message)


@pytest.fixture
def live_service(tmp_path):
    """The real service (uvicorn on a free port, SQLite in tmp_path) in a background thread."""
    import socket
    import threading
    import time

    import uvicorn

    from medtwin.api import Service, Settings, create_app

    service = Service.open(Settings(home=tmp_path, n_members=100))
    password = service.bootstrap_admin()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    yield ServiceHarness(service, f"http://127.0.0.1:{port}", password)
    server.should_exit = True
    thread.join(timeout=30)


# -- a hospital whose units are those of the synthetic ADT stream ------------------------------


def synthetic_hospital() -> dict:
    """A hospital spec with the units of ``medtwin.hospital.synthetic`` (ED, MED, SURG, CARD,
    ICU, DAY and their beds), so the synthetic ADT stream's census can be forecast.

    Small enough to simulate quickly: one ED pathway, ESI 1-5 classes with the stream's codes.
    """
    from medtwin.hospital.synthetic import UNITS

    def los(mean: float, sd: float, unit: str = "d") -> dict:
        return {"dist": "lognormal", "mean": mean, "sd": sd, "unit": unit}

    shares = (0.01, 0.12, 0.45, 0.32, 0.10)
    admit = (0.9, 0.6, 0.35, 0.08, 0.02)
    return {
        "name": "Synthetic stream hospital",
        "timezone": "UTC",
        "run": {"days": 7, "warmup_days": 2},
        "ed": {
            "name": "ED",
            "arrivals": {"per_day": 285},
            "resources": {"cubicle": {"capacity": UNITS["ED"]}, "doctor": {"capacity": 8}},
            "classes": {
                f"esi{k}": {
                    "share": shares[k - 1],
                    "priority": k,
                    "codes": [str(k)],
                    "pathway": "main",
                    "admission": {
                        "probability": admit[k - 1],
                        "units": {"MED": 0.55, "SURG": 0.2, "CARD": 0.15, "ICU": 0.1},
                    },
                }
                for k in range(1, 6)
            },
            "pathways": {
                "main": [
                    {
                        "name": "assessment",
                        "seize": ["cubicle"],
                        "use": ["doctor"],
                        "provider": True,
                        "duration": los(40, 20, "min"),
                    },
                    {"name": "investigations", "duration": los(120, 60, "min")},
                ]
            },
        },
        "units": {
            "MED": {"beds": UNITS["MED"], "los": los(4.0, 3.0), "next": {"ICU": 0.02}},
            "SURG": {"beds": UNITS["SURG"], "los": los(3.0, 2.5)},
            "CARD": {"beds": UNITS["CARD"], "los": los(2.5, 2.0)},
            "ICU": {
                "beds": UNITS["ICU"],
                "los": los(3.0, 3.0),
                "next": {"MED": 0.6},
                "discharge_window": False,
            },
            "DAY": {"beds": UNITS["DAY"], "los": los(6.0, 2.0, "h"), "discharge_window": False},
        },
        "admissions": {
            "elective": {
                "unit": "SURG",
                "per_weekday": [30, 30, 30, 30, 25, 0, 0],
                "between": ["07:00", "10:00"],
            },
            "day_case": {
                "unit": "DAY",
                "per_weekday": [20, 20, 20, 20, 20, 0, 0],
                "between": ["07:00", "09:30"],
            },
        },
    }
