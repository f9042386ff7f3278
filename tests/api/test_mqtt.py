"""The MQTT bridge against the real Mosquitto on 127.0.0.1:1883."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import uuid

import paho.mqtt.client as paho
import pytest

from medtwin.api import MqttAddress, Service, Settings
from medtwin.api.mqtt import MqttBridge, parse_payload
from medtwin.errors import DataFormatError
from medtwin.records import DeviceRecord, PatientRecord

pytestmark = pytest.mark.service

BROKER = MqttAddress("127.0.0.1", 1883)
T0 = dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC)


def _broker_up() -> bool:
    try:
        with socket.create_connection((BROKER.host, BROKER.port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def service(tmp_path):
    if not _broker_up():
        pytest.skip("no MQTT broker on 127.0.0.1:1883 (start mosquitto)")
    svc = Service.open(Settings(home=tmp_path, n_members=50))
    svc.store.add_patient(PatientRecord("p1"))
    svc.store.add_patient(PatientRecord("p2"))
    svc.store.add_device(DeviceRecord("cgm-1", "p1", "cgm"))
    svc.store.add_device(DeviceRecord("cgm-2", "p2", "cgm"))
    svc.start()
    yield svc
    svc.close()


@pytest.fixture
def publisher():
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}")
    client.connect(BROKER.host, BROKER.port)
    client.loop_start()
    yield client
    client.loop_stop()
    client.disconnect()


def _forget_session(client_id: str) -> None:
    """Drop the broker's persistent session of a test bridge (or it queues messages forever)."""
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    c.connect(BROKER.host, BROKER.port)
    c.disconnect()


def _message(token: str, seq: int, value: float = 120.0) -> str:
    t = T0 + dt.timedelta(minutes=5 * seq)
    return json.dumps({"token": token, "seq": seq, "time": t.isoformat(), "value": value})


def _wait(predicate, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_readings_arrive_once_and_bad_messages_are_refused(service, publisher):
    client_id = f"medtwin-test-{uuid.uuid4().hex[:8]}"
    bridge = MqttBridge(BROKER, service.ingest_device_messages, client_id=client_id)
    bridge.start()
    try:
        errors: list[dict] = []
        listener = paho.Client(paho.CallbackAPIVersion.VERSION2)
        got_error = threading.Event()

        def on_message(_c, _u, msg):
            errors.append(json.loads(msg.payload))
            got_error.set()

        listener.on_message = on_message
        listener.connect(BROKER.host, BROKER.port)
        listener.subscribe("medtwin/cgm-1/errors", qos=1)
        listener.loop_start()
        time.sleep(0.3)

        token = service.device_token("cgm-1")
        for seq in range(20):
            publisher.publish(
                "medtwin/cgm-1/observations", _message(token, seq), qos=1
            ).wait_for_publish()
        for seq in range(10):  # resent: changes nothing
            publisher.publish(
                "medtwin/cgm-1/observations", _message(token, seq), qos=1
            ).wait_for_publish()
        assert _wait(lambda: bridge.n_stored == 30)
        assert len(service.store.observations("p1")) == 20

        # another device's token, garbage, a missing value: refused, answered, audited
        other = service.device_token("cgm-2")
        publisher.publish("medtwin/cgm-1/observations", _message(other, 50), qos=1)
        publisher.publish("medtwin/cgm-1/observations", b"{not json", qos=1)
        publisher.publish(
            "medtwin/cgm-1/observations", json.dumps({"token": token, "seq": 3}), qos=1
        )
        assert _wait(lambda: bridge.n_refused == 3), (bridge.n_refused, bridge.n_stored)
        assert got_error.wait(5)
        assert len(service.store.observations("p1")) == 20
        assert len(service.store.observations("p2")) == 0
        denied = [e for e in service.store.audit_log(limit=500) if e.outcome == "denied"]
        assert any("cgm-2" in e.actor for e in denied)
        listener.loop_stop()
        listener.disconnect()
    finally:
        bridge.stop()
        _forget_session(client_id)


def test_messages_sent_while_the_bridge_is_down_arrive_after_it_reconnects(service, publisher):
    client_id = f"medtwin-test-{uuid.uuid4().hex[:8]}"
    bridge = MqttBridge(BROKER, service.ingest_device_messages, client_id=client_id)
    bridge.start()
    token = service.device_token("cgm-1")
    publisher.publish("medtwin/cgm-1/observations", _message(token, 0), qos=1).wait_for_publish()
    assert _wait(lambda: bridge.n_stored == 1)
    bridge.stop()
    for seq in range(1, 11):
        publisher.publish(
            "medtwin/cgm-1/observations", _message(token, seq), qos=1
        ).wait_for_publish()
    again = MqttBridge(BROKER, service.ingest_device_messages, client_id=client_id)
    again.start()
    try:
        assert _wait(lambda: len(service.store.observations("p1")) == 11)
    finally:
        again.stop()
        _forget_session(client_id)


def test_parse_payload_names_the_bad_field():
    with pytest.raises(DataFormatError, match=r"readings\[1\]\.value"):
        parse_payload(
            "d",
            json.dumps(
                {"token": "t", "first_seq": 0, "readings": [
                    {"time": "2026-01-01T00:00Z", "value": 1}, {"time": "2026-01-01T00:05Z", "value": "x"}
                ]}
            ).encode(),
        )  # fmt: skip
    with pytest.raises(DataFormatError, match="time zone"):
        parse_payload("d", b'{"token": "t", "seq": 0, "time": "2026-01-01T00:00", "value": 1}')
    with pytest.raises(DataFormatError, match="unit"):
        parse_payload(
            "d",
            b'{"token": "t", "seq": 0, "time": "2026-01-01T00:00Z", "value": 6, "unit": "mmol/L"}',
        )
    ok = parse_payload("d", b'{"token": "t", "seq": 4, "time": "2026-01-01T00:00Z", "value": 99}')
    assert ok["first_seq"] == 4 and ok["values"] == [99.0]
