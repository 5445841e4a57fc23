"""The Messenger and Instagram Direct channels against a fake Graph API: text, quick replies,
postbacks, attachments from Meta's CDN, Instagram story replies and mentions, receipts as
delivery reports, profile names, and sending through `/me/messages`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from channels.base import Attachment, DeliveryError, Outbound, Sender, TemplateMessage
from channels.messenger_events import parse_entry
from tests.fixtures.graph_api import (
    IG_ACCOUNT_ID,
    PAGE_ID,
    FakeGraph,
    fake_graph,
    load_payload,
    ms_event,
    page,
    running,
)

PSID = "6000000000000001"
IGSID = "7000000000000001"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with fake_graph() as server:
        yield server


def test_messenger_events() -> None:
    [entry] = load_payload("messenger_events.json")["entry"]
    text, quick, postback, image, *receipts = parse_entry(
        entry, account_id=PAGE_ID, platform="messenger"
    )
    assert (text.external_id, text.text) == ("m_TEXT1", "سلام، موجودی این کفش را دارید؟")
    assert text.sender == Sender(external_id=PSID) and text.thread_id == PSID
    assert text.received_at.timestamp() == pytest.approx(1763900000.1)  # milliseconds
    assert quick.text == "هزینه ارسال چقدر است؟"  # the whole choice, not the cut title
    assert quick.metadata["kind"] == "quick_reply"
    assert (postback.text, postback.metadata["payload"]) == ("شروع", "GET_STARTED")
    assert postback.external_id == "m_PB1"
    assert image.text == "[image]" and image.media[0].url == "CDN/cdn/pic1"
    # The echo of our own reply is no customer message.
    delivered, read = receipts
    assert delivered.metadata["report"] == "delivered"
    assert delivered.metadata["original_message_id"] == "m_SENT1"
    assert read.metadata["kind"] == "watermark"  # the channel resolves it to our replies


def test_instagram_story_replies_and_mentions() -> None:
    [entry] = load_payload("instagram_events.json")["entry"]
    reply, mention, read = parse_entry(entry, account_id=IG_ACCOUNT_ID, platform="instagram")
    assert reply.text == "[replied to your story]\nاین مدل رنگ مشکی هم دارد؟"
    assert reply.metadata["kind"] == "story_reply"
    assert reply.metadata["story_id"] == "18000000000000001"
    assert mention.metadata["kind"] == "story_mention"
    assert mention.text == "[mentioned you in their story]"
    assert mention.media[0].url == "CDN/cdn/story2"
    assert read.metadata["original_message_id"] == "m_SENT9"
    assert read.metadata["report"] == "read"


def test_another_pages_entry_and_bad_events() -> None:
    assert parse_entry({"id": "1", "messaging": []}, account_id=PAGE_ID, platform="m") == []
    events: list[Any] = [
        "junk",
        {"sender": {}, "message": {"mid": "m_1", "text": "x"}},
        ms_event(PSID, message={"text": "no mid"}),
        ms_event(PSID, message={"mid": "m_EMPTY"}),
        ms_event(PSID, delivery={}),
        ms_event(PSID, message={"mid": "m_OK", "text": "ok"}),
    ]
    [entry] = page(*events)["entry"]
    drafts = parse_entry(entry, account_id=PAGE_ID, platform="messenger")
    assert [d.external_id for d in drafts] == ["m_OK"]


async def test_attachments_from_the_cdn_are_stored_without_the_token(fake: FakeGraph) -> None:
    fake.media["pic1"] = ("image/jpeg", b"jpeg")
    fake.profiles[PSID] = {"name": "Sara Karimi"}
    async with running("messenger", fake) as (channel, recorder, blobs):
        [entry] = load_payload("messenger_events.json", fake)["entry"]
        drafts = channel.parse_entry(entry)
        for draft in drafts:
            await channel.accept(draft)
        image = next(i for i in recorder.emitted if i.external_id == "m_IMG1")
        [attachment] = image.attachments
        assert blobs.files[attachment.url].data == b"jpeg"
        [cdn] = fake.sent("cdn")
        assert cdn.body["authorization"] == ""
        # The profile name is looked up once and remembered.
        assert {
            i.sender.name for i in recorder.emitted if i.metadata.get("kind") != "delivery_report"
        } == {"Sara Karimi"}
        assert len(fake.sent("profile")) == 1
        assert fake.sent("profile")[0].body == {"fields": "name"}


async def test_a_failed_profile_lookup_is_harmless(fake: FakeGraph) -> None:
    fake.fail("profile", 400, 100, "no such user")
    async with running("instagram", fake) as (channel, recorder, _):
        [entry] = page(
            ms_event(IGSID, IG_ACCOUNT_ID, message={"mid": "ig1", "text": "سلام"}),
            account=IG_ACCOUNT_ID,
            kind="instagram",
        )["entry"]
        await channel.accept(channel.parse_entry(entry)[0])
        [inbound] = recorder.emitted
        assert inbound.sender.name == "" and inbound.text == "سلام"


def reply(text: str = "", recipient: str = PSID, **extra: object) -> Outbound:
    return Outbound(
        message_id=7,
        channel="fb",
        recipient=Sender(external_id=recipient),
        text=text,
        thread_id=recipient,
        **extra,  # type: ignore[arg-type]
    )


async def test_text_and_quick_replies_through_the_send_api(fake: FakeGraph) -> None:
    async with running("messenger", fake) as (channel, _, _):
        delivery = await channel.send(
            reply("کدام؟", quick_replies=("هزینه ارسال چقدر است؟", "مرجوعی"))
        )
        [call] = fake.sent("me/messages")
        assert call.path == "me/messages"
        assert call.body["recipient"] == {"id": PSID}
        assert call.body["messaging_type"] == "RESPONSE"
        message = call.body["message"]
        assert message["text"] == "کدام؟"
        assert message["quick_replies"][0] == {
            "content_type": "text",
            "title": "هزینه ارسال چقدر اس…",
            "payload": "qr:هزینه ارسال چقدر است؟",
        }
        assert delivery.external_id.startswith("m_")


async def test_long_text_is_split_at_2000_and_1000_on_instagram(fake: FakeGraph) -> None:
    text = ("کلمه " * 500).strip()  # 2499 characters
    async with running("messenger", fake) as (channel, _, _):
        await channel.send(reply(text))
    async with running("instagram", fake) as (channel, _, _):
        await channel.send(reply(text, recipient=IGSID))
    sizes = [len(c.body["message"]["text"]) for c in fake.sent("me/messages")]
    assert len(sizes) == 2 + 3 and max(sizes[:2]) <= 2000 and max(sizes[2:]) <= 1000


async def test_files_are_uploaded_with_the_message(fake: FakeGraph) -> None:
    async with running("messenger", fake) as (channel, _, blobs):
        url = await blobs.put(b"\x89PNG", "p.png", "image/png", owner="x")
        await channel.send(reply("", attachments=(Attachment("p.png", "image/png", 4, url),)))
        [call] = fake.sent("me/messages")
        assert json.loads(call.body["recipient"]) == {"id": PSID}
        assert json.loads(call.body["message"])["attachment"]["type"] == "image"
        assert call.body["filedata"] == ("p.png", "image/png", b"\x89PNG")


async def test_read_receipts_by_watermark_report_on_the_replies_sent_before(
    fake: FakeGraph,
) -> None:
    async with running("messenger", fake) as (channel, _, _):
        first = await channel.send(reply("یک"))
        second = await channel.send(reply("دو"))
        [entry] = page(ms_event(PSID, read={"watermark": 99_999_999_999_999}))["entry"]
        reports = channel.parse_entry(entry)
        assert {r.metadata["original_message_id"] for r in reports} == {
            first.external_id,
            second.external_id,
        }
        assert {r.metadata["report"] for r in reports} == {"read"}
        assert channel.parse_entry(entry) == []  # read once


async def test_errors_outside_the_window_and_templates(fake: FakeGraph) -> None:
    async with running("messenger", fake) as (channel, _, _):
        fake.fail("me/messages", 400, 10, "This message is sent outside of allowed window.")
        with pytest.raises(DeliveryError) as caught:
            await channel.send(reply("سلام"))
        assert caught.value.permanent and "outside of allowed window" in caught.value.reason
        assert "allowed window" in channel.status()["last_error"]
        with pytest.raises(DeliveryError) as caught:
            await channel.send(reply("x", template=TemplateMessage(name="t", language="fa")))
        assert caught.value.permanent
        fake.fail("me/messages", 500, 2, "temporarily")
        assert (await channel.send(reply("سلام"))).external_id  # retried


async def test_instagram_status(fake: FakeGraph) -> None:
    async with running("instagram", fake) as (channel, _, _):
        status = channel.status()
        assert status["platform"] == "instagram"
        assert status["webhook_url"] == "/channels/meta/ig/webhook"
        assert status["running"] is True
        assert channel.type == "meta"
