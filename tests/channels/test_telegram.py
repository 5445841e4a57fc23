"""The Telegram channel against a fake Bot API: polling with offsets that survive a restart,
the webhook and its secret, files, tapped buttons, and sending within Telegram's limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from channels.base import Attachment, DeliveryError, Inbound, Outbound, Sender
from channels.telegram import SECRET_HEADER, TelegramChannel, TelegramConfig
from storage.blobs import SqlBlobStore
from storage.config import StorageConfig
from storage.cursors import SqlCursorStore
from storage.db import SessionFactory
from tests.fixtures.stack import eventually
from tests.fixtures.telegram_api import FakeTelegram, fake_telegram, message, user

SECRET = "s3cret_webhook-token"


@pytest.fixture
def storage_config(tmp_path: Path) -> StorageConfig:
    """SQLite only here: these tests are about the channel; the pipeline tests run both."""
    return StorageConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'db'}", sqlite_synchronous="normal")


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with fake_telegram() as server:
        yield server


@dataclass
class Recorder:
    """The queue as the channel sees it: records what was emitted, or fails on demand."""

    emitted: list[Inbound] = field(default_factory=list)
    failing: bool = False

    async def __call__(self, inbound: Inbound) -> None:
        if self.failing:
            raise ConnectionError("queue unavailable")
        self.emitted.append(inbound)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Inbound]:  # noqa: ASYNC109
        async def probe() -> list[Inbound] | None:
            return self.emitted if len(self.emitted) >= count else None

        return await eventually(probe, timeout=timeout)


def config(fake: FakeTelegram, **extra: Any) -> TelegramConfig:
    data: dict[str, Any] = {
        "name": "bot",
        "token": fake.token,
        "base_url": fake.base_url,
        "poll_timeout_seconds": 1,
        "per_chat_interval_seconds": 0,
        "messages_per_second": 1000,
        **extra,
    }
    return TelegramConfig.model_validate(data)


@asynccontextmanager
async def running(
    fake: FakeTelegram, sessions: SessionFactory, recorder: Recorder | None = None, **extra: Any
) -> AsyncIterator[tuple[TelegramChannel, Recorder]]:
    channel = TelegramChannel(config(fake, **extra))
    channel.use_blobs(SqlBlobStore(sessions))
    recorder = recorder or Recorder()
    await channel.start(recorder, SqlCursorStore(sessions))
    try:
        yield channel, recorder
    finally:
        await channel.stop()


@asynccontextmanager
async def serving(channel: TelegramChannel) -> AsyncIterator[str]:
    """The channel's routes on loopback, mounted where the inbox mounts them."""
    app = web.Application()
    for route in channel.routes():
        app.router.add_route(route.method, f"/channels/telegram/bot{route.path}", route.handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/channels/telegram/bot/webhook"
    finally:
        await runner.cleanup()


# polling -----------------------------------------------------------------------------------


async def test_polling_queues_messages_and_resumes_after_a_restart(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    fake.push({"message": message(777, 1, text="سلام")})
    fake.push({"message": message(777, 2, text="سفارش ۱۲۳ کجاست؟")})
    async with running(fake, sessions) as (channel, recorder):
        emitted = await recorder.wait_for(2)
        assert [i.external_id for i in emitted] == ["777:1", "777:2"]
        assert [i.text for i in emitted] == ["سلام", "سفارش ۱۲۳ کجاست؟"]
        assert emitted[0].channel == "bot" and emitted[0].thread_id == "777"
        status = channel.status()
        assert status["mode"] == "polling"
        assert status["connected"] is True
        assert status["bot_username"] == "pishkhan_test_bot"
        assert status["last_update_at"] is not None
        assert any(call.method == "deleteWebhook" for call in fake.calls)

    # While it is down two more arrive. Telegram still holds the first two if no getUpdates
    # confirmed them: the remembered offset does.
    fake.push({"message": message(777, 3, text="سه")})
    fake.push({"message": message(777, 4, text="چهار")})
    async with running(fake, sessions) as (_, recorder):
        await recorder.wait_for(2)
        await eventually(lambda: _async(fake.confirmed_offset == 1004))  # the next poll
        assert [i.external_id for i in recorder.emitted] == ["777:3", "777:4"]


async def test_an_update_is_confirmed_only_after_it_was_queued(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    recorder = Recorder(failing=True)
    fake.push({"message": message(777, 1, text="مهم")})
    async with running(fake, sessions, recorder) as (channel, _):
        await eventually(lambda: _async(channel.status()["last_error"]))
        assert recorder.emitted == []
        assert "queue unavailable" in channel.status()["last_error"]
        recorder.failing = False
        [inbound] = await recorder.wait_for(1, timeout=8)
        assert inbound.text == "مهم"


async def test_a_malformed_update_is_skipped_and_polling_goes_on(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    fake.push({"message": {"message_id": "x", "chat": None}})
    fake.push({"message": message(777, 2, text="بعدی")})
    async with running(fake, sessions) as (_, recorder):
        [inbound] = await recorder.wait_for(1)
        assert inbound.text == "بعدی"


async def _async(value: Any) -> Any:
    return value


# files -------------------------------------------------------------------------------------


async def test_files_are_stored_and_oversized_or_missing_ones_leave_a_note(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    fake.add_file("doc-1", b"%PDF-1.4 invoice", "documents/file_1.pdf")
    fake.add_file("big", b"x" * 3000, "documents/big.bin")
    document = {
        "file_id": "doc-1",
        "file_unique_id": "u1",
        "file_name": "فاکتور.pdf",
        "mime_type": "application/pdf",
        "file_size": 16,
    }
    big = {"file_id": "big", "file_unique_id": "u2", "file_name": "big.bin"}
    gone = {"file_id": "gone", "file_unique_id": "u3", "file_name": "gone.zip"}
    fake.push({"message": message(777, 1, document=document, caption="فاکتور")})
    fake.push({"message": message(777, 2, document=big)})
    fake.push({"message": message(777, 3, document=gone)})
    async with running(fake, sessions, max_attachment_bytes=1024) as (_, recorder):
        stored, oversized, missing = await recorder.wait_for(3)
    [attachment] = stored.attachments
    assert (attachment.filename, attachment.content_type, attachment.size) == (
        "فاکتور.pdf",
        "application/pdf",
        16,
    )
    blob = await SqlBlobStore(sessions).get(attachment.url)
    assert blob is not None and blob.data == b"%PDF-1.4 invoice"
    assert stored.text == "فاکتور"

    assert oversized.attachments[0].url == ""
    assert "over the 0.0 MB limit" in oversized.metadata["attachment_notes"]
    assert "big.bin: not stored" in oversized.text
    assert missing.attachments[0].url == ""
    assert "could not be downloaded" in missing.text


# webhook -----------------------------------------------------------------------------------


async def test_webhook_is_registered_with_its_secret_and_queues_before_answering(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    async with running(
        fake, sessions, mode="webhook", webhook_secret=SECRET, webhook_url="https://x.test/hook"
    ) as (channel, recorder):
        await eventually(lambda: _async(fake.webhook))
        assert fake.webhook is not None
        assert fake.webhook["url"] == "https://x.test/hook"
        assert fake.webhook["secret_token"] == SECRET
        assert json.loads(fake.webhook["allowed_updates"]) == [
            "message",
            "edited_message",
            "callback_query",
        ]
        assert not any(call.method == "getUpdates" for call in fake.calls)
        async with serving(channel) as url, aiohttp.ClientSession() as http:
            update = {"update_id": 10, "message": message(777, 1, text="از وب‌هوک")}
            async with http.post(url, json=update, headers={SECRET_HEADER: SECRET}) as response:
                assert response.status == 200
                assert len(recorder.emitted) == 1  # queued before the answer
            # Telegram delivers it again (no answer reached it): stored once.
            async with http.post(url, json=update, headers={SECRET_HEADER: SECRET}) as response:
                assert response.status == 200
        assert [i.text for i in recorder.emitted] == ["از وب‌هوک"]
        assert channel.status()["webhook_url"] == "https://x.test/hook"


async def test_the_webhook_url_defaults_to_the_public_url(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    channel = TelegramChannel(config(fake, mode="webhook", webhook_secret=SECRET))
    channel.use_public_url("https://support.example.com/")
    assert channel.webhook_url == "https://support.example.com/channels/telegram/bot/webhook"


async def test_forged_or_missing_secrets_are_refused_and_nothing_is_queued(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    async with (
        running(fake, sessions, mode="webhook", webhook_secret=SECRET) as (channel, recorder),
        serving(channel) as url,
        aiohttp.ClientSession() as http,
    ):
        update = {"update_id": 11, "message": message(777, 1, text="جعلی")}
        for headers in (
            {},
            {SECRET_HEADER: "wrong"},
            {SECRET_HEADER: SECRET + "x"},
            {SECRET_HEADER: ""},
        ):
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 401
        assert recorder.emitted == []


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"update_id": "x"}', "application/json", 400),
        (b'{"update_id": 1, "message": {"message_id": 1}}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (
            b'{"update_id": 1, "message": ' + b'"' + b"x" * 10_000 + b'"}',
            "application/json",
            413,
        ),
        (b"[" * 2000 + b"]" * 2000, "application/json", 400),
    ],
)
async def test_malformed_and_oversized_updates_are_refused_cleanly(
    fake: FakeTelegram, sessions: SessionFactory, body: bytes, content_type: str, status: int
) -> None:
    async with (
        running(fake, sessions, mode="webhook", webhook_secret=SECRET, max_body_bytes=8192) as (
            channel,
            recorder,
        ),
        serving(channel) as url,
        aiohttp.ClientSession() as http,
    ):
        headers = {SECRET_HEADER: SECRET, "Content-Type": content_type}
        async with http.post(url, data=body, headers=headers) as response:
            assert response.status == status
            assert (await response.json())["ok"] is False
        assert recorder.emitted == []


async def test_when_the_queue_fails_the_webhook_asks_telegram_to_come_back(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    recorder = Recorder(failing=True)
    async with (
        running(fake, sessions, recorder, mode="webhook", webhook_secret=SECRET) as (channel, _),
        serving(channel) as url,
        aiohttp.ClientSession() as http,
    ):
        update = {"update_id": 12, "message": message(777, 1, text="دوباره بفرست")}
        async with http.post(url, json=update, headers={SECRET_HEADER: SECRET}) as response:
            assert response.status == 503
        recorder.failing = False
        async with http.post(url, json=update, headers={SECRET_HEADER: SECRET}) as response:
            assert response.status == 200
        assert [i.text for i in recorder.emitted] == ["دوباره بفرست"]


async def test_ignored_updates_are_acknowledged(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    async with (
        running(fake, sessions, mode="webhook", webhook_secret=SECRET) as (channel, recorder),
        serving(channel) as url,
        aiohttp.ClientSession() as http,
    ):
        group = message(-100, 1, chat_type="group", text="سلام همه", sender=user(5))
        async with http.post(
            url, json={"update_id": 13, "message": group}, headers={SECRET_HEADER: SECRET}
        ) as response:
            assert response.status == 200  # else Telegram would send it forever
        assert recorder.emitted == []


# tapped buttons ----------------------------------------------------------------------------


async def test_a_tapped_button_is_queued_as_the_answer_and_the_tap_is_answered(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    markup = {"inline_keyboard": [[{"text": "بله، پیگیری کنید", "callback_data": "qr:0"}]]}
    bot_message = message(777, 50, text="پیگیری کنم؟", reply_markup=markup)
    bot_message["from"] = {"id": 123456, "is_bot": True, "first_name": "bot"}
    fake.push(
        {
            "callback_query": {
                "id": "cb-9",
                "from": user(),
                "chat_instance": "c",
                "data": "qr:0",
                "message": bot_message,
            }
        }
    )
    async with running(fake, sessions) as (_, recorder):
        [inbound] = await recorder.wait_for(1)
        assert inbound.text == "بله، پیگیری کنید"
        assert inbound.metadata["kind"] == "quick_reply"
        await eventually(lambda: _async(fake.sent("answerCallbackQuery")))
        assert fake.sent("answerCallbackQuery")[0].params["callback_query_id"] == "cb-9"


# sending -----------------------------------------------------------------------------------


def reply(text: str = "سلام، پیگیری شد.", **extra: Any) -> Outbound:
    data: dict[str, Any] = {
        "message_id": 1,
        "channel": "bot",
        "recipient": Sender(external_id="777", name="مریم"),
        "text": text,
        "thread_id": "777",
        **extra,
    }
    return Outbound(**data)


async def test_a_reply_goes_to_the_chat_as_plain_text_with_buttons(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    async with running(fake, sessions) as (channel, _):
        text = "قیمت <b>۱۲۰</b> & *تخفیف* _ویژه_ [لینک](x)"
        delivery = await channel.send(reply(text, quick_replies=("بله", "خیر، ممنون")))
    [call] = fake.sent()
    assert call.method == "sendMessage"
    assert call.chat_id == "777"
    assert call.params["text"] == text
    assert "parse_mode" not in call.params
    keyboard = call.json("reply_markup")["inline_keyboard"]
    assert [[button["text"] for button in row] for row in keyboard] == [["بله"], ["خیر، ممنون"]]
    assert [row[0]["callback_data"] for row in keyboard] == ["qr:0", "qr:1"]
    assert delivery.external_id.startswith("777:")


async def test_a_long_reply_is_split_at_telegrams_limit(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    paragraph = "این یک پاراگراف طولانی دربارهٔ پیگیری سفارش است. " * 40
    text = "\n\n".join([paragraph] * 5)
    async with running(fake, sessions) as (channel, _):
        await channel.send(reply(text, quick_replies=("بله",)))
    calls = fake.sent()
    assert len(calls) > 1
    assert all(len(call.params["text"].encode("utf-16-le")) // 2 <= 4096 for call in calls)
    joined = "\n\n".join(call.params["text"] for call in calls)
    assert joined.split() == text.split()
    assert "reply_markup" in calls[-1].params
    assert all("reply_markup" not in call.params for call in calls[:-1])


async def test_files_go_as_photos_or_documents(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    blobs = SqlBlobStore(sessions)
    photo = await blobs.put(b"\x89PNG fake", "receipt.png", "image/png", owner="bot/x")
    pdf = await blobs.put(b"%PDF fake", "فاکتور.pdf", "application/pdf", owner="bot/x")
    attachments = (
        Attachment("receipt.png", "image/png", 9, photo),
        Attachment("فاکتور.pdf", "application/pdf", 9, pdf),
    )
    async with running(fake, sessions) as (channel, _):
        await channel.send(reply("فاکتور شما", attachments=attachments))
    text, sent_photo, document = fake.sent()
    assert text.method == "sendMessage"
    assert sent_photo.method == "sendPhoto" and sent_photo.params["photo"] == b"\x89PNG fake"
    assert document.method == "sendDocument" and document.params["document"] == b"%PDF fake"
    assert document.params["document.filename"] == "فاکتور.pdf"


async def test_flood_control_is_waited_out(fake: FakeTelegram, sessions: SessionFactory) -> None:
    fake.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    async with running(fake, sessions) as (channel, _):
        started = time.monotonic()
        await channel.send(reply())
        elapsed = time.monotonic() - started
    assert len(fake.sent()) == 2  # refused once, then sent
    assert elapsed >= 0.95


async def test_a_flood_wait_longer_than_allowed_fails_the_attempt_for_later(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    fake.fail("sendMessage", 429, "Too Many Requests: retry after 300", retry_after=300)
    async with running(fake, sessions) as (channel, _):
        with pytest.raises(DeliveryError) as raised:
            await channel.send(reply())
    assert raised.value.permanent is False
    assert "300" in raised.value.reason


async def test_a_customer_who_blocked_the_bot_fails_the_reply_for_good(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    fake.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    async with running(fake, sessions) as (channel, _):
        with pytest.raises(DeliveryError) as raised:
            await channel.send(reply())
        assert "bot was blocked by the user" in channel.status()["last_error"]
    assert raised.value.permanent is True
    assert "bot was blocked by the user" in raised.value.reason


async def test_server_trouble_is_retried_later(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    fake.fail("sendMessage", 502, "Bad Gateway")
    async with running(fake, sessions) as (channel, _):
        with pytest.raises(DeliveryError) as raised:
            await channel.send(reply())
    assert raised.value.permanent is False


async def test_a_retry_after_a_half_sent_reply_sends_only_the_rest(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    text = " ".join(f"واژه{n}" for n in range(1200))  # three messages
    async with running(fake, sessions) as (channel, _):
        fake.failures["sendMessage"] = []
        original = fake._sendMessage
        calls = 0

        async def second_fails(params: dict[str, Any]) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:
                return web.json_response(
                    {"ok": False, "error_code": 502, "description": "Bad Gateway"}, status=502
                )
            return await original(params)

        fake._sendMessage = second_fails  # type: ignore[method-assign]
        with pytest.raises(DeliveryError):
            await channel.send(reply(text))
        await channel.send(reply(text))
    texts = [call.params["text"] for call in fake.sent()]
    # Three parts: the first went once; the second failed, and the retry began with it.
    assert len(texts) == 4
    assert texts[1] == texts[2] != texts[0]
    assert " ".join([texts[0], *texts[2:]]).split() == text.split()


async def test_replies_to_one_chat_are_paced(fake: FakeTelegram, sessions: SessionFactory) -> None:
    async with running(fake, sessions, per_chat_interval_seconds=0.3) as (channel, _):
        await asyncio.gather(
            channel.send(reply("یک")),
            channel.send(reply("دو")),
            channel.send(reply("سه", thread_id="888")),
        )
    by_chat: dict[str, list[float]] = {}
    for call in fake.sent():
        by_chat.setdefault(call.chat_id, []).append(call.at)
    first, second = sorted(by_chat["777"])
    assert second - first >= 0.28
    assert by_chat["888"][0] < second  # another chat is not held up behind it


async def test_a_reply_without_a_chat_fails_for_good(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    async with running(fake, sessions) as (channel, _):
        with pytest.raises(DeliveryError) as raised:
            await channel.send(reply(thread_id=None, recipient=Sender(external_id="")))
    assert raised.value.permanent is True


def test_webhook_mode_needs_a_proper_secret() -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        TelegramConfig(name="bot", token="t", mode="webhook")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="webhook_secret"):
        TelegramConfig(name="bot", token="t", mode="webhook", webhook_secret="has space")  # type: ignore[arg-type]


def test_bale_and_self_hosted_servers_get_their_file_url() -> None:
    bale = TelegramConfig(name="bale", token="t", base_url="https://tapi.bale.ai/bot")  # type: ignore[arg-type]
    assert bale.file_url() == "https://tapi.bale.ai/file/bot"
    default = TelegramConfig(name="tg", token="t")  # type: ignore[arg-type]
    assert default.file_url() == "https://api.telegram.org/file/bot"


def test_config_yaml_names_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    from inbox.config import ConfigError, parse_config

    monkeypatch.setenv("PISHKHAN_TG", "1:abc")
    ok = parse_config(
        {"channels": [{"type": "telegram", "name": "tg", "token": "${PISHKHAN_TG}"}]}
    ).channels[0]
    assert isinstance(ok, TelegramConfig) and ok.mode == "polling"
    with pytest.raises(ConfigError, match=r"channels\[0\]\.token: a secret"):
        parse_config({"channels": [{"type": "telegram", "name": "tg", "token": "1:abc"}]})
    with pytest.raises(ConfigError, match="webhook_secret: required"):
        parse_config(
            {
                "channels": [
                    {"type": "telegram", "name": "tg", "token": "${PISHKHAN_TG}", "mode": "webhook"}
                ]
            }
        )


async def test_an_unreachable_api_shows_in_status_without_the_token(
    sessions: SessionFactory,
) -> None:
    token = "999:secret-token-value"
    channel = TelegramChannel(
        TelegramConfig.model_validate(
            {"name": "bot", "token": token, "base_url": "http://127.0.0.1:9/bot"}
        )
    )
    await channel.start(Recorder(), SqlCursorStore(sessions))
    try:
        await eventually(lambda: _async(channel.status()["last_error"]))
        status = channel.status()
        assert status["connected"] is False
        assert status["running"] is True
        assert token not in json.dumps(status)
        with pytest.raises(DeliveryError) as raised:
            await channel.send(reply())
        assert raised.value.permanent is False
        assert token not in raised.value.reason
    finally:
        await channel.stop()


async def test_a_refused_token_shows_in_status_without_the_token(
    fake: FakeTelegram, sessions: SessionFactory
) -> None:
    async with running(fake, sessions, token="1:not-the-right-token") as (channel, _):
        await eventually(lambda: _async(channel.status()["last_error"]))
        status = channel.status()
        assert "InvalidToken" in status["last_error"]
        assert "not-the-right-token" not in json.dumps(status)
        assert status["connected"] is False
