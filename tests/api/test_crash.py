"""SIGKILL the service in the middle of an ingestion run: nothing acknowledged is lost."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from medtwin.api import Service, Settings
from medtwin.records import DeviceRecord, PatientRecord

T0 = dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC)
BATCH = 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MEDTWIN_HOME": str(home)}
    env.pop("MEDTWIN_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "medtwin.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the service did not start")


def _batch(k: int) -> dict:
    times = [(T0 + dt.timedelta(minutes=5 * (k * BATCH + i))).isoformat() for i in range(BATCH)]
    return {"first_seq": k * BATCH, "times": times, "values": [100.0 + i for i in range(BATCH)]}


@pytest.mark.slow
def test_sigkill_mid_ingestion_loses_nothing_acknowledged(tmp_path):
    setup = Service.open(Settings(home=tmp_path))
    setup.store.add_patient(PatientRecord("p1", identifier="urn:x|1"))
    setup.store.add_device(DeviceRecord("cgm-1", "p1", "cgm"))
    token = setup.device_token("cgm-1")
    setup.store.close()

    port = _free_port()
    proc = _start(tmp_path, port)
    url = f"http://127.0.0.1:{port}/api/devices/cgm-1/readings"
    headers = {"Authorization": f"Bearer {token}"}
    acked: list[int] = []
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(timeout=5) as client:
            for k in range(10_000):
                if stop.is_set():
                    return
                try:
                    r = client.post(url, json=_batch(k), headers=headers)
                except httpx.HTTPError:
                    return  # the service died under us: this batch was never acknowledged
                if r.status_code == 200:
                    acked.append(k)

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 30
    while len(acked) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stop.set()
    sender.join()
    assert len(acked) >= 20, "too few batches were acknowledged before the kill"

    proc = _start(tmp_path, port)
    try:
        with httpx.Client(timeout=30) as client:
            # everything acknowledged is there
            after = Service.open(Settings(home=tmp_path))
            stored = after.store.observations("p1")
            seqs = {int(o.source_id.rsplit(":", 1)[-1]) for o in stored if o.source_id}
            for k in acked:
                assert set(range(k * BATCH, (k + 1) * BATCH)) <= seqs, f"batch {k} lost"
            # resending everything stores nothing twice
            n_before = len(stored)
            for k in range(max(acked) + 2):
                r = client.post(url, json=_batch(k), headers=headers)
                assert r.status_code == 200
            stored = after.store.observations("p1")
            assert len(stored) == (max(acked) + 2) * BATCH >= n_before
            assert len({(o.time, o.code) for o in stored}) == len(stored)
            assert after.store.verify_audit().ok
            after.store.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
