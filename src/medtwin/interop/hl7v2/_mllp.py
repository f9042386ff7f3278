"""MLLP, the minimal lower layer protocol HL7 v2 travels on over TCP.

Each message is framed as ``0x0b <message> 0x1c 0x0d`` (HL7 v2.5.1 Implementation Guide,
Appendix C).  :class:`MLLPDecoder` splits a byte stream into messages whatever the sizes of the
reads; :func:`serve_mllp` is an asyncio server that parses each message, hands the ADTEvent to
a handler and answers with an ACK; :func:`send_mllp` is the matching client.

python-hl7's ``hl7.mllp`` streams are not used: they sit on private asyncio classes and raise on
bytes between frames, where a receiver should skip them and carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections import deque
from collections.abc import Callable, Iterable
from datetime import tzinfo

from medtwin.errors import ConflictError, MedtwinError
from medtwin.hospital._records import ADTEvent
from medtwin.interop.hl7v2._build import build_ack
from medtwin.interop.hl7v2._parse import MessageError, read, resolve_options

__all__ = ["END_BLOCK", "START_BLOCK", "MLLPDecoder", "frame", "send_mllp", "serve_mllp"]

START_BLOCK = b"\x0b"
"""Start of an MLLP frame (vertical tab)."""
END_BLOCK = b"\x1c\x0d"
"""End of an MLLP frame (file separator, carriage return)."""

logger = logging.getLogger("medtwin.interop.hl7v2")

Handler = Callable[[ADTEvent], object]
"""What :func:`serve_mllp` calls with each event: returns an ACK (``str``), or anything else
(``None``, a census change) for an AA; may be a coroutine function."""


def frame(message: str | bytes, *, encoding: str = "utf-8") -> bytes:
    r"""``message`` in an MLLP frame.

    Examples
    --------
    >>> frame("MSH|^~\\&|A")
    b'\x0bMSH|^~\\&|A\x1c\r'
    """
    data = message.encode(encoding) if isinstance(message, str) else message
    if b"\x0b" in data or b"\x1c" in data:
        raise ValueError("an HL7 message cannot contain the MLLP framing bytes 0x0b or 0x1c")
    return START_BLOCK + data + END_BLOCK


class MLLPDecoder:
    r"""Split an MLLP byte stream into messages, however the bytes arrive.

    :meth:`feed` takes whatever a read returned and gives back the messages completed by it.
    Bytes between frames are skipped (``discarded`` counts those that are not whitespace); a
    frame interrupted by a new start block, or longer than ``max_frame_bytes``, is dropped and
    described in ``problems``.

    Examples
    --------
    >>> d = MLLPDecoder()
    >>> d.feed(b"\x0bMSH|first"), d.feed(b"\x1c\r\x0bMSH|sec"), d.feed(b"ond\x1c\r")
    ([], [b'MSH|first'], [b'MSH|second'])
    """

    def __init__(self, *, max_frame_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.discarded = 0
        self.problems: list[str] = []
        self._buffer = bytearray()
        self._in_frame = False
        self._skipping = False  # inside an oversized frame: drop bytes up to its end block
        self._scanned = 0

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the messages (frame contents) it completed, in order."""
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        while buffer:
            if self._skipping:
                end = buffer.find(b"\x1c")
                if end < 0:
                    buffer.clear()
                    break
                del buffer[: end + 1]
                self._skipping = False
                continue
            if not self._in_frame:
                start = buffer.find(START_BLOCK)
                junk = buffer if start < 0 else buffer[:start]
                self.discarded += len(bytes(junk).strip())
                if start < 0:
                    buffer.clear()
                    break
                del buffer[: start + 1]
                self._in_frame = True
                self._scanned = 0
            end = buffer.find(b"\x1c", self._scanned)
            restart = buffer.find(START_BLOCK, self._scanned)
            if restart >= 0 and (end < 0 or restart < end):
                self.problems.append(
                    f"a frame of {restart} bytes was interrupted by a new start block; dropped"
                )
                del buffer[: restart + 1]
                self._scanned = 0
                continue
            if end < 0:
                self._scanned = len(buffer)
                if len(buffer) > self.max_frame_bytes:
                    self.problems.append(
                        f"a frame longer than {self.max_frame_bytes} bytes was dropped"
                    )
                    buffer.clear()
                    self._in_frame = False
                    self._skipping = True
                break
            out.append(bytes(buffer[:end]))
            del buffer[: end + 1]  # the 0x0d after 0x1c is skipped as whitespace
            self._in_frame = False
        return out


