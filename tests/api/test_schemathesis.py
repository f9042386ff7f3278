"""The published OpenAPI spec, fuzzed by schemathesis against the live service: no server errors."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import hypo_trace

T0 = dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC)


@pytest.mark.slow
def test_openapi_spec_survives_schemathesis(live_service, tmp_path):
    store = live_service.service.store
    live_service.add_patient("p1")
    live_service.add_clinician("dr.a", ("p1",))
    _events, times, values = hypo_trace(T0)
    live_service.push("p1", times[0], values)
    assert live_service.service.host.wait_idle(120)
    r = httpx.post(
        f"{live_service.base_url}/auth/token",
        data={"username": "admin", "password": live_service.admin_password},
    )
    token = r.json()["access_token"]
    st = Path(sys.executable).with_name("st")
    config = tmp_path / "schemathesis.toml"
    # real ids, so the generated requests reach the twin, not just the 404 for an unknown patient
    config.write_text('[parameters]\npatient_id = "p1"\ndevice_id = "cgm-p1"\n')
    result = subprocess.run(
        [
            str(st), "--config-file", str(config), "run", f"{live_service.base_url}/openapi.json",
            "--checks", "not_a_server_error",
            "--header", f"Authorization: Bearer {token}",
            "--max-examples", "12",
            "--generation-deterministic",
            "--workers", "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,
    )  # fmt: skip
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    cases = re.search(r"(\d+) generated, (\d+) passed", report)
    assert cases is not None and cases[1] == cases[2] and int(cases[1]) > 500, report
    assert store.verify_audit().ok
