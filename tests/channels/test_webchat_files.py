"""Files of a chat, downloaded by its visitor: the agent's attachments and the visitor's own
uploads, through signed, expiring links that open that visitor's files only, always served as
downloads that cannot render or run."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import aiohttp
from sqlalchemy import select

from channels.webchat import WebchatChannel
from channels.webchat_files import download_headers
from channels.webchat_tokens import Signer
from storage.config import StorageConfig
from storage.models import Message
from tests.channels.test_webchat import chat_stack, conversation_of, visitor
from tests.channels.test_webchat_upload import PNG, upload
from tests.fixtures.stack import Agent, Stack, eventually

PDF = b"%PDF-1.4 guide to returns"
GUIDE = "راهنمای مرجوعی.pdf"


def channel_of(stack: Stack) -> WebchatChannel:
    assert stack.runtime.services is not None
    channel = stack.runtime.services.channels["site"]
    assert isinstance(channel, WebchatChannel)
    return channel


def signer_of(stack: Stack) -> Signer:
    signer = channel_of(stack)._signer
    assert signer is not None
    return signer


async def fetch(stack: Stack, link: str) -> tuple[int, bytes, Any]:
    """GET a link as the widget builds it (relative to the channel's base URL)."""
    async with stack.http.get(f"{stack.base}/channels/webchat/site/{link}") as response:
        return response.status, await response.read(), response.headers


async def reply_with_file(
    agent: Agent, conversation_id: int, *, private: bool = False, text: str = "این راهنما است"
) -> dict[str, Any]:
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("file", PDF, filename=GUIDE, content_type="application/pdf")
    async with agent.http.post(
        f"{agent.base}/api/v1/conversations/{conversation_id}/attachments",
        data=form,
        headers={"X-CSRF-Token": agent.csrf},
    ) as response:
        assert response.status == 201, await response.text()
        [uploaded] = (await response.json())["attachments"]
    status, message = await agent.send(
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        {"text": text, "private": private, "attachments": [uploaded["id"]]},
    )
    assert status == 201, message
    return dict(uploaded)


async def test_the_agents_file_downloads_for_the_visitor_live_and_from_the_history(
    storage_config: StorageConfig,
) -> None:
    async with chat_stack(storage_config) as stack:
        sara = await stack.add_agent("sara@example.com")
        async with visitor(stack) as (chat, welcome):
            await chat.send({"type": "message", "client_id": "f1", "text": "راهنمای مرجوعی؟"})
            await chat.expect("ack", client_id="f1")
            conversation_id = await conversation_of(stack, welcome["visitor"])
            uploaded = await reply_with_file(sara, conversation_id)
            live = await chat.expect("message", text="این راهنما است")
        [file] = live["attachments"]
        assert (file["filename"], file["content_type"], file["size"]) == (
            GUIDE,
            "application/pdf",
            len(PDF),
        )
        assert file["link"].startswith("files/") and uploaded["url"] not in file["link"]
        status, body, headers = await fetch(stack, file["link"])
        assert status == 200 and body == PDF
        assert headers["Content-Type"] == "application/pdf"
        assert headers["Content-Disposition"] == (
            "attachment; filename=\"_______ ______.pdf\"; filename*=UTF-8''" + quote(GUIDE)
        )
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in headers["Content-Security-Policy"]

        # A later visit: the history links the same file with a fresh token.
        async with visitor(stack, token=welcome["token"]) as (_chat, back):
            [line] = [m for m in back["messages"] if m["from"] == "agent"]
            [again] = line["attachments"]
            status, body, _ = await fetch(stack, again["link"])
            assert status == 200 and body == PDF

        # Nobody else's link opens it, nor one made up, altered, expired or of another key.
        async with visitor(stack) as (_other, stranger):
            pass
        signer, url = signer_of(stack), uploaded["url"]
        later = int(time.time()) + 3600
        token = file["link"].removeprefix("files/")
        refused = {
            "another visitor's id in the token": token.replace(
                welcome["visitor"], stranger["visitor"]
            ),
            "a forged signature": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
            "expired": signer.file_token(welcome["visitor"], url, int(time.time()) - 1),
            "signed with another key": Signer("another key", "site").file_token(
                welcome["visitor"], url, later
            ),
            "signed for another channel": Signer("k", "other").file_token(
                welcome["visitor"], url, later
            ),
            "not a token": "nothing-here",
            "too long": "v" * 5000,
        }
        for why, bad in refused.items():
            status, body, _ = await fetch(stack, "files/" + bad)
            assert status == 403, why
            assert PDF not in body

        # Validly signed, but the file is not in that visitor's conversations: not found.
        for who, file_url in (
            (stranger["visitor"], url),
            (welcome["visitor"], "/api/v1/attachments/" + "0" * 32),
            (welcome["visitor"], "/etc/passwd"),
        ):
            status, body, _ = await fetch(stack, "files/" + signer.file_token(who, file_url, later))
            assert status == 404, (who, file_url)
            assert PDF not in body


async def test_a_file_in_a_private_note_is_never_the_visitors(
    storage_config: StorageConfig,
) -> None:
    async with chat_stack(storage_config) as stack:
        sara = await stack.add_agent("sara@example.com")
        async with visitor(stack) as (chat, welcome):
            await chat.send({"type": "message", "client_id": "n1", "text": "سلام"})
            await chat.expect("ack", client_id="n1")
            conversation_id = await conversation_of(stack, welcome["visitor"])
            note = await reply_with_file(sara, conversation_id, private=True, text="یادداشت")

            async def noted() -> bool:
                async with stack.sessions() as session:
                    return bool(
                        await session.scalar(
                            select(Message.id).where(
                                Message.conversation_id == conversation_id,
                                Message.private.is_(True),
                            )
                        )
                    )

            await eventually(noted)
        async with visitor(stack, token=welcome["token"]) as (_chat, back):
            assert all(not m["attachments"] for m in back["messages"])
        later = int(time.time()) + 3600
        token = signer_of(stack).file_token(welcome["visitor"], note["url"], later)
        status, body, _ = await fetch(stack, "files/" + token)
        assert status == 404 and PDF not in body


async def test_the_visitors_own_upload_downloads_from_their_other_tabs_and_history(
    storage_config: StorageConfig,
) -> None:
    async with (
        chat_stack(storage_config) as stack,
        visitor(stack) as (first, welcome),
        visitor(stack, token=welcome["token"]) as (second, _again),
    ):
        status, receipt = await upload(stack, PNG, token=welcome["token"], filename="رسید.png")
        assert status == 201
        frame = {"type": "message", "client_id": "u1", "text": "", "attachments": [receipt]}
        await first.send(frame)
        [acked] = (await first.expect("ack", client_id="u1"))["attachments"]
        status, body, _ = await fetch(stack, acked["link"])
        assert status == 200 and body == PNG
        [mirrored] = (await second.expect("message"))["attachments"]
        status, body, headers = await fetch(stack, mirrored["link"])
        assert status == 200 and body == PNG and headers["Content-Type"] == "image/png"
        await conversation_of(stack, welcome["visitor"])
        async with visitor(stack, token=welcome["token"]) as (_chat, back):
            [line] = back["messages"]
            status, body, _ = await fetch(stack, line["attachments"][0]["link"])
            assert status == 200 and body == PNG

        # Another visitor's upload is not theirs, even signed for them.
        async with visitor(stack) as (_other, stranger):
            pass
        later = int(time.time()) + 3600
        token = signer_of(stack).file_token(stranger["visitor"], receipt["url"], later)
        status, _, _ = await fetch(stack, "files/" + token)
        assert status == 404


def test_what_could_render_is_served_as_an_opaque_download() -> None:
    for kind in ("text/html", "image/svg+xml", "application/xhtml+xml", "text/javascript", ""):
        headers = download_headers("page.html", kind)
        assert headers["Content-Type"] == "application/octet-stream", kind
        assert headers["Content-Disposition"].startswith("attachment;")
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert download_headers("a.txt", "text/plain")["Content-Type"] == "text/plain; charset=utf-8"
    assert download_headers("a.png", "IMAGE/PNG; x=y")["Content-Type"] == "image/png"
    # A name cannot break out of the header or carry a path.
    tricky = download_headers('a";\r\nSet-Cookie: x=1/../b.pdf', "application/pdf")
    disposition = tricky["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    assert disposition.startswith('attachment; filename="a__')
    assert "/" not in disposition.split("filename*=UTF-8''")[1]


def test_download_tokens_bind_visitor_url_and_time() -> None:
    signer = Signer("key", "site")
    visitor_id = "v" + "a" * 22
    token = signer.file_token(visitor_id, "/api/v1/attachments/ab", 2_000)
    assert signer.file(token, now=1_999) == (visitor_id, "/api/v1/attachments/ab")
    assert signer.file(token, now=2_001) is None
    visitor_part, expires, url_part, mac = token.split(".")
    assert signer.file(f"{visitor_part}.9999999999.{url_part}.{mac}", now=0) is None
    assert signer.file(f"{visitor_part}.{expires}.{url_part}x.{mac}", now=0) is None
    assert signer.file(f"{visitor_part}.{expires}.!!.{mac}", now=0) is None
    assert signer.file(token + ".x", now=0) is None
