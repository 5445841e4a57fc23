"""The API channel: signatures, parsing recorded payloads from `tests/payloads/api/`, and
delivering signed replies to a callback server on loopback."""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from channels.api import ApiChannel, ApiConfig, parse_messages, sign, to_inbound, verify_signature
from channels.base import Attachment, Delivery, DeliveryError, Inbound, Outbound, Rejected, Sender

PAYLOADS = Path(__file__).parent.parent / "payloads" / "api"
SECRET = "a-secret-of-16-chars-or-more"
REPLY = "کارشناس ما سفارش شما را پیگیری کرد؛ فردا تحویل داده می‌شود."


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def rejected(body: bytes) -> Rejected:
    with pytest.raises(Rejected) as caught:
        for message in parse_messages(body):
            to_inbound("crm", message)
    return caught.value


# --- signatures -------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_hex_with_a_prefix() -> None:
    # recorded with `openssl dgst -sha256 -hmac a-secret-of-16-chars-or-more`
    assert sign(b'{"id":"crm-1"}', SECRET) == (
        "sha256=73f76f28963cc20a4d7f743128df1c9fe7411a3e9ecd9162261542846575e861"
    )


def test_a_correct_signature_verifies_even_with_surrounding_space() -> None:
    body = payload("single.json")

    assert verify_signature(body, sign(body, SECRET), SECRET)
    assert verify_signature(body, f"  {sign(body, SECRET)} ", SECRET)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + sign(b"{}", SECRET).removeprefix("sha256="),
        sign(b"{}", SECRET).removeprefix("sha256="),
        sign(b"{} ", SECRET),
        sign(b"{}", "another-secret-of-16-chars"),
        sign(b"{}", SECRET)[:-1],
        sign(b"{}", SECRET) + "0",
        "sha256=" + "۷" * 64,
        "sha256=\udcff\udcfe",  # what aiohttp makes of raw non-UTF-8 header bytes
    ],
    ids=[
        "missing",
        "empty",
        "prefix only",
        "wrong prefix",
        "no prefix",
        "another body",
        "another secret",
        "truncated",
        "one digit more",
        "persian digits",
        "undecodable bytes",
    ],
)
def test_anything_but_the_exact_signature_is_refused(header: str | None) -> None:
    assert verify_signature(b"{}", header, SECRET) is False


def test_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    expected = sign(b"{}", SECRET)

    # a wrong prefix or a wrong length must not be an early, faster exit
    for header in (expected, "sha1=abc", expected[:-1], "x" * 71):
        verify_signature(b"{}", header, SECRET)

    expected_side = [a.decode() if isinstance(a, bytes) else a for a, _ in compared]
    assert expected_side == [expected] * 4


# --- parsing ----------------------------------------------------------------------------------


def test_one_recorded_message_becomes_one_envelope() -> None:
    [message] = parse_messages(payload("single.json"))

    inbound = to_inbound("crm", message)

    assert inbound == Inbound(
        channel="crm",
        external_id="crm-ticket-1042",
        sender=Sender(
            external_id="cust-9", name="نگار", email="negar@example.com", phone="۰۹۱۲۱۲۳۴۵۶۷"
        ),
        text=(
            "CRM مشارکتی موجب تعاملهای کارا و سازنده با مشتریان در طول تمام کانالهای ارتباطی میگردد"
        ),
        subject="درخواست پیگیری",
        thread_id="case-77",
        received_at=inbound.received_at,
    )


def test_a_recorded_batch_keeps_order_attachments_and_metadata() -> None:
    first, second = (to_inbound("crm", m) for m in parse_messages(payload("batch.json")))

    assert (first.external_id, second.external_id) == ("crm-1", "crm-2")
    assert first.sender == Sender(external_id="cust-1", name="علی")  # padding trimmed
    assert first.metadata == {"crm_case": "77", "priority": "high"}
    assert second.text == ""
    assert second.attachments == (
        Attachment(
            filename="فاکتور.pdf",
            content_type="application/pdf",
            size=48213,
            url="https://crm.example.ir/files/42",
        ),
    )
    assert first.order_key == second.order_key == "crm:cust-1"


