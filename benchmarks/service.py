"""Service ingestion benchmarks: FHIR Observations fully validated and committed; MQTT devices.

    python benchmarks/service.py                     # SQLite, and PostgreSQL if it answers
    python benchmarks/service.py --mqtt-seconds 60   # a shorter MQTT run (the target is 300 s)

1. FHIR: CGM Observations as FHIR JSON, each validated (R4B model, FHIRPath invariants, code
   sets), translated to records and committed in batches of 1,000 (target >= 5,000/s).
   The light path (pre-validated device readings) is measured by benchmarks/store.py.
2. MQTT: 200 simulated devices publish one reading per second each to Mosquitto
   (127.0.0.1:1883); the bridge stores them and the hosted twins assimilate them.  Reported:
   readings published, stored, lost and duplicated, and the reading-to-twin-update latency
   (publish -> the patient's twin update that follows the reading's commit), p50/p99, over the
   readings that arrive once the patient's twin exists (a twin starts at a patient's 12th
   reading; the readings before it are counted apart), and p99 after the first 30 s
   (target: zero lost or duplicated, p99 <= 1 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

PG_URL = "postgresql+pg8000://postgres@127.0.0.1:5432/test"
T0 = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _pg_database() -> str | None:
    """A fresh PostgreSQL database for this run (dropped by the caller), or None."""
    if not _reachable("127.0.0.1", 5432):
        return None
    import sqlalchemy as sa

    name = f"medtwin_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return name


def _drop_pg(name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    engine.dispose()


def _service(home: Path, url: str | None, **settings: Any) -> Any:
    from medtwin.api import Service, Settings

    return Service.open(Settings(home=home, database_url=url, **settings))


def _fhir_observation(i: int, patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"cgm-{i}",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "99504-3"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": (T0 + dt.timedelta(minutes=5 * i)).isoformat().replace("+00:00", "Z"),
        "valueQuantity": {"value": 90 + (i % 120), "unit": "mg/dL",
                          "system": "http://unitsofmeasure.org", "code": "mg/dL"},
    }  # fmt: skip


def bench_fhir(service: Any, n: int = 20_000, batch: int = 1000) -> float:
    """Observations/s through to_records (which validates) -> one committed transaction per batch."""
    from medtwin.interop.fhir import to_records
    from medtwin.records import PatientRecord

    service.store.add_patient(PatientRecord("bench-fhir"))
    resources = [_fhir_observation(i, "bench-fhir") for i in range(n)]
    started = time.perf_counter()
    for k in range(0, n, batch):
        records = []
        for r in resources[k : k + batch]:
            records.extend(to_records(r).observations)
        service.store.ingest(observations=records, message_id=f"bench-{k}")
    return n / (time.perf_counter() - started)


def bench_mqtt(
    service: Any, n_devices: int, seconds: float, rate_hz: float = 1.0
) -> dict[str, Any]:
    """Devices publishing through Mosquitto into the service; loss, duplicates, latency."""
    import paho.mqtt.client as paho

    from medtwin.api import MqttAddress
    from medtwin.api.mqtt import MqttBridge
    from medtwin.records import DeviceRecord, PatientRecord

    devices = [f"bench-cgm-{i:03d}" for i in range(n_devices)]
    for i, dev in enumerate(devices):
        service.store.add_patient(PatientRecord(f"bench-p{i:03d}"))
        service.store.add_device(DeviceRecord(dev, f"bench-p{i:03d}", "cgm"))
    tokens = {dev: service.device_token(dev) for dev in devices}
    patient_of = {dev: f"bench-p{i:03d}" for i, dev in enumerate(devices)}

    published: dict[tuple[str, int], float] = {}
    committed: dict[tuple[str, int], float] = {}
    updates: defaultdict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()

    ingest = service.ingest_device_messages

    def ingest_and_note(messages: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        outcomes = ingest(messages)
        now = time.time()
        with lock:
            for device_id, message in messages:
                for k in range(len(message["values"])):
                    committed[(device_id, message["first_seq"] + k)] = now
        return outcomes

    publish = service.broadcaster.publish

    def publish_and_note(patient_id: str, message: dict[str, Any]) -> None:
        if message.get("type") == "update":
            with lock:
                updates[patient_id].append(time.time())
        publish(patient_id, message)

    service.broadcaster.publish = publish_and_note  # type: ignore[method-assign]
    bridge_id = f"medtwin-bench-{uuid.uuid4().hex[:6]}"
    bridge = MqttBridge(MqttAddress("127.0.0.1"), ingest_and_note, client_id=bridge_id)
    bridge.start()
    clients = []
    for k in range(4):
        c = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{k}-{uuid.uuid4().hex[:6]}"
        )
        c.max_inflight_messages_set(1000)
        c.connect("127.0.0.1", 1883)
        c.loop_start()
        clients.append(c)
    start = time.time()
    seq = 0
    pending = []
    while time.time() - start < seconds:
        tick = start + seq / rate_hz
        time.sleep(max(0.0, tick - time.time()))
        for j, dev in enumerate(devices):
            now = time.time()
            payload = json.dumps({"token": tokens[dev], "seq": seq, "value": 80 + (seq + j) % 150,
                                  "time": dt.datetime.fromtimestamp(now, dt.UTC).isoformat()})  # fmt: skip
            published[(dev, seq)] = now
            pending.append(clients[j % 4].publish(f"medtwin/{dev}/observations", payload, qos=1))
        seq += 1
    for info in pending:
        info.wait_for_publish(30)
    deadline = time.time() + 120
    while len(committed) < len(published) and time.time() < deadline:
        time.sleep(0.2)
    service.host.wait_idle(120)
    for c in clients:
        c.loop_stop()
        c.disconnect()
    bridge.stop()
    forget = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=bridge_id, clean_session=True)
    forget.connect("127.0.0.1", 1883)
    forget.disconnect()  # the bench's persistent session must not queue messages forever
    service.broadcaster.publish = publish  # type: ignore[method-assign]

    stored = 0
    duplicates = 0
    for dev in devices:
        obs = service.store.observations(patient_of[dev])
        ids = [o.source_id for o in obs]
        stored += len(obs)
        duplicates += len(ids) - len(set(ids))
    latencies = []
    before_twin = 0
    for (dev, s), t_pub in published.items():
        t_commit = committed.get((dev, s))
        times = updates[patient_of[dev]]
        if t_commit is None or not times:
            continue
        if t_commit < times[0]:
            # A twin starts at its 12th reading: readings before it have no twin to update.
            before_twin += 1
            continue
        after = next((u for u in times if u >= t_commit), None)  # lists are in time order
        if after is not None:
            latencies.append((s, after - t_pub))
    lat = np.array([v for _, v in latencies])
    warm = np.array([v for s, v in latencies if s >= 30 * rate_hz])
    return {
        "devices": n_devices,
        "seconds": seconds,
        "published": len(published),
        "stored": stored,
        "lost": len(published) - stored,
        "duplicated": duplicates,
        "latency_p50_s": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "latency_p99_s": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "latency_p99_after_30s": float(np.percentile(warm, 99)) if warm.size else float("nan"),
        "with_update": int(lat.size),
        "before_twin_started": before_twin,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fhir", type=int, default=20_000, help="FHIR Observations to ingest")
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--mqtt-seconds", type=float, default=300.0)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    backends: list[tuple[str, str | None]] = [("SQLite", None)]
    pg = None if args.no_postgres else _pg_database()
    if pg is not None:
        backends.append(("PostgreSQL", PG_URL.rsplit("/", 1)[0] + f"/{pg}"))
    mqtt_up = _reachable("127.0.0.1", 1883)
    rows = []
    try:
        for name, url in backends:
            with tempfile.TemporaryDirectory() as home:
                service = _service(Path(home), url, n_members=100, workers=2)
                service.start()
                fhir_rate = bench_fhir(service, args.fhir)
                print(f"{name:10s} FHIR Observations validated + committed: {fhir_rate:,.0f}/s "
                      f"(target 5,000/s: {fhir_rate / 5000:.2f}x)", flush=True)  # fmt: skip
                mqtt = bench_mqtt(service, args.devices, args.mqtt_seconds) if mqtt_up else None
                service.close()
                rows.append((name, fhir_rate, mqtt))
                if mqtt is not None:
                    print(f"{name:10s} MQTT {json.dumps(mqtt)}", flush=True)
    finally:
        if pg is not None:
            _drop_pg(pg)
    print(
        "\nbackend     FHIR obs/s  vs 5,000   MQTT published  lost  dup  p50 s   p99 s  (p99 after 30 s)"
    )
    nan = float("nan")
    for name, fhir_rate, mqtt in rows:
        m = mqtt or {}
        print(
            f"{name:10s} {fhir_rate:11,.0f} {fhir_rate / 5000:8.2f}x  "
            f"{m.get('published', 0):14,d} {m.get('lost', 0):5d} {m.get('duplicated', 0):4d} "
            f"{m.get('latency_p50_s', nan):6.3f} {m.get('latency_p99_s', nan):7.3f}  "
            f"({m.get('latency_p99_after_30s', nan):.3f})"
        )


if __name__ == "__main__":
    main()
