"""The medtwin service: FastAPI app, hosted twins, live ingestion.

:func:`create_app` wraps a :class:`Service` (store + keys + tokens + hosted twins, and the
hospital twin, :class:`HospitalHost`); ``medtwin serve`` and ``make run`` start it with uvicorn.
Only :mod:`medtwin.api.errors` turns exceptions into HTTP statuses.
"""

from __future__ import annotations

from medtwin.api._app import create_app
from medtwin.api._broadcast import Broadcaster
from medtwin.api._hospital import HospitalHost
from medtwin.api._host import RISKS, TwinHost
from medtwin.api._service import Service
from medtwin.api._settings import MqttAddress, Settings

__all__ = [
    "RISKS",
    "Broadcaster",
    "HospitalHost",
    "MqttAddress",
    "Service",
    "Settings",
    "TwinHost",
    "create_app",
]
