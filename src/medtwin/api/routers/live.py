"""Live updates over WebSocket: ``/ws/patients/{id}`` and ``/ws/ward``.

Browsers cannot set headers on a WebSocket, so the token comes as ``?access_token=``.  The first
message is a snapshot (the latest update); then every twin update and alert as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from medtwin.api._auth import Access
from medtwin.api._broadcast import WARD
from medtwin.errors import AuthenticationError, AuthorizationError

router = APIRouter(tags=["live"])

_POLICY_VIOLATION = 1008


async def _accept(websocket: WebSocket, patient_id: str | None) -> Access | None:
    service = websocket.app.state.service
    token = websocket.query_params.get("access_token")
    try:
        if not token:
            raise AuthenticationError("no access_token")
        principal = service.tokens.verify(token)
        access = Access(principal, service)
        if patient_id is None:
            await run_in_threadpool(access.require, "s", "Observation", action="live ward")
        else:
            await run_in_threadpool(
                access.require, "r", "Observation", patient_id=patient_id, action="live patient"
            )
    except (AuthenticationError, AuthorizationError) as exc:
        await websocket.close(code=_POLICY_VIOLATION, reason=str(exc)[:120])
        return None
    await websocket.accept()
    return access


async def _pump(websocket: WebSocket, channel: str, access: Access, only: set[str] | None) -> None:
    broadcaster = access.service.broadcaster
    queue = broadcaster.subscribe(channel)
    receiver = asyncio.ensure_future(websocket.receive())
    getter = asyncio.ensure_future(queue.get())
    try:
        while True:
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                if receiver.result()["type"] == "websocket.disconnect":
                    return
                receiver = asyncio.ensure_future(websocket.receive())
            if getter in done:
                event = getter.result()
                getter = asyncio.ensure_future(queue.get())
                if only is None or event.get("patient_id") in only:
                    await websocket.send_json(event)
    except WebSocketDisconnect:
        return
    finally:
        getter.cancel()
        receiver.cancel()
        broadcaster.unsubscribe(channel, queue)
        with contextlib.suppress(Exception):
            await websocket.close()


@router.websocket("/ws/patients/{patient_id}")
async def patient_stream(websocket: WebSocket, patient_id: str) -> None:
    """One patient's twin updates and alerts."""
    access = await _accept(websocket, patient_id)
    if access is None:
        return
    latest = access.service.host.latest(patient_id)
    if latest is not None:
        await websocket.send_json(latest)
    await _pump(websocket, patient_id, access, None)


@router.websocket("/ws/ward")
async def ward_stream(websocket: WebSocket) -> None:
    """Every visible patient's updates and alerts (the ward view)."""
    access = await _accept(websocket, None)
    if access is None:
        return
    visible = await run_in_threadpool(access.visible_patients)
    only = None if visible is None else set(visible)
    await _pump(websocket, WARD, access, only)
