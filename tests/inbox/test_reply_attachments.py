"""Agents attach files to replies and notes: upload (limits, type policy, safe names), reply
with them, see them in the thread and in events, download them — and nobody else's uploads.
Then a reply with files goes out through the real email channel to aiosmtpd."""

from __future__ import annotations

import asyncio
import io
import secrets
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from inbox.api.openapi import build_spec
from inbox.app import API_ROUTES
from inbox.uploads import UploadsConfig, check, safe_filename, sniff
from routing.outbound import DeliverySweep
from storage.config import StorageConfig
from storage.models import Attachment, Message, utcnow
from tests.fixtures.mail import (
    PASSWORD as MAIL_PASSWORD,
)
from tests.fixtures.mail import (
    Dovecot,
    SmtpServer,
    customer_mail,
    dovecot_server,  # noqa: F401 - the `dovecot` fixture
    smtp_recorder,  # noqa: F401 - the `smtp_server` fixture
)
from tests.fixtures.services import unique
from tests.fixtures.stack import Agent, Stack, eventually, running_stack

# From the seed documents: what an agent answers, and file names as Persian users write them.
ANSWER = "رسید خرید و راهنمای نصب را پیوست کردم؛ لطفاً بررسی کنید."
RECEIPT = "رسید خرید ۱۲۳۴.pdf"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
EXE = b"MZ\x90\x00" + bytes(200)
File = tuple[str, bytes, str]


def multipart(files: list[File], *, field: str = "file") -> tuple[bytes, str]:
    """A multipart/form-data body as a browser writes it (UTF-8 names, raw, in quotes)."""
    boundary = "----pishkhan" + secrets.token_hex(8)
    body = b""
    for name, data, content_type in files:
        body += (
            (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def upload_raw(
    agent: Agent,
    conversation_id: int,
    body: bytes,
    content_type: str,
    *,
    csrf: str | None = "own",
) -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if csrf is not None:
        headers["X-CSRF-Token"] = agent.csrf if csrf == "own" else csrf
    async with agent.http.post(
        f"{agent.base}/api/v1/conversations/{conversation_id}/attachments",
        data=body,
        headers=headers,
    ) as response:
        return response.status, await response.json()


async def upload(agent: Agent, conversation_id: int, *files: File) -> tuple[int, Any]:
    return await upload_raw(agent, conversation_id, *multipart(list(files)))


async def uploaded_ids(agent: Agent, conversation_id: int, *files: File) -> list[str]:
    status, answer = await upload(agent, conversation_id, *files)
    assert status == 201, answer
    return [a["id"] for a in answer["attachments"]]


async def new_conversation(stack: Stack, agent: Agent) -> int:
    """A customer writes through the web form; the conversation's id once it is routed."""
    words = f"سفارشم هنوز نرسیده است {uuid.uuid4().hex[:8]}"
    status, _ = await stack.post_form(
        "contact",
        {"name": "مریم", "email": f"{uuid.uuid4().hex[:8]}@example.com", "message": words},
    )
    assert status in (200, 201, 202, 303)

    async def found() -> int | None:
        _, listing = await agent.get("/api/v1/conversations")
        ids = [c["id"] for c in listing["conversations"] if c["preview"] == words]
        return int(ids[0]) if ids else None

    return await eventually(found)


async def stored_uploads(stack: Stack) -> int:
    async with stack.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Attachment)
            .where(Attachment.conversation_id.is_not(None))
        )
    return int(count or 0)


