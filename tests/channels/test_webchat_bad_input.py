"""Bad input on the website chat: forged tokens, foreign origins, oversized and malformed frames,
floods. Each is answered clearly, nothing is stored half-way, and the server stays up."""

from __future__ import annotations

import json

import aiohttp
import pytest
from sqlalchemy import func, select

from channels.webchat import FRAMES_PER_10_SECONDS, OUTGOING_BACKLOG, _Conn
from storage.config import StorageConfig
from storage.models import Message
from tests.channels.test_webchat import (
    ORIGIN,
    Visitor,
    chat_stack,
    conversation_of,
    stored,
    visitor,
    ws_url,
)
from tests.fixtures.stack import Stack, eventually


async def message_count(stack: Stack) -> int:
    async with stack.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Message)) or 0


async def still_works(stack: Stack) -> None:
    """The server stays up: a fresh visitor can still write, and it is stored."""
    async with visitor(stack) as (chat, welcome):
        await chat.send({"type": "message", "client_id": "ok", "text": "هنوز کار می‌کند"})
        await chat.expect("ack", client_id="ok")
        await conversation_of(stack, welcome["visitor"])


@pytest.mark.parametrize("origin", ["http://evil.test", None])
async def test_a_foreign_or_missing_origin_is_refused(
    storage_config: StorageConfig, origin: str | None
) -> None:
    async with chat_stack(storage_config) as stack:
        headers = {"Origin": origin} if origin else {}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await stack.http.ws_connect(ws_url(stack), headers=headers)
        assert refused.value.status == 403
        # The inbox's own origin is always allowed (a page served by the inbox itself).
        async with stack.http.ws_connect(ws_url(stack), headers={"Origin": stack.base}) as ws:
            welcome = await Visitor(ws).hello()
            assert welcome["token"]


async def test_a_forged_token_is_refused_and_the_visitor_can_start_afresh(
    storage_config: StorageConfig,
) -> None:
    async with chat_stack(storage_config) as stack:
        async with visitor(stack) as (_chat, welcome):
            real = welcome["token"]
        visitor_id, issued, _mac = real.split(".")
        forgeries = [
            f"{visitor_id}.{issued}.{'A' * 43}",  # someone else's visitor id, made-up signature
            "vAAAAAAAAAAAAAAAAAAAAA.1.x",
            "not a token",
            "x" * 5000,
        ]
        async with stack.http.ws_connect(ws_url(stack), headers={"Origin": ORIGIN}) as ws:
            chat = Visitor(ws)
            for forged in forgeries:
                await chat.send({"type": "hello", "token": forged, "last_id": 0})
                error = await chat.expect("error")
                assert error["code"] == "bad_token"
            # Without a hello nothing else is accepted.
            await chat.send({"type": "message", "client_id": "f1", "text": "نفوذ"})
            assert (await chat.expect("error"))["code"] == "hello_first"
            fresh = await chat.hello()
            assert fresh["visitor"] != visitor_id and fresh["messages"] == []
        assert await message_count(stack) == 0


async def test_oversized_messages_and_frames_are_refused(storage_config: StorageConfig) -> None:
    async with chat_stack(storage_config, max_message_chars=100, max_frame_bytes=2048) as stack:
        async with visitor(stack) as (chat, _welcome):
            await chat.send({"type": "message", "client_id": "big", "text": "ب" * 101})
            error = await chat.expect("error")
            assert (error["code"], error["client_id"]) == ("too_long", "big")
            await chat.send({"type": "message", "client_id": "pad", "text": " " * 3000})
            assert (await chat.expect("error"))["code"] == "too_large"
            await chat.send({"type": "message", "client_id": "fits", "text": "ب" * 100})
            await chat.expect("ack", client_id="fits")
        async with stack.http.ws_connect(ws_url(stack), headers={"Origin": ORIGIN}) as ws:
            await ws.send_str(json.dumps({"type": "hello", "pad": "x" * 20_000}))
            closed = await ws.receive()
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG

        async def one() -> list[Message] | None:
            return await _only(stack, 1)

        [message] = await eventually(one)
        assert message.text == "ب" * 100
        await still_works(stack)


async def _only(stack: Stack, count: int) -> list[Message] | None:
    async with stack.sessions() as session:
        rows = (await session.scalars(select(Message))).all()
    return list(rows) if len(rows) == count else None