def test_a_utf_8_byte_order_mark_is_tolerated() -> None:
    [message] = parse_messages(b"\xef\xbb\xbf" + payload("single.json"))

    assert message.id == "crm-ticket-1042"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bad_unknown_field.json", "priority: Extra inputs are not permitted"),
        ("bad_missing_sender.json", "sender: Field required"),
        ("bad_empty_batch.json", "messages: Tuple should have at least 1 item"),
        ("bad_second_message.json", "messages.1.sender.id: String should have at least 1"),
        ("bad_no_text.json", "crm-5: text or attachments required"),
    ],
)
def test_recorded_bad_payloads_are_refused_naming_the_place(name: str, reason: str) -> None:
    error = rejected(payload(name))

    assert error.status == 422
    assert error.reason.startswith(reason)


def _message(**overrides: Any) -> dict[str, Any]:
    return {"id": "m-1", "sender": {"id": "cust-1"}, "text": "سلام", **overrides}


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (payload("single.json")[:-20], 400, "body is not valid UTF-8 JSON"),
        (json.dumps(_message()).encode("utf-16"), 400, "body is not valid UTF-8 JSON"),
        (json.dumps(_message(), ensure_ascii=False).encode("cp1256"), 400, "not valid UTF-8"),
        (b"\xff" + payload("single.json"), 400, "body is not valid UTF-8 JSON"),
        (b"[" * 100_000, 400, "body is not valid UTF-8 JSON"),
        (b"[]", 400, "body must be a JSON object"),
        (b'"crm-1"', 400, "body must be a JSON object"),
        (json.dumps(_message(text="a\x00b")).encode(), 422, "text: Value error, must not"),
        (json.dumps(_message(sender={"id": "c\x00"})).encode(), 422, "sender.id: Value error"),
        (json.dumps(_message(metadata={"k\x00": "v"})).encode(), 422, "metadata: Value error"),
        (b'{"id": "m", "sender": {"id": "c"}, "text": "a\\ud800"}', 422, "text:"),
        (
            b'{"id": "m", "sender": {"id": "c"}, "text": "a", "metadata": {"k": "\\udfff"}}',
            422,
            "metadata.k: Input should be a valid string",
        ),
        (json.dumps(_message(text=5)).encode(), 422, "text: Input should be a valid string"),
        (json.dumps(_message(sender="cust-1")).encode(), 422, "sender: Input should be"),
        (json.dumps(_message(metadata={"n": 1})).encode(), 422, "metadata.n: Input should be"),
        (json.dumps(_message(text="x" * 100_001)).encode(), 422, "text: String should have at"),
        (json.dumps(_message(id="")).encode(), 422, "id: String should have at least 1"),
        (
            json.dumps({"messages": [_message(id=f"m-{i}") for i in range(101)]}).encode(),
            422,
            "messages: Tuple should have at most 100",
        ),
        (
            json.dumps(
                _message(attachments=[{"filename": "a.png", "url": "https://x/a"}] * 21)
            ).encode(),
            422,
            "attachments: Tuple should have at most 20",
        ),
        (
            json.dumps(
                _message(attachments=[{"filename": "a.png", "url": "https://x/a", "size": -1}])
            ).encode(),
            422,
            "attachments.0.size: Input should be greater than or equal to 0",
        ),
    ],
    ids=[
        "truncated",
        "UTF-16",
        "windows-1256",
        "invalid byte",
        "nested too deep",
        "array",
        "string",
        "NUL in text",
        "NUL in sender id",
        "NUL in metadata key",
        "lone surrogate in text",
        "lone surrogate in metadata",
        "number as text",
        "string as sender",
        "number in metadata",
        "text too long",
        "empty id",
        "101 messages",
        "21 attachments",
        "negative size",
    ],
)
def test_unusable_bodies_are_refused_with_a_clear_reason(
    body: bytes, status: int, reason: str
) -> None:
    error = rejected(body)

    assert error.status == status
    assert reason in error.reason


# --- sending ----------------------------------------------------------------------------------


@dataclass
class Callbacks:
    """A loopback server standing in for the other system: records what it is sent."""

    base: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def callbacks() -> AsyncIterator[Callbacks]:
    server = Callbacks(base="")

    async def record(request: web.Request) -> web.Response:
        server.received.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    async def answer(request: web.Request) -> web.Response:
        server.received.append((dict(request.headers), await request.read()))
        status = int(request.match_info["status"])
        return web.Response(status=status, text=f"case closed ({status})")

    async def flaky(request: web.Request) -> web.Response:
        server.received.append((dict(request.headers), await request.read()))
        if len(server.received) == 1:
            return web.Response(status=503, text="try again")
        return web.Response(status=204)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/replies", record)
    app.router.add_post("/status/{status}", answer)
    app.router.add_post("/flaky", flaky)
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