async def test_a_reply_carries_files_in_the_thread_the_events_and_downloads(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com", role="admin")
    conversation = await new_conversation(stack, ali)
    status, answer = await upload(
        ali,
        conversation,
        (RECEIPT, PDF, "application/pdf"),
        # the client's type is a lie: the bytes say PNG, and that is what is stored
        ("عکس کالا.txt", PNG, "application/x-msdownload"),
    )
    assert status == 201, answer
    receipt, photo = answer["attachments"]
    assert (receipt["name"], receipt["content_type"], receipt["size"]) == (
        RECEIPT,
        "application/pdf",
        len(PDF),
    )
    assert (photo["name"], photo["content_type"]) == ("عکس کالا.txt", "image/png")
    assert receipt["url"] == f"/api/v1/attachments/{receipt['id']}"

    # the uploader can look at an unsent upload
    async with ali.http.get(ali.base + receipt["url"]) as response:
        assert response.status == 200 and await response.read() == PDF

    status, message = await ali.send(
        "POST",
        f"/api/v1/conversations/{conversation}/messages",
        {"text": ANSWER, "attachments": [photo["id"], receipt["id"]]},
    )
    assert status == 201, message
    assert [a["name"] for a in message["attachments"]] == ["عکس کالا.txt", RECEIPT]

    _, detail = await ali.get(f"/api/v1/conversations/{conversation}")
    [reply] = [m for m in detail["messages"] if m["direction"] == "out"]
    assert reply["text"] == ANSWER
    assert [(a["name"], a["content_type"], a["size"], a["url"]) for a in reply["attachments"]] == [
        ("عکس کالا.txt", "image/png", len(PNG), photo["url"]),
        (RECEIPT, "application/pdf", len(PDF), receipt["url"]),
    ]
    _, events = await ali.get(f"/api/v1/conversations/{conversation}/events")
    [created] = [e for e in events["events"] if e["type"] == "message.created"][-1:]
    assert [a["id"] for a in created["data"]["message"]["attachments"]] == [
        photo["id"],
        receipt["id"],
    ]

    async with ali.http.get(ali.base + receipt["url"]) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/pdf"
        assert "filename*=UTF-8''" in response.headers["Content-Disposition"]
        assert await response.read() == PDF

    # A webform conversation answers by email only when a reply channel is set: here it has
    # none, so the reply fails with the channel's reason, visibly.
    async def delivered() -> dict[str, Any] | None:
        _, found = await ali.get(f"/api/v1/conversations/{conversation}")
        out = next(m for m in found["messages"] if m["direction"] == "out")
        return out if out["delivery_status"] in ("sent", "failed") else None

    outcome = await eventually(delivered)
    assert outcome["delivery_status"] == "failed" and outcome["delivery_error"]


async def test_a_private_note_carries_files_and_a_reply_may_be_only_files(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    conversation = await new_conversation(stack, ali)
    [note_file] = await uploaded_ids(
        ali, conversation, ("گزارش.csv", "کد,نام\n1,علی\n".encode(), "text/csv")
    )
    status, note = await ali.send(
        "POST",
        f"/api/v1/conversations/{conversation}/messages",
        {"text": "فایل داخلی", "private": True, "attachments": [note_file]},
    )
    assert status == 201, note
    assert note["private"] and note["delivery_status"] is None
    assert [(a["name"], a["content_type"]) for a in note["attachments"]] == [
        ("گزارش.csv", "text/csv")
    ]

    [only_file] = await uploaded_ids(ali, conversation, (RECEIPT, PDF, "application/pdf"))
    status, reply = await ali.send(
        "POST", f"/api/v1/conversations/{conversation}/messages", {"attachments": [only_file]}
    )
    assert status == 201, reply
    assert reply["text"] == "" and len(reply["attachments"]) == 1

    # neither text nor files: refused, as before
    status, answer = await ali.send(
        "POST", f"/api/v1/conversations/{conversation}/messages", {"private": True}
    )
    assert status == 422 and answer["error"].startswith("text: Field required")


async def test_uploads_belong_to_their_uploader_and_conversation(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com", role="admin")
    sara = await stack.add_agent("sara@example.com", role="admin")
    first = await new_conversation(stack, ali)
    second = await new_conversation(stack, ali)
    [saras] = await uploaded_ids(sara, first, (RECEIPT, PDF, "application/pdf"))
    [alis] = await uploaded_ids(ali, first, (RECEIPT, PDF, "application/pdf"))
    path = f"/api/v1/conversations/{first}/messages"

    # another agent cannot send, see or remove an upload not sent yet
    status, answer = await ali.send("POST", path, {"text": ANSWER, "attachments": [saras]})
    assert (status, answer["error"]) == (404, f"not found: attachment {saras}")
    async with ali.http.get(f"{ali.base}/api/v1/attachments/{saras}") as response:
        assert response.status == 404
    status, _ = await ali.send("DELETE", f"/api/v1/attachments/{saras}")
    assert status == 404
    # nor may its own uploader send it in another conversation
    status, answer = await sara.send(
        "POST", f"/api/v1/conversations/{second}/messages", {"text": "x", "attachments": [saras]}
    )
    assert status == 404
    # a mix of good and foreign ids stores nothing
    status, _ = await ali.send("POST", path, {"text": ANSWER, "attachments": [alis, saras]})
    assert status == 404
    async with stack.sessions() as session:
        out = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "out")
        )
    assert out == 0

    # sent once, an upload cannot go again; once sent, whoever sees the conversation sees it
    status, _ = await sara.send("POST", path, {"text": ANSWER, "attachments": [saras]})
    assert status == 201
    status, answer = await sara.send("POST", path, {"text": "again", "attachments": [saras]})
    assert status == 422 and "sent already" in answer["error"]
    status, answer = await ali.send("POST", path, {"text": "x", "attachments": [alis, alis]})
    assert status == 422 and "twice" in answer["error"]
    async with ali.http.get(f"{ali.base}/api/v1/attachments/{saras}") as response:
        assert response.status == 200 and await response.read() == PDF
    status, _ = await sara.send("DELETE", f"/api/v1/attachments/{saras}")
    assert status == 404  # sent: part of the record now

    # removing one's own unsent upload
    status, _ = await ali.send("DELETE", f"/api/v1/attachments/{alis}")
    assert status == 204
    status, _ = await ali.send("POST", path, {"text": "x", "attachments": [alis]})
    assert status == 404


async def test_an_agent_who_cannot_see_the_conversation_cannot_upload_there(
    stack: Stack,
) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin")
    ali = await stack.add_agent("ali@example.com")
    sara = await stack.add_agent("sara@example.com")
    conversation = await new_conversation(stack, boss)
    status, team = await boss.send(
        "POST", "/api/v1/teams", {"name": "sales", "members": [{"agent_id": ali.id}]}
    )
    assert status == 201, team
    status, _ = await boss.send(
        "PUT",
        f"/api/v1/conversations/{conversation}/assignment",
        {"agent_id": ali.id, "team_id": team["id"], "set_team": True},
    )
    assert status == 200
    status, answer = await upload(sara, conversation, (RECEIPT, PDF, "application/pdf"))
    assert (status, answer["error"]) == (404, f"not found: conversation {conversation}")
    assert await stored_uploads(stack) == 0
    [alis] = await uploaded_ids(ali, conversation, (RECEIPT, PDF, "application/pdf"))
    status, _ = await ali.send(
        "POST",
        f"/api/v1/conversations/{conversation}/messages",
        {"text": ANSWER, "attachments": [alis]},
    )
    assert status == 201
    async with sara.http.get(f"{sara.base}/api/v1/attachments/{alis}") as response:
        assert response.status == 404  # sent, but in a conversation she cannot see


async def test_csrf_and_credentials_are_required(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    conversation = await new_conversation(stack, ali)
    body, content_type = multipart([(RECEIPT, PDF, "application/pdf")])
    for csrf in (None, "", "wrong"):
        status, answer = await upload_raw(ali, conversation, body, content_type, csrf=csrf)
        assert status == 403 and "X-CSRF-Token" in answer["error"]
    async with stack.http.post(
        f"{stack.base}/api/v1/conversations/{conversation}/attachments",
        data=body,
        headers={"Content-Type": content_type},
    ) as response:
        assert response.status == 401
    assert await stored_uploads(stack) == 0


async def test_bad_multipart_bodies_get_a_clear_4xx_and_store_nothing(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    conversation = await new_conversation(stack, ali)
    good, content_type = multipart([(RECEIPT, PDF, "application/pdf")])
    boundary = content_type.split("boundary=")[1]
    other_field, other_type = multipart([(RECEIPT, PDF, "application/pdf")], field="document")
    cases: list[tuple[bytes, str, int, str]] = [
        (b'{"file": "x"}', "application/json", 415, "send multipart/form-data"),
        (good, "multipart/form-data", 400, "malformed multipart body"),  # no boundary
        (good[: len(good) // 2], content_type, 400, "malformed multipart body"),  # cut short
        (b"garbage without any boundary", content_type, 400, "malformed multipart body"),
        (f"--{boundary}--\r\n".encode(), content_type, 400, "no `file` part"),
        (other_field, other_type, 400, "unexpected part 'document'"),
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n\r\nhi\r\n'
            f"--{boundary}--\r\n".encode(),
            content_type,
            400,
            "unexpected part 'file'",  # a form field, not a file
        ),
        (*multipart([("خالی.txt", b"", "text/plain")]), 422, "خالی.txt: the file is empty"),
    ]
    for body, kind, status, reason in cases:
        got, answer = await upload_raw(ali, conversation, body, kind)
        assert got == status and answer["error"].startswith(reason), (reason, got, answer)
    assert await stored_uploads(stack) == 0


async def test_the_type_policy_refuses_programs_and_what_is_not_allowed(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    conversation = await new_conversation(stack, ali)
    refused = [
        ("فاکتور.pdf", EXE, "programs may not be attached"),  # a program dressed as a PDF
        ("run.pdf", b"\x7fELF\x02\x01\x01" + bytes(50), "programs may not be attached"),
        ("install.txt", b"#!/bin/sh\nrm -rf ~\n", "programs may not be attached"),
        ("invoice.pdf.exe", PDF, ".exe files may not be attached"),  # the name alone
        ("page.html", b"<html><script>alert(1)</script></html>", "files of type text/html"),
        ("data.bin", bytes(range(256)), "files of type application/octet-stream"),
    ]
    for name, data, reason in refused:
        status, answer = await upload(ali, conversation, (name, data, "application/pdf"))
        assert status == 415, (name, answer)
        assert reason in answer["error"], (name, answer)
    # one bad file refuses the whole upload
    status, _ = await upload(
        ali, conversation, (RECEIPT, PDF, "application/pdf"), ("x.exe", EXE, "image/png")
    )
    assert status == 415
    assert await stored_uploads(stack) == 0


async def test_names_are_made_safe_and_persian_names_kept(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    conversation = await new_conversation(stack, ali)
    names = {
        "../../etc/passwd.txt": "passwd.txt",
        "C:\\Users\\سارا\\رسید.pdf": "رسید.pdf",
        "گزارش\u200cها.txt": "گزارش\u200cها.txt",  # ZWNJ stays
        "doc\u202etxt.exe.pdf": "doctxt.exe.pdf",  # the right-to-left override goes
        "  .hidden.txt": "hidden.txt",
        'a"b<c>.txt': "a_b_c_.txt",
    }
    for sent, kept in names.items():
        status, answer = await upload(ali, conversation, (sent, PDF, "application/pdf"))
        assert status == 201, (sent, answer)
        assert answer["attachments"][0]["name"] == kept, sent
        async with ali.http.get(ali.base + answer["attachments"][0]["url"]) as response:
            disposition = response.headers["Content-Disposition"]
            assert "\r" not in disposition and "\n" not in disposition


def test_the_policy_functions_on_their_own() -> None:
    assert safe_filename("a\r\nX-Injected: 1.txt") == "aX-Injected_ 1.txt"
    assert safe_filename("") == safe_filename("../") == "attachment"
    long = "ب" * 300 + ".pdf"
    assert len(safe_filename(long)) == 200 and safe_filename(long).endswith(".pdf")
    assert sniff(b"PK\x03\x04" + bytes(30), "قرارداد.docx").endswith("wordprocessingml.document")
    assert sniff(b"PK\x03\x04" + bytes(30), "archive.zip") == "application/zip"
    assert sniff("متن فارسي".encode("cp1256"), "note.txt") == "text/plain"
    config = UploadsConfig(allowed_types=("image/*",))
    assert check(PNG, "a.png", config).content_type == "image/png"
    with pytest.raises(Exception, match="files of type application/pdf"):
        check(PDF, "a.pdf", config)


async def test_size_limits_per_file_per_reply_and_count(storage_config: StorageConfig) -> None:
    limits = {"max_file_bytes": 1000, "max_message_bytes": 1500, "max_files": 2}
    extra = {"server": {"port": 0, "uploads": limits}}
    async with running_stack(storage_config, extra) as stack:
        ali = await stack.add_agent("ali@example.com")
        conversation = await new_conversation(stack, ali)
        text = b"a" * 900
        status, answer = await upload(ali, conversation, ("big.txt", b"a" * 1001, "text/plain"))
        assert status == 413 and answer["error"] == "big.txt: larger than 1000 bytes"
        status, answer = await upload(
            ali, conversation, ("a.txt", text, "text/plain"), ("b.txt", text, "text/plain")
        )
        assert status == 413 and "together are larger than 1500" in answer["error"]
        status, answer = await upload(
            ali, conversation, *[(f"{n}.txt", b"x", "text/plain") for n in range(3)]
        )
        assert status == 413 and "at most 2 files" in answer["error"]
        assert await stored_uploads(stack) == 0

        # uploads made one at a time still count toward one reply's limits
        [first] = await uploaded_ids(ali, conversation, ("a.txt", text, "text/plain"))
        status, answer = await upload(ali, conversation, ("b.txt", text, "text/plain"))
        assert status == 413 and "wait to be sent here already" in answer["error"]
        [second] = await uploaded_ids(ali, conversation, ("c.txt", b"c" * 100, "text/plain"))
        status, _ = await upload(ali, conversation, ("d.txt", b"d", "text/plain"))
        assert status == 413  # two wait already
        status, reply = await ali.send(
            "POST",
            f"/api/v1/conversations/{conversation}/messages",
            {"text": ANSWER, "attachments": [first, second]},
        )
        assert status == 201, reply


async def test_unsent_uploads_are_cleaned_up_and_sent_ones_stay(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    conversation = await new_conversation(stack, ali)
    [sent, _unsent] = await uploaded_ids(
        ali, conversation, ("a.pdf", PDF, "application/pdf"), ("b.pdf", PDF, "application/pdf")
    )
    status, _ = await ali.send(
        "POST",
        f"/api/v1/conversations/{conversation}/messages",
        {"text": "x", "attachments": [sent]},
    )
    assert status == 201
    assert stack.runtime.services is not None
    queue = stack.runtime.services.queue

    async def notify(_events: Any) -> None:
        return None

    now = utcnow()
    sweep = DeliverySweep(
        stack.sessions, queue, notify, unsent_uploads=timedelta(hours=24), clock=lambda: now
    )
    assert await sweep.delete_unsent_uploads() == 0  # too young
    later = DeliverySweep(
        stack.sessions,
        queue,
        notify,
        unsent_uploads=timedelta(hours=24),
        clock=lambda: now + timedelta(hours=25),
    )
    assert await later.delete_unsent_uploads() == 1
    async with stack.sessions() as session:
        left = (
            await session.scalars(
                select(Attachment.id).where(Attachment.conversation_id.is_not(None))
            )
        ).all()
    assert left == [sent]


async def test_a_bearer_token_uploads_big_files_without_csrf(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    conversation = await new_conversation(stack, ali)
    status, token = await ali.send("POST", "/api/v1/me/tokens", {"name": "script"})
    assert status == 201, token
    bearer = {"Authorization": f"Bearer {token['token']}"}
    url = f"{stack.base}/api/v1/conversations/{conversation}/attachments"
    # past the 1 MiB JSON body limit, within the 10 MiB upload limit
    big = PDF + b"0" * (3 * 1024 * 1024)
    body, content_type = multipart([(RECEIPT, big, "application/pdf")])
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url, data=io.BytesIO(body), headers={"Content-Type": content_type, **bearer}
        ) as response:
            assert response.status == 201, await response.text()
            [stored] = (await response.json())["attachments"]
        async with http.get(stack.base + stored["url"], headers=bearer) as response:
            assert await response.read() == big
        # past the upload limit: a clear 413, even while the client is still sending
        huge, content_type = multipart([("huge.pdf", PDF + bytes(12 * 1024 * 1024), "x/y")])
        async with http.post(
            url, data=io.BytesIO(huge), headers={"Content-Type": content_type, **bearer}
        ) as response:
            assert response.status == 413
            assert "larger than" in (await response.json())["error"]
    assert await stored_uploads(stack) == 1


def test_the_openapi_document_describes_uploads_and_reply_ids() -> None:
    spec = build_spec(API_ROUTES)
    upload_op = spec["paths"]["/api/v1/conversations/{id}/attachments"]["post"]
    form = upload_op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"]["items"]["format"] == "binary"
    assert {"201", "413", "415"} <= set(upload_op["responses"])
    reply = spec["components"]["schemas"]["ReplyBody"]["properties"]
    assert reply["attachments"]["items"]["pattern"] == "^[0-9a-f]{32}$"
    assert set(spec["paths"]["/api/v1/attachments/{id}"]) == {"get", "delete"}


# --- through the real email channel -----------------------------------------------------------

ENV = "PISHKHAN_TEST_MAIL_PASSWORD"


@pytest.fixture
def mailbox(dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, MAIL_PASSWORD)
    name = unique("box")
    dovecot.create("support", name)
    return name


async def test_files_arrive_as_mime_attachments_by_email(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    channel = {
        "type": "email",
        "name": "support",
        "address": "support@pishkhan.test",
        "display_name": "Pishkhan Support",
        "imap_host": "127.0.0.1",
        "imap_port": dovecot.port,
        "imap_security": "none",
        "imap_username": "support",
        "imap_password": f"${{{ENV}}}",
        "mailbox": mailbox,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_server.port,
        "smtp_security": "none",
        "timeout_seconds": 5,
    }
    await asyncio.to_thread(dovecot.append, "support", customer_mail(), mailbox)
    async with running_stack(storage_config, {"channels": [channel]}) as stack:
        sara = await stack.add_agent("sara@pishkhan.test")

        async def conversation() -> int | None:
            _, listing = await sara.get("/api/v1/conversations")
            items = listing["conversations"]
            return int(items[0]["id"]) if items else None

        conversation_id = await eventually(conversation, timeout=10)
        ids = await uploaded_ids(
            sara,
            conversation_id,
            (RECEIPT, PDF, "application/pdf"),
            ("عکس.png", PNG, "image/png"),
        )
        status, reply = await sara.send(
            "POST",
            f"/api/v1/conversations/{conversation_id}/messages",
            {"text": ANSWER, "attachments": ids},
        )
        assert status == 201, reply
        [received] = await smtp_server.wait_for(1)
        mail = received.message
        files = [
            (a.get_filename(), a.get_content_type(), a.get_content())
            for a in mail.iter_attachments()
        ]
        assert files == [(RECEIPT, "application/pdf", PDF), ("عکس.png", "image/png", PNG)]
        assert mail.get_body(("plain",)).get_content().strip() == ANSWER  # type: ignore[union-attr]

        async def sent() -> str | None:
            _, detail = await sara.get(f"/api/v1/conversations/{conversation_id}")
            out = [m for m in detail["messages"] if m["direction"] == "out"]
            return (
                out[0]["delivery_status"] if out and out[0]["delivery_status"] == "sent" else None
            )

        assert await eventually(sent) == "sent"
