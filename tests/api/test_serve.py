"""`medtwin serve --demo` (what `make run` starts), as a user meets it: a fresh home, a terminal."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_demo_shows_live_patients(tmp_path):
    port = _free_port()
    env = {**os.environ, "MEDTWIN_HOME": str(tmp_path / "data")}
    env.pop("MEDTWIN_DATABASE_URL", None)
    env.pop("MEDTWIN_MQTT_URL", None)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "medtwin.cli", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = []
        password = None
        assert proc.stdout is not None
        while password is None and time.monotonic() - started < 120:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"password: (\S+)", line)
            password = m[1] if m else None
        assert password, "".join(lines)
        assert any(f"http://127.0.0.1:{port}/" in line for line in lines)
        base = f"http://127.0.0.1:{port}"
        token = None
        live: list[dict] = []
        while time.monotonic() - started < 180:
            try:
                if token is None:
                    r = httpx.post(
                        f"{base}/auth/token", data={"username": "admin", "password": password}
                    )
                    token = r.json()["access_token"]
                r = httpx.get(f"{base}/api/patients", headers={"Authorization": f"Bearer {token}"})
                live = [p for p in r.json() if p["latest"] is not None]
                if len(live) == 12:
                    break
            except (httpx.HTTPError, KeyError):
                pass
            time.sleep(1)
        elapsed = time.monotonic() - started
        assert len(live) == 12, f"{len(live)} live demo patients after {elapsed:.0f} s"
        print(f"12 live demo patients {elapsed:.1f} s after `medtwin serve --demo`")
        first = {p["id"]: p["latest"]["time"] for p in live}
        time.sleep(12)  # the stream goes on: a reading every 5 s per patient
        r = httpx.get(f"{base}/api/patients", headers={"Authorization": f"Bearer {token}"})
        moved = [p["id"] for p in r.json() if p["latest"] and p["latest"]["time"] != first[p["id"]]]
        assert len(moved) >= 10
        page = httpx.get(f"{base}/ward")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        # the hospital twin: the example hospital's census from the demo's ADT feed
        auth = {"Authorization": f"Bearer {token}"}
        census: dict = {}
        while time.monotonic() - started < 240:
            census = httpx.get(f"{base}/api/hospital/census", headers=auth).json()
            if census.get("inpatients", 0) > 200:
                break
            time.sleep(1)
        assert census["hospital"] == "Example District General Hospital", census
        assert census["inpatients"] > 200 and not census["unknown_units"]
        assert httpx.get(f"{base}/hospital").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        proc.stdout.close()
    # a restart keeps the data and prints no new password
    proc = subprocess.Popen(
        [sys.executable, "-m", "medtwin.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        head = "".join(proc.stdout.readline() for _ in range(3))
        assert "password:" not in head and "log in with your account" in head
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        proc.stdout.close()
