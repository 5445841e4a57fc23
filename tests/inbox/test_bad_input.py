"""Bad input at every HTTP endpoint, through real HTTP on both backends: each bad request gets a
clear 4xx, nothing is stored half-way, nothing is lost, and the server keeps serving."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from inbox import accounts
from inbox.app import API_PREFIX, API_ROUTES
from routing.router import INBOUND_TOPIC
from storage import models
from storage.config import StorageConfig
from storage.models import ChannelCursor, Conversation, Customer, DeadLetter, Message, QueueEntry
from tests.fixtures.stack import PASSWORD, Agent, Stack, eventually, running_stack

SECRET = "crm-shared-secret-0123456789"
WEBFORM = "/channels/webform/contact"
API = "/channels/api/crm/messages"
CHANNELS = {
    "channels": [
        {"type": "webform", "name": "contact"},
        {"type": "api", "name": "crm", "secret": "${PISHKHAN_TEST_CRM_SECRET}"},
    ]
}
PAYLOADS = Path(__file__).parent.parent / "payloads"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
SEED = "مشتری که در قبال دریافت کالا یا خدمات به شرکت پول پرداخت میکند"
SEED_2 = "پاسخگويي سريعتری به درخواستهاي مشتريان داشته باشد"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its real cost takes 0.2 s a hash; these tests log in and fail logins dozens of
    times, and what they check does not depend on the cost."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", hasher)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", hasher.hash("not a password anyone has"))


@pytest.fixture
async def stack(
    storage_config: StorageConfig, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    """Pishkhan on both backends with a web form `contact` and an API channel `crm`."""
    monkeypatch.setenv("PISHKHAN_TEST_CRM_SECRET", SECRET)
    async with running_stack(storage_config, CHANNELS) as running:
        yield running


# --- helpers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    customers: int = 0
    conversations: int = 0
    messages: int = 0
    idempotency_keys: int = 0
    dead_letters: int = 0


NOTHING = Stored()


async def stored(stack: Stack) -> Stored:
    """What the database holds once the router has drained the queue."""

    async def count(model: Any, *where: Any) -> int:
        async with stack.sessions() as session:
            query = select(func.count()).select_from(model).where(*where)
            return int(await session.scalar(query) or 0)

    async def drained() -> bool:
        return await count(QueueEntry, QueueEntry.topic == INBOUND_TOPIC) == 0

    await eventually(drained)
    return Stored(
        customers=await count(Customer),
        conversations=await count(Conversation),
        messages=await count(Message),
        idempotency_keys=await count(ChannelCursor),
        dead_letters=await count(DeadLetter),
    )


async def texts(stack: Stack) -> list[str]:
    """Every stored message's text in order, once the queue is drained."""
    await stored(stack)
    async with stack.sessions() as session:
        return list((await session.scalars(select(Message.text).order_by(Message.id))).all())


async def post(
    stack: Stack, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with stack.http.post(stack.base + path, data=body, headers=headers or {}) as response:
        text = await response.text()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes, content_type: str = "application/json") -> dict[str, str]:
    return {"Content-Type": content_type, "X-Pishkhan-Signature": signature(body)}


def api_message(message_id: str, text: str, **extra: Any) -> bytes:
    data = {"id": message_id, "sender": {"id": "cust-9", "name": "نگار"}, "text": text, **extra}
    return json.dumps(data, ensure_ascii=False).encode()


async def raw_request(stack: Stack, request: bytes) -> int:
    """The status a hand-written HTTP/1.1 request gets (for bytes no client library sends)."""
    host, port = stack.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1])


async def still_serving(stack: Stack) -> None:
    """Health answers, and a good post on each channel is still taken and stored."""
    async with stack.http.get(stack.base + "/healthz") as response:
        assert response.status == 200
    before = await stored(stack)
    status, _ = await stack.post_form("contact", {"email": "still@example.com", "message": SEED})
    assert status == 202
    body = api_message(f"still-{before.messages}", SEED_2)
    status, answer = await post(stack, API, body, signed(body))
    assert (status, answer) == (202, {"accepted": [f"still-{before.messages}"]})
    after = await stored(stack)
    assert after.messages == before.messages + 2
    assert (await texts(stack))[-2:] == [SEED, SEED_2]