class _Cursors:
    async def get(self, channel: str, key: str) -> str | None:
        return None

    async def set(self, channel: str, key: str, value: str) -> None:
        return None


async def _emit(inbound: Inbound) -> None:
    raise AssertionError("sending must not emit anything")


@asynccontextmanager
async def running(callback_url: str | None, **overrides: Any) -> AsyncIterator[ApiChannel]:
    channel = ApiChannel(
        ApiConfig(name="crm", secret=SecretStr(SECRET), callback_url=callback_url, **overrides)
    )
    await channel.start(_emit, _Cursors())
    try:
        yield channel
    finally:
        await channel.stop()


OUTBOUND = Outbound(
    message_id=314,
    channel="crm",
    recipient=Sender(external_id="cust-9", name="نگار"),
    text=REPLY,
    subject="درخواست پیگیری",
    thread_id="case-77",
    in_reply_to="crm-ticket-1042",
    author_name="مریم",
)


async def test_a_reply_is_posted_signed_as_readable_utf_8_json(callbacks: Callbacks) -> None:
    async with running(callbacks.base + "/replies") as channel:
        delivery = await channel.send(OUTBOUND)

    assert delivery == Delivery(external_id="314")
    [(headers, body)] = callbacks.received
    assert verify_signature(body, headers["X-Pishkhan-Signature"], SECRET)
    assert headers["Content-Type"] == "application/json"
    assert REPLY.encode() in body  # not \u-escaped
    assert json.loads(body) == {
        "message_id": 314,
        "recipient": {"id": "cust-9", "name": "نگار"},
        "thread_id": "case-77",
        "in_reply_to": "crm-ticket-1042",
        "subject": "درخواست پیگیری",
        "text": REPLY,
        "author": "مریم",
    }
    assert channel.status()["last_error"] == ""


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_a_4xx_answer_is_a_permanent_failure(callbacks: Callbacks, status: int) -> None:
    async with running(f"{callbacks.base}/status/{status}") as channel:
        with pytest.raises(DeliveryError) as failed:
            await channel.send(OUTBOUND)

    assert failed.value.permanent is True
    assert failed.value.reason == f"callback answered {status}: case closed ({status})"
    assert channel.status()["last_error"] == failed.value.reason


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_a_5xx_or_try_later_answer_is_a_transient_failure(
    callbacks: Callbacks, status: int
) -> None:
    async with running(f"{callbacks.base}/status/{status}") as channel:
        with pytest.raises(DeliveryError) as failed:
            await channel.send(OUTBOUND)

    assert failed.value.permanent is False
    assert f"callback answered {status}" in failed.value.reason


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_refused_connection_is_transient_and_shown_in_the_status() -> None:
    async with running(f"http://127.0.0.1:{_closed_port()}/replies") as channel:
        with pytest.raises(DeliveryError) as failed:
            await channel.send(OUTBOUND)
        status = channel.status()

    assert failed.value.permanent is False
    assert status["last_error"].startswith("callback unreachable")


async def test_a_callback_slower_than_the_timeout_is_transient(callbacks: Callbacks) -> None:
    async with running(callbacks.base + "/slow", timeout_seconds=0.2) as channel:
        with pytest.raises(DeliveryError) as failed:
            await channel.send(OUTBOUND)

    assert failed.value.permanent is False
    assert "unreachable" in failed.value.reason


async def test_a_success_after_a_failure_clears_the_error(callbacks: Callbacks) -> None:
    async with running(callbacks.base + "/flaky") as channel:
        with pytest.raises(DeliveryError):
            await channel.send(OUTBOUND)
        assert channel.status()["last_error"] == "callback answered 503: try again"

        await channel.send(OUTBOUND)

        assert channel.status() == {"running": True, "last_error": ""}
    assert len(callbacks.received) == 2


async def test_without_a_callback_url_replies_fail_permanently() -> None:
    async with running(None) as channel:
        with pytest.raises(DeliveryError) as failed:
            await channel.send(OUTBOUND)

    assert failed.value.permanent is True
    assert "no callback_url" in failed.value.reason


async def test_a_stopped_channel_does_not_send_and_says_so(callbacks: Callbacks) -> None:
    async with running(callbacks.base + "/replies") as channel:
        pass

    with pytest.raises(DeliveryError) as failed:
        await channel.send(OUTBOUND)

    assert failed.value.permanent is False
    assert callbacks.received == []
    assert channel.status()["running"] is False