async def test_a_flood_from_one_visitor_is_limited(storage_config: StorageConfig) -> None:
    async with chat_stack(storage_config, messages_per_minute=5) as stack:
        async with visitor(stack) as (chat, welcome):
            for index in range(8):
                await chat.send({"type": "message", "client_id": f"f{index}", "text": str(index)})
            answers = [await chat.expect_any(("ack", "error")) for _ in range(8)]
        kinds = [(a["type"], a.get("code"), a["client_id"]) for a in answers]
        assert kinds[:5] == [("ack", None, f"f{i}") for i in range(5)]
        assert kinds[5:] == [("error", "rate_limited", f"f{i}") for i in range(5, 8)]

        async def five() -> list[Message] | None:
            found = await stored(stack, welcome["visitor"])
            return found if len(found) == 5 else None

        await eventually(five)
        # Another visitor is not held back by the first one's flood.
        await still_works(stack)


async def test_connections_per_address_are_limited(storage_config: StorageConfig) -> None:
    async with chat_stack(storage_config, connections_per_ip=2) as stack:
        async with visitor(stack), visitor(stack):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await stack.http.ws_connect(ws_url(stack), headers={"Origin": ORIGIN})
            assert refused.value.status == 429
        await eventually(lambda: _connections(stack, 0))
        await still_works(stack)


async def _connections(stack: Stack, count: int) -> bool:
    assert stack.runtime.services is not None
    return stack.runtime.services.channels["site"].status()["connections"] == count


MALFORMED = [
    "not json",
    "[1, 2]",
    '"hello"',
    "{}",
    '{"type": "launch"}',
    '{"type": "hello", "last_id": -1}',
    '{"type": "hello", "last_id": "5"}',
    '{"type": "hello", "token": 7}',
    '{"type": "message", "text": "no client id"}',
    '{"type": "message", "client_id": "a b", "text": "bad id"}',
    '{"type": "message", "client_id": "x", "text": 12}',
    '{"type": "message", "client_id": "x", "text": "   "}',
    '{"type": "message", "client_id": "x", "text": "\\ud800"}',
    '{"type": "message", "client_id": "x", "text": "a", "attachments": "file"}',
    '{"type": "message", "client_id": "x", "text": "a", "attachments": [{"url": 1}]}',
    '{"type": "contact", "email": "not-an-address"}',
    "[" * 10_000,
]


async def test_malformed_frames_are_answered_and_nothing_is_stored(
    storage_config: StorageConfig,
) -> None:
    async with chat_stack(storage_config) as stack:
        async with visitor(stack) as (chat, _welcome):
            for raw in MALFORMED:
                await chat.send(raw)
                error = await chat.expect("error")
                assert error["code"] in ("bad_frame", "empty", "bad_email"), (raw, error)
            await chat.ws.send_bytes(b"\x00\x01")
            assert (await chat.expect("error"))["code"] == "bad_frame"
            # The socket is still usable after all that.
            await chat.send({"type": "ping"})
            await chat.expect("pong")
        assert await message_count(stack) == 0
        # A client that keeps sending garbage is disconnected.
        async with stack.http.ws_connect(ws_url(stack), headers={"Origin": ORIGIN}) as ws:
            for _ in range(30):
                if ws.closed:
                    break
                await ws.send_str("garbage")
            while (await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                pass
            assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
        await still_works(stack)


async def test_a_frame_flood_closes_the_socket(storage_config: StorageConfig) -> None:
    async with chat_stack(storage_config) as stack:
        async with stack.http.ws_connect(ws_url(stack), headers={"Origin": ORIGIN}) as ws:
            for _ in range(FRAMES_PER_10_SECONDS + 20):
                if ws.closed:
                    break
                await ws.send_str('{"type": "ping"}')
            while (await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                pass
            assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
        await still_works(stack)


def test_a_socket_that_falls_behind_is_closed_not_buffered_forever() -> None:
    conn = _Conn(ws=None, ip="127.0.0.1")  # type: ignore[arg-type]
    for index in range(OUTGOING_BACKLOG + 1):
        conn.push({"type": "message", "n": index})
    # What it could not take is dropped; the writer meets the order to close (the widget then
    # reconnects and catches up from the history).
    assert conn.outgoing.qsize() == 1 and conn.outgoing.get_nowait() is None