async def refuses(
    stack: Stack,
    cases: list[tuple[str, Any, dict[str, str], int, str]],
    path: str,
) -> None:
    """Post every case; each must get its status and a JSON error naming the problem, and
    leave the database as it was."""
    before = await stored(stack)
    for name, body, headers, status, reason in cases:
        got, answer = await post(stack, path, body, headers)
        assert got == status, f"{name}: {got} {answer}"
        assert reason in answer["error"], f"{name}: {answer}"
        assert await stored(stack) == before, f"{name} stored something"


# --- the web form endpoint --------------------------------------------------------------------


async def test_the_web_form_refuses_unreadable_and_invalid_bodies(stack: Stack) -> None:
    good = urlencode({"email": "reza@example.com", "message": SEED})
    cases: list[tuple[str, Any, dict[str, str], int, str]] = [
        ("truncated JSON", b'{"email": "reza@example.com", "message": "', JSON, 400, "JSON"),
        ("JSON array", b'["reza@example.com"]', JSON, 400, "must be a JSON object"),
        ("JSON nested too deep", b"[" * 60_000, JSON, 400, "not valid JSON"),
        (
            "JSON lone surrogate",
            b'{"email": "reza@example.com", "message": "\\ud83d"}',
            JSON,
            400,
            "\\u escape",
        ),
        ("empty form pair", b"email=reza%40example.com&&message", FORM, 400, "form encoding"),
        ("text/plain", good.encode(), {"Content-Type": "text/plain"}, 415, "application/json"),
        (
            "multipart",
            b'--xyz\r\nContent-Disposition: form-data; name="message"\r\n\r\nhi\r\n--xyz--\r\n',
            {"Content-Type": "multipart/form-data; boundary=xyz"},
            415,
            "application/x-www-form-urlencoded",
        ),
        ("octet-stream", good.encode(), {}, 415, "application/json"),
        (
            "bytes not UTF-8",
            "email=reza%40example.com&message=سلام".encode("cp1256"),
            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            400,
            "not valid utf-8",
        ),
        (
            "percent escapes not UTF-8",
            urlencode({"email": "reza@example.com", "message": "سلام"}, encoding="cp1256"),
            FORM,
            400,
            "%XX escapes",
        ),
        (
            "unknown charset",
            good.encode(),
            {"Content-Type": "application/x-www-form-urlencoded; charset=x-klingon"},
            400,
            "x-klingon",
        ),
        ("no message", urlencode({"email": "reza@example.com"}), FORM, 422, "message: required"),
        ("no way to answer", urlencode({"message": SEED}), FORM, 422, "email or phone"),
        (
            "bad email",
            urlencode({"email": "reza@", "message": SEED}),
            FORM,
            422,
            "email: not an email address",
        ),
        (
            "bad phone",
            urlencode({"phone": "۱۲۳", "message": SEED}),
            FORM,
            422,
            "phone: not a phone number",
        ),
        (
            "message not text",
            json.dumps({"email": "reza@example.com", "message": {"$gt": ""}}),
            JSON,
            422,
            "message: must be text",
        ),
        (
            "message too long",
            urlencode({"email": "reza@example.com", "message": "x" * 20_001}),
            FORM,
            422,
            "message: longer than 20000 characters",
        ),
        (
            "bad Idempotency-Key",
            good,
            {**FORM, "Idempotency-Key": "has spaces in it"},
            400,
            "Idempotency-Key",
        ),
        ("long Idempotency-Key", good, {**FORM, "Idempotency-Key": "k" * 201}, 400, "1 to 200"),
    ]

    await refuses(stack, cases, WEBFORM)

    untyped = (
        b"POST " + WEBFORM.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: " + str(len(good)).encode() + b"\r\nConnection: close\r\n\r\n"
    ) + good.encode()
    assert await raw_request(stack, untyped) == 415
    assert await stored(stack) == NOTHING
    await still_serving(stack)


