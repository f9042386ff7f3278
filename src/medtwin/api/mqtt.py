"""The MQTT ingestion bridge: device readings from ``medtwin/<device-id>/observations``.

A device publishes JSON with QoS 1::

    {"token": "<device JWT>", "seq": 41, "time": "2026-11-28T10:05:00Z", "value": 112,
     "unit": "mg/dL", "code": "99504-3"}

or a batch ``{"token": ..., "first_seq": 41, "readings": [{"time": ..., "value": ...}, ...]}``.
``seq`` numbers the device's readings; with the device id it is the reading's identity, so a
redelivered or resent message changes nothing.  The token must be a device token of the device
named in the topic.

No reading is lost: the bridge keeps a persistent session with the broker (fixed client id,
``clean_session`` off) and acknowledges a message only after the store has committed it
(paho-mqtt's manual acknowledgement).  If the service dies in between, the broker redelivers the
message when the bridge reconnects, and the store's idempotency drops the copy.  A message that
can never be stored (bad JSON, wrong token, unknown device) is acknowledged, audited, and answered
on ``medtwin/<device-id>/errors``.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import paho.mqtt.client as paho

from medtwin.api._settings import MqttAddress
from medtwin.errors import ConfigurationError, DataFormatError, MedtwinError
from medtwin.records import OBSERVATION_CODES

__all__ = ["TOPIC", "MqttBridge", "parse_payload"]

log = logging.getLogger("medtwin.mqtt")

TOPIC = "medtwin/+/observations"
MAX_READINGS = 10_000


def parse_payload(device_id: str, payload: bytes) -> dict[str, Any]:
    """Parse a device message into ``token``, ``first_seq``, ``times``, ``values``, code, unit.

    Raises :class:`DataFormatError` naming the field that is wrong.
    """
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"device {device_id}: payload is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise DataFormatError(f"device {device_id}: payload must be a JSON object")
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise DataFormatError(f"device {device_id}: 'token' (the device's access token) is missing")
    if "readings" in body:
        readings = body["readings"]
        first_seq = body.get("first_seq")
        if not isinstance(readings, list) or not 1 <= len(readings) <= MAX_READINGS:
            raise DataFormatError(
                f"device {device_id}: 'readings' must be a list of 1 to {MAX_READINGS} readings"
            )
    else:
        readings = [body]
        first_seq = body.get("seq")
    if not isinstance(first_seq, int) or isinstance(first_seq, bool) or first_seq < 0:
        raise DataFormatError(
            f"device {device_id}: 'seq' (or 'first_seq' of a batch) must be an integer >= 0"
        )
    code = body.get("code", "99504-3")
    unit = body.get("unit", OBSERVATION_CODES.get(str(code), OBSERVATION_CODES["99504-3"]).unit)
    if code not in OBSERVATION_CODES:
        raise DataFormatError(
            f"device {device_id}: unknown code {code!r}; known: {sorted(OBSERVATION_CODES)}"
        )
    if unit != OBSERVATION_CODES[code].unit:
        raise DataFormatError(
            f"device {device_id}: unit {unit!r} for {code}; send {OBSERVATION_CODES[code].unit!r}"
        )
    times, values = [], []
    for i, r in enumerate(readings):
        where = (
            f"device {device_id}: readings[{i}]" if "readings" in body else f"device {device_id}"
        )
        if not isinstance(r, dict):
            raise DataFormatError(f"{where} must be an object")
        try:
            t = datetime.fromisoformat(str(r.get("time")).replace("Z", "+00:00"))
        except ValueError:
            raise DataFormatError(f"{where}.time {r.get('time')!r} is not ISO 8601") from None
        if t.tzinfo is None:
            raise DataFormatError(f"{where}.time {r.get('time')!r} has no time zone")
        v = r.get("value")
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise DataFormatError(f"{where}.value {v!r} is not a finite number")
        times.append(t)
        values.append(float(v))
    return {"token": token, "first_seq": first_seq, "times": times, "values": values,
            "code": code, "unit": unit}  # fmt: skip


class MqttBridge:
    """Subscribe to device topics and feed readings to ``ingest`` (see the module docstring).

    ``ingest([(device_id, message), ...])`` stores parsed messages, as many as have arrived
    (up to ``max_batch``), in one transaction, and returns per message its result or the
    MedtwinError that refused it (:meth:`medtwin.api.Service.ingest_device_messages`).  It runs
    on the bridge's worker thread, never on paho's network thread, so a slow commit does not
    stall the connection's keep-alives; batching is what lets one bridge keep up with hundreds
    of devices.
    """

    def __init__(
        self,
        address: MqttAddress,
        ingest: Callable[[list[tuple[str, dict[str, Any]]]], list[Any]],
        *,
        client_id: str = "medtwin-bridge",
        on_refused: Callable[[str, str], None] | None = None,
        max_batch: int = 1000,
    ) -> None:
        self.address = address
        self.ingest = ingest
        self.on_refused = on_refused
        self.client_id = client_id
        self.max_batch = max_batch
        self._queue: queue.Queue[paho.MQTTMessage | None] = queue.Queue()
        self._connected = threading.Event()
        self._worker: threading.Thread | None = None
        self.n_stored = 0
        self.n_refused = 0
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            manual_ack=True,
            protocol=paho.MQTTv311,
        )
        if address.username:
            self._client.username_pw_set(address.username, address.password)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect, subscribe and start the network and worker threads."""
        try:
            self._client.connect(self.address.host, self.address.port, keepalive=30)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot reach the MQTT broker at {self.address.host}:{self.address.port} "
                f"(MEDTWIN_MQTT_URL): {exc}"
            ) from None
        self._worker = threading.Thread(target=self._work, name="medtwin-mqtt", daemon=True)
        self._worker.start()
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            self.stop()
            raise ConfigurationError(
                f"the MQTT broker did not accept the connection in {timeout_s} s"
            )

    def stop(self) -> None:
        """Disconnect; messages not yet stored stay unacknowledged with the broker."""
        self._client.disconnect()
        self._client.loop_stop()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout=30)

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        """Whether the bridge is connected (waiting up to ``timeout_s``)."""
        return self._connected.wait(timeout_s)

    # -- paho callbacks (network thread) -------------------------------------------------------

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MQTT broker refused the connection: %s", reason)
            return
        client.subscribe(TOPIC, qos=1)
        self._connected.set()
        log.info("MQTT bridge connected to %s:%s", self.address.host, self.address.port)

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        log.info("MQTT bridge disconnected: %s", reason)

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        self._queue.put(message)

    # -- the worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            self._store(batch)

    def _store(self, batch: list[paho.MQTTMessage]) -> None:
        parsed: list[tuple[str, dict[str, Any]]] = []
        kept: list[paho.MQTTMessage] = []
        for message in batch:
            parts = message.topic.split("/")
            device_id = parts[1] if len(parts) == 3 else ""
            try:
                parsed.append((device_id, parse_payload(device_id, bytes(message.payload))))
                kept.append(message)
            except MedtwinError as exc:
                self.n_refused += 1
                self._refuse(device_id, str(exc))
                self._client.ack(message.mid, message.qos)
        if not parsed:
            return
        try:
            outcomes = self.ingest(parsed)
        except Exception:
            # The store is down, say: acknowledge nothing, so the broker redelivers the
            # messages after a reconnect; drop the connection to make that happen now.
            log.exception("could not store %d messages; left unacknowledged", len(parsed))
            self._client.reconnect()
            return
        for message, (device_id, _), outcome in zip(kept, parsed, outcomes, strict=True):
            if isinstance(outcome, MedtwinError):
                self.n_refused += 1
                self._refuse(device_id, str(outcome))
            else:
                self.n_stored += 1
            self._client.ack(message.mid, message.qos)

    def _refuse(self, device_id: str, reason: str) -> None:
        log.warning("refused a message from device %r: %s", device_id, reason)
        if self.on_refused is not None:
            self.on_refused(device_id, reason)
        if device_id:
            self._client.publish(
                f"medtwin/{device_id}/errors", json.dumps({"error": reason}), qos=0
            )
