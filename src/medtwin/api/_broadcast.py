"""Live updates to WebSocket clients: thread-safe publish, one asyncio queue per subscriber."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from typing import Any

__all__ = ["WARD", "Broadcaster"]

WARD = "*"
"""Channel that receives every patient's messages (the ward view)."""


class Broadcaster:
    """Fan messages out to subscribers of a patient (or of the whole ward).

    ``publish`` may be called from any thread (ingestion runs in worker threads); delivery happens
    on the event loop the subscriber's queue belongs to.  A slow client's queue is bounded: when
    it is full the oldest message is dropped, so one stuck browser cannot hold memory hostage.
    """

    def __init__(self, max_queue: int = 256) -> None:
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._subs: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Any]]]] = (
            defaultdict(set)
        )

    def subscribe(self, channel: str) -> asyncio.Queue[Any]:
        """A queue receiving the channel's messages (call from the event loop)."""
        queue: asyncio.Queue[Any] = asyncio.Queue(self.max_queue)
        with self._lock:
            self._subs[channel].add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, channel: str, queue: asyncio.Queue[Any]) -> None:
        """Stop delivering to ``queue``."""
        with self._lock:
            self._subs[channel] = {s for s in self._subs[channel] if s[1] is not queue}

    def publish(self, patient_id: str, message: dict[str, Any]) -> None:
        """Deliver ``message`` to the patient's subscribers and to the ward's."""
        with self._lock:
            targets = list(self._subs.get(patient_id, ())) + list(self._subs.get(WARD, ()))
        for loop, queue in targets:
            try:
                loop.call_soon_threadsafe(_put, queue, message)
            except RuntimeError:  # the loop has closed: the client is gone
                self.unsubscribe(patient_id, queue)

    @property
    def n_subscribers(self) -> int:
        """How many queues are subscribed, over all channels."""
        with self._lock:
            return sum(len(s) for s in self._subs.values())


def _put(queue: asyncio.Queue[Any], message: dict[str, Any]) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(message)