async def test_oversized_bodies_are_refused_before_they_are_read_whole(stack: Stack) -> None:
    async def chunks(total: int) -> AsyncIterator[bytes]:
        yield b"email=reza%40example.com&message="
        for _ in range(total // 4096):
            yield b"x" * 4096

    big_json = json.dumps({"id": "m", "sender": {"id": "c"}, "text": "x" * 1_100_000}).encode()
    cases: list[tuple[str, str, Any, dict[str, str]]] = [
        ("web form, Content-Length", WEBFORM, b"message=" + b"x" * 200_000, FORM),
        ("web form, chunked", WEBFORM, chunks(200_000), FORM),
        (
            "web form, gzip bomb",  # 5 MB inflated from 5 kB
            WEBFORM,
            gzip.compress(b"email=reza%40example.com&message=" + b"x" * 5_000_000),
            {**FORM, "Content-Encoding": "gzip"},
        ),
        ("api, Content-Length", API, io.BytesIO(big_json), signed(big_json)),
        ("api, chunked", API, chunks(1_100_000), signed(b"")),  # 413 before the signature
    ]
    for name, path, body, headers in cases:
        status, answer = await post(stack, path, body, headers)
        assert status == 413, f"{name}: {status} {answer}"
        assert answer["error"].startswith("body larger than"), name
        assert await stored(stack) == NOTHING, name

    await still_serving(stack)


async def test_unknown_channels_and_methods_answer_json_errors(stack: Stack) -> None:
    form = urlencode({"email": "reza@example.com", "message": SEED})
    for path in ("/channels/webform/nope", "/channels/api/nope/messages", "/channels/fax/contact"):
        status, answer = await post(stack, path, form, FORM)
        assert (status, answer) == (404, {"error": "Not Found"}), path
        assert await stored(stack) == NOTHING, path
    async with stack.http.get(stack.base + WEBFORM) as response:
        assert response.status == 405
        assert (await response.json())["error"] == "Method Not Allowed"

    await still_serving(stack)


async def test_a_replayed_idempotency_key_is_stored_and_counted_once(stack: Stack) -> None:
    body = urlencode({"name": "رضا", "email": "reza@example.com", "message": SEED})
    headers = {**FORM, "Idempotency-Key": "order-1402-0512"}

    first = await post(stack, WEBFORM, body, headers)
    again = await post(stack, WEBFORM, body, headers)
    changed = await post(stack, WEBFORM, body + "!", headers)

    assert first == (202, {"id": "idem:order-1402-0512", "status": "queued"})
    assert again == (200, {"id": "idem:order-1402-0512", "status": "duplicate"})
    assert changed[0] == 422
    assert changed[1]["error"] == "Idempotency-Key was already used with a different body"
    assert await stored(stack) == Stored(
        customers=1, conversations=1, messages=1, idempotency_keys=1
    )
    assert await texts(stack) == [SEED]
    async with stack.http.get(stack.base + "/metrics") as response:
        metrics = await response.text()
    assert 'pishkhan_inbound_messages_total{channel="contact"} 1.0' in metrics


async def test_the_same_key_sent_twice_at_once_is_stored_once(stack: Stack) -> None:
    body = urlencode({"email": "reza@example.com", "message": SEED})
    headers = {**FORM, "Idempotency-Key": "double-click"}

    answers = await asyncio.gather(*(post(stack, WEBFORM, body, headers) for _ in range(2)))

    assert sorted(status for status, _ in answers) in ([200, 202], [202, 202])
    assert await texts(stack) == [SEED]


async def test_a_filled_honeypot_looks_accepted_but_nothing_is_stored(stack: Stack) -> None:
    spam_form = (PAYLOADS / "webform" / "spam_honeypot.form").read_bytes()
    spam_json = json.dumps({"email": "seo@spam.example", "message": "ok", "website": "x"})

    for body, headers in ((spam_form, FORM), (spam_json, JSON)):
        status, answer = await post(stack, WEBFORM, body, {**headers, "Idempotency-Key": "spam"})
        assert status == 202
        assert answer["status"] == "queued"  # a bot learns nothing

    assert await stored(stack) == NOTHING
    await still_serving(stack)


# --- the API channel endpoint -----------------------------------------------------------------


async def test_the_api_refuses_unsigned_and_wrongly_signed_posts(stack: Stack) -> None:
    body = (PAYLOADS / "api" / "single.json").read_bytes()
    good = signature(body)
    cases: list[tuple[str, Any, dict[str, str], int, str]] = [
        ("unsigned", body, JSON, 401, "X-Pishkhan-Signature"),
        ("empty signature", body, {**JSON, "X-Pishkhan-Signature": ""}, 401, "missing or wrong"),
        ("garbage", body, {**JSON, "X-Pishkhan-Signature": "sha256=00"}, 401, "missing or wrong"),
        (
            "another secret",
            body,
            {**JSON, "X-Pishkhan-Signature": signature(body, "another-secret-0123456789")},
            401,
            "missing or wrong",
        ),
        (
            "signature of another body",
            body.replace(b"case-77", b"case-78"),
            {**JSON, "X-Pishkhan-Signature": good},
            401,
            "missing or wrong",
        ),
        (
            "wrong prefix",
            body,
            {**JSON, "X-Pishkhan-Signature": good.replace("sha256=", "sha1=")},
            401,
            "missing or wrong",
        ),
        (
            "unsigned with a bad body",
            b"{not json",
            JSON,
            401,
            "missing or wrong",
        ),
    ]

    await refuses(stack, cases, API)

    undecodable = (
        b"POST " + API.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nX-Pishkhan-Signature: sha256=\xff\xfe\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    assert await raw_request(stack, undecodable) == 401
    assert await stored(stack) == NOTHING
    await still_serving(stack)


async def test_the_api_refuses_bad_signed_bodies_and_stores_none_of_a_bad_batch(
    stack: Stack,
) -> None:
    def case(
        name: str, body: bytes, status: int, reason: str, content_type: str = "application/json"
    ) -> tuple[str, Any, dict[str, str], int, str]:
        return name, body, signed(body, content_type), status, reason

    bad_batch = (PAYLOADS / "api" / "bad_second_message.json").read_bytes()
    cases = [
        case("truncated JSON", b'{"id": "m-1", "sender": {"id": "c"}, "text": "', 400, "JSON"),
        case("JSON nested too deep", b"[" * 60_000, 400, "not valid UTF-8 JSON"),
        case("JSON array", b"[]", 400, "must be a JSON object"),
        case("bytes not UTF-8", api_message("m-1", "سلام").decode().encode("cp1256"), 400, "UTF-8"),
        case(
            "form encoded",
            urlencode({"id": "m-1", "text": "سلام"}).encode(),
            415,
            "application/json",
            "application/x-www-form-urlencoded",
        ),
        case("text/plain", api_message("m-1", SEED), 415, "application/json", "text/plain"),
        case(
            "declared UTF-16",
            api_message("m-1", SEED),
            415,
            "UTF-8",
            "application/json; charset=utf-16",
        ),
        case("no sender", json.dumps({"id": "m-1", "text": SEED}).encode(), 422, "sender"),
        case("no text", api_message("m-1", "   "), 422, "m-1: text or attachments required"),
        case("unknown field", api_message("m-1", SEED, urgent=True), 422, "urgent: Extra"),
        case("empty batch", b'{"messages": []}', 422, "messages"),
        case("one bad message in a batch", bad_batch, 422, "messages.1.sender.id"),
        case("NUL in text", api_message("m-1", "سلام\x00"), 422, "text: Value error"),
        case(
            "NUL in sender id",
            json.dumps({"id": "m-1", "sender": {"id": "c\x00"}, "text": "x"}).encode(),
            422,
            "sender.id: Value error",
        ),
    ]

    await refuses(stack, cases, API)

    assert await stored(stack) == NOTHING  # not even the good first message of the batch
    await still_serving(stack)


async def test_a_replayed_api_message_id_is_stored_once(stack: Stack) -> None:
    batch = (PAYLOADS / "api" / "batch.json").read_bytes()
    single = api_message("crm-9", SEED)
    rewritten = api_message("crm-9", "متن دیگری با همان شناسه")

    answers = [
        await post(stack, API, body, signed(body)) for body in (batch, batch, single, rewritten)
    ]

    assert answers == [
        (202, {"accepted": ["crm-1", "crm-2"]}),
        (202, {"accepted": ["crm-1", "crm-2"]}),
        (202, {"accepted": ["crm-9"]}),
        (202, {"accepted": ["crm-9"]}),
    ]
    after = await stored(stack)
    assert (after.messages, after.dead_letters) == (3, 0)
    assert (await texts(stack))[-1] == SEED  # the first text with that id, not the rewrite


# --- markup and SQL are just text -------------------------------------------------------------

SQL = "'; DROP TABLE messages; --"
SCRIPT = "<script>alert('pishkhan')</script>"


async def test_sql_and_html_in_every_field_are_stored_and_returned_verbatim(stack: Stack) -> None:
    admin = await stack.add_agent("boss@example.com", role="admin")
    await stack.post_form("contact", {"email": "bystander@example.com", "message": SEED_2})
    form = {
        "name": f"Robert{SQL}",
        "email": "o'reilly'--@example.com",
        "phone": "0912-123-4567",
        "subject": SCRIPT,
        "message": f"{SEED}\n{SQL}\n<img src=x onerror=alert(1)>\n' OR '1'='1",
        "company": f"<b>شرکت</b>{SQL}",
    }
    status, _ = await stack.post_form("contact", form)
    assert status == 202
    message: dict[str, Any] = {
        "id": f"1 OR 1=1{SQL}",
        "sender": {"id": f"' OR ''='{SCRIPT}", "name": SCRIPT, "email": "x@example.com"},
        "text": f"<iframe src=javascript:alert(1)></iframe>{SQL}",
        "subject": f"Robert'); DELETE FROM customers;--{SCRIPT}",
        "thread_id": f"{SQL}<b>",
        "metadata": {f"<k>{SQL}": SCRIPT},
        "attachments": [
            {"filename": f"<svg onload=alert(1)>{SQL}.png", "url": "javascript:alert(1)"}
        ],
    }
    body = json.dumps(message, ensure_ascii=False).encode()
    status, _ = await post(stack, API, body, signed(body))
    assert status == 202

    assert await stored(stack) == Stored(customers=3, conversations=3, messages=3)
    _, listing = await admin.get("/api/v1/conversations")
    by_preview = {c["preview"]: c for c in listing["conversations"]}
    assert set(by_preview) == {SEED_2, form["message"], message["text"]}

    status, web = await admin.get(f"/api/v1/conversations/{by_preview[form['message']]['id']}")
    assert status == 200
    assert web["subject"] == SCRIPT
    assert [m["text"] for m in web["messages"]] == [form["message"]]
    assert web["metadata"] == {"company": form["company"]}
    assert web["customer"]["name"] == form["name"]
    assert web["customer"]["emails"] == ["o'reilly'--@example.com"]
    assert web["customer"]["phones"] == ["+989121234567"]

    async with admin.http.get(
        admin.base + f"/api/v1/conversations/{by_preview[message['text']]['id']}"
    ) as response:
        assert response.content_type == "application/json"  # never rendered as HTML
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        api = await response.json()
    assert api["subject"] == message["subject"]
    assert api["thread_id"] == message["thread_id"]
    assert api["metadata"] == message["metadata"]
    [stored_message] = api["messages"]
    assert stored_message["text"] == message["text"]
    assert stored_message["attachments"][0]["name"] == message["attachments"][0]["filename"]
    assert stored_message["attachments"][0]["url"] == ""  # a javascript: link is never handed out
    assert api["customer"]["name"] == SCRIPT
    assert api["customer"]["identities"] == [
        {"channel": "crm", "external_id": message["sender"]["id"], "name": SCRIPT}
    ]

    # nothing else was touched: the bystander's conversation is whole
    _, bystander = await admin.get(f"/api/v1/conversations/{by_preview[SEED_2]['id']}")
    assert [m["text"] for m in bystander["messages"]] == [SEED_2]
    await still_serving(stack)


# --- the agent API ----------------------------------------------------------------------------


def concrete(path: str, value: str = "1") -> str:
    return re.sub(r"\{[^}]+\}", value, path)


async def request(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as response:
        text = await response.text()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


async def a_conversation(stack: Stack, agent: Agent) -> int:
    await stack.post_form("contact", {"email": "reza@example.com", "message": SEED})

    async def first() -> int | None:
        _, listing = await agent.get("/api/v1/conversations")
        return int(listing["conversations"][0]["id"]) if listing["conversations"] else None

    return await eventually(first)


async def test_every_protected_route_refuses_callers_without_credentials(stack: Stack) -> None:
    protected = [route for route in API_ROUTES if route.role != "public"]
    assert len(protected) >= 15
    for route in protected:
        url = stack.base + API_PREFIX + concrete(route.path)
        for headers in (
            {},
            {"Authorization": "Bearer pk_not-a-token"},
            {"Authorization": "Basic Ym9zczpwYXNzd29yZA=="},
            {"Cookie": "pishkhan_session=forged"},
        ):
            status, answer = await request(stack.http, route.method, url, json={}, headers=headers)
            assert status == 401, (route.method, route.path, headers, answer)
            assert answer == {"error": "log in or send a bearer token"}
    async with stack.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(models.Agent)) == 0


async def test_agents_are_refused_every_admin_route(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/agents"): {"email": "mallory@example.com", "password": "long enough pw"},
        ("PATCH", "/agents/{id}"): {"role": "admin", "capacity": 1000},
    }
    admin_routes = [route for route in API_ROUTES if route.role == "admin"]
    assert {(r.method, r.path) for r in admin_routes} >= set(bodies)

    for route in admin_routes:
        path = API_PREFIX + concrete(route.path, str(ali.id))
        status, answer = await ali.send(route.method, path, bodies.get((route.method, route.path)))
        assert (status, answer) == (403, {"error": "admins only"}), (route.method, route.path)

    _, me = await ali.get("/api/v1/me")
    assert me["role"] == "agent"
    _, agents = await ali.get("/api/v1/agents")
    assert [(a["email"], a["role"], a["capacity"]) for a in agents["agents"]] == [
        ("ali@example.com", "agent", 10)
    ]


async def test_a_cookie_session_cannot_write_without_its_csrf_token(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    sara = await stack.add_agent("sara@example.com")
    conversation = await a_conversation(stack, ali)
    writes = [
        ("PUT", "/api/v1/me/presence", {"presence": "offline"}),
        ("POST", f"/api/v1/conversations/{conversation}/messages", {"text": "پاسخ جعلی"}),
        ("PUT", f"/api/v1/conversations/{conversation}/status", {"status": "resolved"}),
        ("POST", "/api/v1/me/tokens", {"name": "stolen"}),
        ("POST", "/api/v1/auth/logout", None),
    ]
    for method, path, body in writes:
        for headers in (
            {},
            {"X-CSRF-Token": ""},
            {"X-CSRF-Token": "wrong"},
            {"X-CSRF-Token": sara.csrf},
        ):
            status, answer = await request(
                ali.http, method, stack.base + path, json=body, headers=headers
            )
            assert (status, answer) == (403, {"error": "missing or wrong X-CSRF-Token header"}), (
                method,
                path,
                headers,
            )

    _, me = await ali.get("/api/v1/me")  # still logged in
    _, agents = await ali.get("/api/v1/agents")
    assert {a["email"]: a["presence"] for a in agents["agents"]}[me["email"]] == "online"
    _, detail = await ali.get(f"/api/v1/conversations/{conversation}")
    assert detail["status"] == "open"
    assert [m["text"] for m in detail["messages"]] == [SEED]


async def test_a_bearer_token_works_without_csrf_and_a_wrong_one_does_not(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    conversation = await a_conversation(stack, ali)
    status, created = await ali.send("POST", "/api/v1/me/tokens", {"name": "همگام‌سازی CRM"})
    assert status == 201
    token = created["token"]

    async with aiohttp.ClientSession() as script:  # no cookies, no CSRF token
        bearer = {"Authorization": f"Bearer {token}"}
        me_status, me = await request(script, "GET", stack.base + "/api/v1/me", headers=bearer)
        presence = await request(
            script,
            "PUT",
            stack.base + "/api/v1/me/presence",
            json={"presence": "away"},
            headers=bearer,
        )
        reply = await request(
            script,
            "POST",
            stack.base + f"/api/v1/conversations/{conversation}/messages",
            json={"text": "از طریق API پاسخ داده شد"},
            headers=bearer,
        )
        wrong = await request(
            script,
            "PUT",
            stack.base + "/api/v1/me/presence",
            json={"presence": "offline"},
            headers={"Authorization": f"Bearer {token[:-1]}x"},
        )

    assert me_status == 200
    assert (me["email"], me["csrf_token"]) == ("ali@example.com", None)
    assert presence == (200, {"presence": "away"})
    assert reply[0] == 201
    assert wrong == (401, {"error": "log in or send a bearer token"})
    _, agents = await ali.get("/api/v1/agents")
    assert agents["agents"][0]["presence"] == "away"


async def test_every_body_route_refuses_malformed_and_mistyped_bodies(stack: Stack) -> None:
    admin = await stack.add_agent("boss@example.com", role="admin")
    conversation = await a_conversation(stack, admin)
    with_body = [route for route in API_ROUTES if route.body is not None]
    assert len(with_body) >= 7
    bad: list[tuple[bytes, str, int, str]] = [
        (b'{"text": "', "application/json", 400, "body is not valid UTF-8 JSON"),
        (b"\xff\xfe{}", "application/json", 400, "body is not valid UTF-8 JSON"),
        (b"text=hello", "application/x-www-form-urlencoded", 415, "send application/json"),
        (b"{}", "text/plain", 415, "send application/json"),
        (b"[]", "application/json", 422, "body: Input should be a valid dictionary"),
        (b'"hello"', "application/json", 422, "body: Input should be a valid dictionary"),
    ]
    for route in with_body:
        url = stack.base + API_PREFIX + concrete(route.path, str(conversation))
        for body, content_type, status, reason in bad:
            headers = {"Content-Type": content_type, "X-CSRF-Token": admin.csrf}
            got, answer = await request(admin.http, route.method, url, data=body, headers=headers)
            assert got == status, (route.path, body, answer)
            assert answer["error"].startswith(reason), (route.path, body, answer)

    path = f"/api/v1/conversations/{conversation}"
    mistyped: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", f"{path}/messages", {"text": 5}, "text: Input should be a valid string"),
        ("POST", f"{path}/messages", {"text": ""}, "text: String should have at least 1"),
        ("POST", f"{path}/messages", {"text": "x", "private": "maybe"}, "private: Input should"),
        ("POST", f"{path}/messages", {"text": "x", "html": "<b>"}, "html: Extra inputs"),
        ("POST", f"{path}/assignment", {"agent_id": "ali"}, "agent_id: Input should be"),
        ("PUT", f"{path}/status", {"status": "closed"}, "status: Input should be"),
        (
            "PUT",
            f"{path}/status",
            {"status": "snoozed", "snoozed_until": "2099-01-01T08:00:00"},
            "snoozed_until: Input should have timezone info",
        ),
        ("POST", f"{path}/labels", {"add": "vip"}, "add: Input should be a valid list"),
        ("POST", f"{path}/labels", {"add": ["   "]}, "labels: 1 to 100 characters each"),
        ("PUT", "/api/v1/me/presence", {"presence": "busy"}, "presence: Input should be"),
        ("POST", "/api/v1/me/tokens", {"name": ""}, "name: String should have at least 1"),
        (
            "POST",
            "/api/v1/agents",
            {"email": "new@example.com", "password": "short"},
            "password: String should have at least 10",
        ),
        (
            "POST",
            "/api/v1/agents",
            {"email": "not an email", "password": "long enough pw"},
            "email: 'not an email' is not an email address",
        ),
        ("PATCH", f"/api/v1/agents/{admin.id}", {"capacity": 0}, "capacity: Input should be"),
    ]
    for method, url, fields, reason in mistyped:
        status, answer = await admin.send(method, url, fields)
        assert status == 422, (url, fields, answer)
        assert answer["error"].startswith(reason), (url, fields, answer)

    _, detail = await admin.get(path)
    assert (detail["status"], detail["labels"]) == ("open", [])
    assert [m["text"] for m in detail["messages"]] == [SEED]
    _, agents = await admin.get("/api/v1/agents")
    assert [(a["email"], a["capacity"]) for a in agents["agents"]] == [("boss@example.com", 10)]
    await still_serving(stack)


async def test_ids_that_are_not_positive_numbers_are_404(stack: Stack) -> None:
    admin = await stack.add_agent("boss@example.com", role="admin")
    with_id = [route for route in API_ROUTES if "{id}" in route.path]
    assert len(with_id) >= 8
    for route in with_id:
        for value in ("abc", "0", "-1", "1.5", "1e3", "99999999999999999999"):
            url = API_PREFIX + concrete(route.path, value)
            status, answer = await admin.send(route.method, url, {})
            assert status == 404, (route.method, url, answer)
            assert "id" in answer["error"]


async def test_wrong_passwords_get_401_and_the_sixth_try_429(stack: Stack) -> None:
    await stack.add_agent("ali@example.com", online=False)
    url = stack.base + "/api/v1/auth/login"

    async def login(email: str, password: str, http: aiohttp.ClientSession) -> tuple[int, Any]:
        return await request(http, "POST", url, json={"email": email, "password": password})

    tries = [await login("ali@example.com", f"guess {i}", stack.http) for i in range(5)]
    assert tries == [(401, {"error": "wrong email or password"})] * 5
    assert await login("nobody@example.com", "guess", stack.http) == tries[0]  # no enumeration
    status, answer = await login("ali@example.com", PASSWORD, stack.http)
    assert (status, answer) == (429, {"error": "too many failed logins; wait a few minutes"})

    # the block is for this client and this address: not a way to lock anyone else out
    await stack.add_agent("sara@example.com", online=False)
    other_client = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    )
    async with other_client:
        status, _ = await login("ali@example.com", PASSWORD, other_client)
    assert status == 200


# --- the agent API refuses what it cannot store, and limits logins however spelled ------------


async def test_deeply_nested_json_to_the_agent_api_is_a_400(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    async with ali.http.post(
        stack.base + "/api/v1/me/tokens",
        data=b"[" * 60_000,
        headers={"Content-Type": "application/json", "X-CSRF-Token": ali.csrf},
    ) as response:
        assert response.status == 400


async def test_numbers_too_big_for_an_id_are_refused(stack: Stack) -> None:
    admin = await stack.add_agent("boss@example.com", role="admin")
    conversation = await a_conversation(stack, admin)
    huge = 2**64

    assignment = await admin.send(
        "POST", f"/api/v1/conversations/{conversation}/assignment", {"agent_id": huge}
    )
    by_assignee = await admin.get(f"/api/v1/conversations?assignee={huge}")
    by_team = await admin.get(f"/api/v1/conversations?team={huge}")
    superscript = await admin.get("/api/v1/conversations?team=²")  # isdigit(), but not int()

    assert (assignment[0], by_assignee[0], by_team[0], superscript[0]) == (422, 400, 400, 400)


async def test_a_list_cursor_without_a_timezone_is_a_400(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")

    status, _ = await ali.get("/api/v1/conversations?before=2024-03-20T10:00:00%7C1")

    assert status == 400


async def test_nul_characters_in_agent_input_are_refused_on_every_backend(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    conversation = await a_conversation(stack, ali)

    reply = await ali.send(
        "POST", f"/api/v1/conversations/{conversation}/messages", {"text": "سلام\x00"}
    )
    token = await ali.send("POST", "/api/v1/me/tokens", {"name": "crm\x00"})

    assert (reply[0], token[0]) == (422, 422)


async def test_a_label_that_is_not_unicode_text_is_a_422(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    conversation = await a_conversation(stack, ali)
    async with ali.http.post(
        stack.base + f"/api/v1/conversations/{conversation}/labels",
        data=b'{"add": ["vip\\ud800"]}',
        headers={"Content-Type": "application/json", "X-CSRF-Token": ali.csrf},
    ) as response:
        assert response.status == 422


async def test_the_login_limit_holds_however_the_address_is_spelled(stack: Stack) -> None:
    await stack.add_agent("ali@example.com", online=False)
    url = stack.base + "/api/v1/auth/login"
    for i in range(5):
        await request(
            stack.http, "POST", url, json={"email": "ali@example.com", "password": f"guess {i}"}
        )

    status, _ = await request(
        stack.http, "POST", url, json={"email": " ali@example.com", "password": PASSWORD}
    )

    assert status == 429