async def serve_mllp(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 2575,
    *,
    tz: str | tzinfo = "UTC",
    acuity_field: str = "PV2-25",
    encoding: str = "utf-8",
    application: str = "MEDTWIN",
    facility: str = "MEDTWIN",
    max_frame_bytes: int = 16 * 1024 * 1024,
) -> asyncio.Server:
    """Start an MLLP listener that reads ADT messages and answers each with an ACK.

    Each message is parsed (:func:`~medtwin.interop.hl7v2.parse_adt_message`) and the event
    passed to ``handler`` (a plain or coroutine function, e.g. :meth:`Census.apply
    <medtwin.hospital.census.Census.apply>`), whose result is sent back when it is a string (an
    ACK) and answered with AA otherwise.  Nothing a client sends stops the server:

    - a malformed message is answered AE (content: a missing or unreadable field) or AR (not
      HL7, not ADT, an unsupported trigger event or version), with ERR naming the field;
    - a handler that raises :class:`~medtwin.errors.ConflictError` gets AE with condition 205,
      another :class:`~medtwin.errors.MedtwinError` AE with its message, any other exception AR
      with condition 207 (and a log record with the traceback).

    Messages of one connection are handled one after another, in order, as MLLP's send-and-wait
    requires; a synchronous handler runs on the event loop, so it never runs concurrently with
    itself.  ``port=0`` picks a free port (``server.sockets[0].getsockname()[1]``).  The returned
    :class:`asyncio.Server` is already serving; close it with ``server.close()`` and
    ``await server.wait_closed()``, or use it in ``async with``.
    """
    options = resolve_options(tz, acuity_field)
    ack = functools.partial(build_ack, application=application, facility=facility)

    async def answer(payload: bytes) -> str:
        try:
            event = read(payload, options, encoding=encoding)
        except MessageError as problem:
            logger.info("rejected %s", problem.describe())
            return ack(
                payload,
                problem.ack,
                text=problem.reason,
                condition=problem.condition,
                where=problem.where,
            )
        try:
            result = handler(event)
            if inspect.isawaitable(result):
                result = await result
        except ConflictError as exc:
            return ack(payload, "AE", text=str(exc), condition=205)
        except MedtwinError as exc:
            return ack(payload, "AE", text=str(exc), condition=207)
        except Exception:
            logger.exception("the handler failed on message %s", event.message_id)
            return ack(payload, "AR", text="application internal error", condition=207)
        return result if isinstance(result, str) else ack(payload, "AA")

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = MLLPDecoder(max_frame_bytes=max_frame_bytes)
        peer = writer.get_extra_info("peername")
        try:
            while data := await reader.read(65536):
                for payload in decoder.feed(data):
                    writer.write(frame(await answer(payload), encoding=encoding))
                    await writer.drain()
                while decoder.problems:
                    logger.warning("MLLP from %s: %s", peer, decoder.problems.pop(0))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            logger.info("MLLP connection from %s ended: %r", peer, exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    return await asyncio.start_server(session, host, port)


async def send_mllp(
    messages: Iterable[str | bytes],
    host: str,
    port: int,
    *,
    timeout_s: float = 30.0,
    encoding: str = "utf-8",
) -> list[str]:
    """Send ``messages`` over one MLLP connection, each after the ACK of the one before.

    Returns the ACKs in order (read them with :func:`~medtwin.interop.hl7v2.parse_ack`).

    Raises
    ------
    TimeoutError
        No ACK within ``timeout_s``.
    ConnectionError
        The server closed the connection before answering.
    """
    reader, writer = await asyncio.open_connection(host, port)
    decoder = MLLPDecoder()
    pending: deque[bytes] = deque()
    acks: list[str] = []
    try:
        for message in messages:
            writer.write(frame(message, encoding=encoding))
            await writer.drain()
            while not pending:
                data = await asyncio.wait_for(reader.read(65536), timeout_s)
                if not data:
                    raise ConnectionError("the MLLP server closed the connection before an ACK")
                pending.extend(decoder.feed(data))
            acks.append(pending.popleft().decode(encoding))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return acks
