from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medtwin.errors import DataFormatError
from medtwin.hospital._records import ADTEvent
from medtwin.hospital.census import Census
from medtwin.interop.hl7v2 import (
    MLLPDecoder,
    build_ack,
    build_adt_message,
    frame,
    parse_ack,
    send_mllp,
    serve_mllp,
)

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)


def adt(message_id: str, kind: str = "A04", minutes: int = 0, **fields) -> str:
    defaults = {"unit": "ED", "patient_class": "E"} if kind in ("A01", "A04") else {}
    defaults.update(fields)
    event = ADTEvent(message_id, kind, T0 + timedelta(minutes=minutes), "P1", "V1", **defaults)
    return build_adt_message(event)


# -- framing ----------------------------------------------------------------------------------


def test_frame_and_decode():
    data = frame("MSH|a") + b"\r\n" + frame("MSH|b") + frame(b"MSH|\xc3\xa9")
    decoder = MLLPDecoder()
    assert decoder.feed(data) == [b"MSH|a", b"MSH|b", "MSH|é".encode()]
    assert decoder.discarded == 0 and decoder.buffered == 0
    with pytest.raises(ValueError, match="framing bytes"):
        frame("MSH|\x0b")


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 200), max_size=30),
    junk=st.sampled_from([b"", b"\r\n", b"garbage", b"\x1c\r"]),
)
def test_decoder_is_robust_to_any_read_sizes(cuts, junk):
    messages = [f"MSH|^~\\&|X|{i}|{'y' * i}".encode() for i in range(5)]
    stream = junk + b"".join(frame(m) + junk for m in messages)
    decoder = MLLPDecoder()
    got: list[bytes] = []
    last = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        got += decoder.feed(stream[last:cut])
        last = cut
    assert got == messages
    assert decoder.buffered == 0
    assert decoder.discarded == len(junk.strip()) * 6  # before the first frame and after each


def test_decoder_drops_interrupted_and_oversized_frames():
    decoder = MLLPDecoder(max_frame_bytes=50)
    out = decoder.feed(b"\x0bMSH|cut off" + frame("MSH|next"))
    assert out == [b"MSH|next"]
    assert "interrupted" in decoder.problems[0]
    out = decoder.feed(b"\x0b" + b"x" * 60)
    out += decoder.feed(b"y" * 60 + b"\x1c\r" + frame("MSH|after"))
    assert out == [b"MSH|after"]
    assert "longer than 50 bytes" in decoder.problems[1]


# -- the server over a real socket ------------------------------------------------------------


async def _start(handler, **options):
    server = await serve_mllp(handler, "127.0.0.1", 0, **options)
    return server, server.sockets[0].getsockname()[1]


async def _stop(server):
    server.close()
    await server.wait_closed()


def test_server_acks_good_and_bad_messages_and_keeps_serving():
    census = Census()

    async def scenario():
        server, port = await _start(census.apply)
        try:
            no_visit = adt("M2", minutes=5).replace("V1^^^MEDTWIN^VN", "")
            conflict = adt("M1", minutes=1)  # M1 again, another time
            acks = await send_mllp(
                [
                    adt("M1"),
                    no_visit,
                    "this is not HL7",
                    adt("M3", minutes=6)
                    .replace("ADT^A04^ADT_A01", "ADT^A05^ADT_A05")
                    .replace("EVN|A04|", "EVN|A05|"),
                    adt("M1"),  # resent: still AA, changes nothing
                    conflict,
                    adt("M4", "A03", minutes=90, unit="ED"),
                ],
                "127.0.0.1",
                port,
            )
            # a second connection after all that: the server is still there
            later = await send_mllp([adt("M5", minutes=200)], "127.0.0.1", port)
        finally:
            await _stop(server)
        return [parse_ack(a) for a in acks], [parse_ack(a) for a in later]

    acks, later = asyncio.run(scenario())
    assert [a.code for a in acks] == ["AA", "AE", "AR", "AR", "AA", "AE", "AA"]
    assert [a.message_id for a in acks] == ["M1", "M2", "", "M3", "M1", "M1", "M4"]
    assert acks[1].condition == 101 and "PV1-19 (visit number) is empty" in acks[1].text
    assert acks[2].condition == 100 and "MSH" in acks[2].text
    assert acks[3].condition == 201 and "A05" in acks[3].text
    assert acks[5].condition == 205 and "other content" in acks[5].text
    assert later[0].code == "AA"
    assert census.n_applied == 3 and census.n_duplicates == 1
    assert census.counts() == {"ED": 1}  # V1 discharged at +90 min, re-registered at +200


def test_handler_failures_are_answered_not_fatal():
    calls = []

    async def handler(event):  # a coroutine handler
        calls.append(event.message_id)
        if event.message_id == "BOOM":
            raise RuntimeError("disk full")
        if event.message_id == "BAD":
            raise DataFormatError("the unit is not known")
        if event.message_id == "OWN":
            return build_ack(None, "AE", text="own answer", control_id="X")
        return None

    async def scenario():
        server, port = await _start(handler)
        try:
            return await send_mllp(
                [adt("BOOM"), adt("BAD"), adt("OWN"), adt("OK")], "127.0.0.1", port
            )
        finally:
            await _stop(server)

    acks = [parse_ack(a) for a in asyncio.run(scenario())]
    assert [(a.code, a.condition) for a in acks] == [
        ("AR", 207),
        ("AE", 207),
        ("AE", 207),
        ("AA", None),
    ]
    assert acks[0].text == "application internal error"  # no internals to the client
    assert acks[1].text == "the unit is not known"
    assert acks[2].text == "own answer"
    assert calls == ["BOOM", "BAD", "OWN", "OK"]


def test_partial_writes_pipelining_and_dropped_connections():
    census = Census()

    async def read_acks(reader, n):
        decoder, out = MLLPDecoder(), []
        while len(out) < n:
            out += decoder.feed(await asyncio.wait_for(reader.read(4096), 10))
        return [parse_ack(a) for a in out]

    async def scenario():
        server, port = await _start(census.apply)
        try:
            # one message in three writes, with pauses between
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            data = frame(adt("P1"))
            for part in (data[:7], data[7:100], data[100:]):
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.02)
            first = await read_acks(reader, 1)
            # two messages in one write, with junk between frames
            writer.write(
                frame(adt("P2", "A08", 10, acuity="2")) + b"\r\n" + frame(adt("P3", "A03", 60))
            )
            await writer.drain()
            pipelined = await read_acks(reader, 2)
            # a client that hangs up in the middle of a frame
            writer.write(frame(adt("P4", minutes=120))[:40])
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            # the server still answers others
            after = await send_mllp([adt("P5", minutes=300)], "127.0.0.1", port)
        finally:
            await _stop(server)
        return first, pipelined, [parse_ack(a) for a in after]

    first, pipelined, after = asyncio.run(scenario())
    assert [a.message_id for a in first + pipelined + after] == ["P1", "P2", "P3", "P5"]
    assert all(a.code == "AA" for a in first + pipelined + after)
    assert census.n_applied == 4  # P4 never arrived whole


def test_send_mllp_times_out_without_an_ack():
    async def silent(reader, writer):
        try:
            while await reader.read(4096):  # never answers; ends when the client gives up
                pass
        finally:
            writer.close()
            await writer.wait_closed()

    async def scenario():
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(TimeoutError):
                await send_mllp([adt("M1")], "127.0.0.1", port, timeout_s=0.2)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())
