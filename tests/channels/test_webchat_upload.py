"""Files from chat visitors: sniffed type, size and type limits, a signed receipt that ties the
file to the visitor's message, and nothing stored for a refused one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from channels.webchat_files import check_upload, sniff
from channels.webchat_tokens import Signer
from storage.config import StorageConfig
from storage.models import Attachment
from tests.channels.test_webchat import ORIGIN, chat_stack, stored, visitor
from tests.fixtures.stack import Stack, eventually

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
ALLOWED = ("image/png", "application/pdf", "text/plain")


async def upload(
    stack: Stack,
    data: bytes,
    *,
    token: str | None,
    client_id: str = "u1",
    filename: str = "receipt.png",
    origin: str = ORIGIN,
    content_type: str = "image/png",
) -> tuple[int, Any]:
    headers = {"Origin": origin, "X-Filename": filename, "Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with stack.http.post(
        f"{stack.base}/channels/webchat/site/upload?client_id={client_id}",
        data=data,
        headers=headers,
    ) as response:
        return response.status, await response.json()


async def attachment_count(stack: Stack) -> int:
    async with stack.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Attachment)) or 0


async def test_an_uploaded_file_travels_with_the_next_message(
    storage_config: StorageConfig,
) -> None:
    async with chat_stack(storage_config) as stack:
        async with visitor(stack) as (chat, welcome):
            status, receipt = await upload(stack, PNG, token=welcome["token"], filename="ر.png")
            assert status == 201, receipt
            assert receipt["content_type"] == "image/png" and receipt["size"] == len(PNG)
            await chat.send(
                {"type": "message", "client_id": "u1", "text": "", "attachments": [receipt]}
            )
            await chat.expect("ack", client_id="u1")

            # A receipt is for that message of that visitor only.
            await chat.send(
                {"type": "message", "client_id": "u2", "text": "x", "attachments": [receipt]}
            )
            assert (await chat.expect("error"))["code"] == "bad_attachment"
            forged = {**receipt, "filename": "other.png"}
            await chat.send(
                {"type": "message", "client_id": "u1b", "text": "x", "attachments": [forged]}
            )
            assert (await chat.expect("error"))["code"] == "bad_attachment"

        async def one() -> list[Any] | None:
            found = await stored(stack, welcome["visitor"])
            return found or None

        [message] = await eventually(one)
        [file] = message.attachments["files"]
        assert (file["filename"], file["content_type"], file["url"]) == (
            "ر.png",
            "image/png",
            receipt["url"],
        )
        # The agents can download it: the file's owner is that message.
        sara = await stack.add_agent("sara@example.com", role="admin")
        async with sara.http.get(stack.base + receipt["url"]) as response:
            assert response.status == 200
            assert await response.read() == PNG


REFUSED = [
    (b"MZ\x90\x00" + b"\x00" * 60, "invoice.pdf", 415),  # a Windows program, renamed
    (b"\x7fELF" + b"\x00" * 60, "photo.png", 415),
    (b"#!/bin/sh\nrm -rf /\n", "notes.txt", 415),
    (b"hello", "run.exe", 415),
    (b"<html><script>alert(1)</script>", "page.txt", 415),
    (b"PK\x03\x04" + b"\x00" * 60, "archive.zip", 415),  # not an allowed type
    (b"", "empty.txt", 400),
    (PNG + b"\x00" * 2048, "big.png", 413),
]


async def test_refused_uploads_store_nothing(storage_config: StorageConfig) -> None:
    async with chat_stack(storage_config, max_upload_bytes=1024) as stack:
        async with visitor(stack) as (_chat, welcome):
            for data, filename, status in REFUSED:
                got, body = await upload(stack, data, token=welcome["token"], filename=filename)
                assert (got, bool(body["error"])) == (status, True), filename
        assert await attachment_count(stack) == 0


async def test_uploads_need_a_visitor_token_and_an_allowed_origin(
    storage_config: StorageConfig,
) -> None:
    async with chat_stack(storage_config) as stack:
        async with visitor(stack) as (_chat, welcome):
            token = welcome["token"]
        assert (await upload(stack, PNG, token=None))[0] == 401
        assert (await upload(stack, PNG, token=token + "x"))[0] == 401
        assert (await upload(stack, PNG, token=token, origin="http://evil.test"))[0] == 403
        assert (await upload(stack, PNG, token=token, client_id="../x"))[0] == 400
        assert await attachment_count(stack) == 0
        # The browser's preflight is answered for the allowed origin only.
        async with stack.http.options(
            f"{stack.base}/channels/webchat/site/upload", headers={"Origin": ORIGIN}
        ) as response:
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        async with stack.http.options(
            f"{stack.base}/channels/webchat/site/upload", headers={"Origin": "http://evil.test"}
        ) as response:
            assert "Access-Control-Allow-Origin" not in response.headers


def test_the_type_is_sniffed_from_the_bytes() -> None:
    assert sniff(PNG) == "image/png"
    assert sniff(b"%PDF-1.7") == "application/pdf"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff("سلام".encode()) == "text/plain"
    assert sniff(b"\xff\xfe\x00") == "application/octet-stream"
    assert check_upload("متن".encode(), "a.txt", ALLOWED) == "text/plain"


def test_tokens_are_bound_to_their_channel_and_key() -> None:
    signer = Signer("key", "site")
    visitor_id, token = signer.issue()
    assert signer.visitor(token) == visitor_id
    assert Signer("key", "other").visitor(token) is None
    assert Signer("another key", "site").visitor(token) is None
    assert signer.visitor(token.replace(visitor_id, "v" + "A" * 22)) is None
    assert signer.visitor(None) is None and signer.visitor(12) is None
