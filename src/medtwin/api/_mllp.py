"""The HL7 v2 MLLP listener: ADT feeds over TCP into the hosted hospital twin.

``medtwin serve --mllp-port 2575`` (or ``MEDTWIN_MLLP_PORT``) starts
:func:`medtwin.interop.hl7v2.serve_mllp` on the service's event loop.  Each message goes
through :meth:`Service.ingest_adt <medtwin.api._service.Service.ingest_adt>`, the path HTTP
batches take (checked, stored, then applied to the census), in a worker thread so the event loop
never waits for the database, and is answered with an ACK only after it is stored: AA, or AE
naming the field (malformed) or the conflict.  Every message taken is audited (actor ``mllp``).

MLLP carries no credentials: bind the listener to the interface network only (the default is
127.0.0.1; ``MEDTWIN_MLLP_HOST`` to change it) or put it behind a TLS tunnel.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from medtwin.errors import MedtwinError
from medtwin.hospital import ADTEvent
from medtwin.interop.hl7v2 import serve_mllp

if TYPE_CHECKING:
    from medtwin.api._service import Service

__all__ = ["start_mllp"]

log = logging.getLogger("medtwin.mllp")


async def start_mllp(service: Service) -> asyncio.Server | None:
    """Start the listener when the settings ask for one (and a hospital is hosted)."""
    settings = service.settings
    if settings.mllp_port is None:
        return None
    host = service.hospital_host()

    def take(event: ADTEvent) -> None:
        try:
            [outcome] = service.ingest_adt([event], source="mllp")
        except MedtwinError as exc:
            service.store.audit("mllp", "interface", "ingest ADT (MLLP)", "Encounter", "error",
                                detail=f"message {event.message_id}: {exc}"[:2000])  # fmt: skip
            raise
        service.store.audit("mllp", "interface", "ingest ADT (MLLP)", "Encounter", "granted",
                            detail=f"message {event.message_id}: {outcome.change.status}")  # fmt: skip

    async def handler(event: ADTEvent) -> None:
        await asyncio.to_thread(take, event)

    server = await serve_mllp(
        handler, settings.mllp_host, settings.mllp_port, tz=host.spec.timezone
    )
    where = server.sockets[0].getsockname() if server.sockets else (settings.mllp_host, "?")
    log.info("MLLP listener for ADT on %s:%s", where[0], where[1])
    service.extras["mllp_port"] = where[1]
    return server
