"""The WhatsApp Cloud channel against a fake Graph API: every message kind Meta documents,
media fetched with the token (or kept as a placeholder and fetched again), statuses as
delivery reports, and sending — text, files, buttons, lists, templates — with Meta's errors
classified."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from channels.base import Attachment, DeliveryError, Outbound, Sender, TemplateMessage
from channels.meta_graph import classify
from channels.whatsapp_events import parse_entry
from tests.fixtures.graph_api import (
    PHONE_NUMBER_ID,
    FakeGraph,
    fake_graph,
    load_payload,
    running,
    wa_message,
    whatsapp,
)
from tests.fixtures.stack import eventually

CUSTOMER = "989121234567"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with fake_graph() as server:
        yield server


def parsed(name: str) -> list:  # type: ignore[type-arg]
    [entry] = load_payload(name)["entry"]
    return parse_entry(entry, phone_number_id=PHONE_NUMBER_ID)


# parsing -----------------------------------------------------------------------------------


def test_a_text_message_with_the_profile_name_and_phone() -> None:
    [draft] = parsed("whatsapp_text.json")
    assert draft.external_id == "wamid.HBgMOTg5MTIxMjM0NTY3FQIAEhgUM0FBQ0M0"
    assert draft.text == "سلام، سفارش ۱۲۳ من کی می‌رسد؟"
    assert draft.sender == Sender(external_id=CUSTOMER, name="مریم احمدی", phone="+989121234567")
    assert draft.thread_id == CUSTOMER
    assert draft.received_at.timestamp() == 1763900000  # seconds, as a string


def test_media_messages_name_their_files() -> None:
    image, document, voice, video, sticker = parsed("whatsapp_media.json")
    assert image.text == "عکس فاکتور"
    assert image.media[0].media_id == "1001" and image.media[0].content_type == "image/jpeg"
    assert document.media[0].filename == "contract.pdf"
    assert voice.media[0].label == "voice message"
    assert voice.media[0].content_type == "audio/ogg"  # "; codecs=opus" dropped
    assert voice.text == "[voice message]"
    assert video.media[0].filename.endswith(".mp4")
    assert sticker.media[0].content_type == "image/webp"


def test_locations_contacts_choices_reactions_and_unsupported_kinds() -> None:
    location, contacts, button, listed, reaction, unsupported = parsed("whatsapp_misc.json")
    assert location.text.startswith("[location] دفتر مرکزی — تهران، خیابان ولیعصر")
    assert "openstreetmap.org/?mlat=35.689200&mlon=51.389000" in location.text
    assert location.metadata["location"] == "35.689200,51.389000"
    assert "علی رضایی · +98 912 765 4321 · ali@example.com" in contacts.text
    # The tapped button reads as the whole choice the bot offered (titles are cut at 20).
    assert button.text == "هزینه ارسال چقدر است؟"
    assert button.metadata["kind"] == "quick_reply"
    assert button.metadata["choice_title"] == "هزینه ارسال چقدر…"
    assert button.metadata["reply_to"] == "wamid.SENT1"
    assert listed.text == "How do I return an item?"
    assert reaction.metadata["reaction_to"] == "wamid.SENT1"
    assert reaction.metadata["reaction"] == "👍"
    assert reaction.text == "[reacted 👍 to a message]"
    assert unsupported.text == "[unsupported message: not shown here: Message type unknown]"


def test_statuses_become_delivery_reports_on_our_reply() -> None:
    sent, delivered, read, failed = parsed("whatsapp_statuses.json")
    assert [r.metadata["report"] for r in (sent, delivered, read, failed)] == [
        "sent",
        "delivered",
        "read",
        "failed",
    ]
    assert delivered.metadata["kind"] == "delivery_report"
    assert delivered.metadata["original_message_id"] == "wamid.SENT1"
    assert delivered.external_id == "status:wamid.SENT1:delivered"
    assert failed.metadata["status"] == "131047"
    assert "more than 24 hours" in failed.metadata["diagnostic"]


def test_one_bad_message_in_an_entry_is_skipped_alone() -> None:
    [entry] = whatsapp(
        {"from": CUSTOMER, "id": "wamid.BAD", "type": "image", "image": {}},
        wa_message(CUSTOMER, "wamid.OK", "text", {"body": "ok"}),
    )["entry"]
    assert [d.external_id for d in parse_entry(entry, phone_number_id=PHONE_NUMBER_ID)] == [
        "wamid.OK"
    ]


# media -------------------------------------------------------------------------------------


async def test_media_is_fetched_with_the_token_and_stored(fake: FakeGraph) -> None:
    fake.media["1001"] = ("image/jpeg", b"\xff\xd8jpeg-bytes")
    async with running("whatsapp", fake) as (channel, recorder, blobs):
        [entry] = whatsapp(
            wa_message(CUSTOMER, "wamid.IMG", "image", {"id": "1001", "mime_type": "image/jpeg"})
        )["entry"]
        [draft] = channel.parse_entry(entry)
        assert await channel.accept(draft) == 1
        [inbound] = recorder.emitted
        [attachment] = inbound.attachments
        assert blobs.files[attachment.url].data == b"\xff\xd8jpeg-bytes"
        assert blobs.owners[attachment.url] == "wa/wamid.IMG"
        assert inbound.text == "[image]"
        assert [c.endpoint for c in fake.calls] == ["media_lookup", "download"]


async def test_a_failed_fetch_keeps_the_message_and_fetches_again(fake: FakeGraph) -> None:
    fake.media["1002"] = ("application/pdf", b"%PDF-1.7")
    fake.fail("download", 500, 1, times=2)
    async with running("whatsapp", fake) as (channel, recorder, blobs):
        [entry] = whatsapp(
            wa_message(
                CUSTOMER,
                "wamid.DOC",
                "document",
                {"id": "1002", "filename": "فاکتور.pdf", "mime_type": "application/pdf"},
            )
        )["entry"]
        [draft] = channel.parse_entry(entry)
        await channel.accept(draft)
        [first] = recorder.emitted
        assert first.external_id == "wamid.DOC"
        assert "[document فاکتور.pdf: could not be fetched yet; trying again]" in first.text
        assert first.attachments == (Attachment("فاکتور.pdf", "application/pdf"),)
        assert first.metadata["pending_media"] == "1002"
        assert "media fetch" in channel.status()["last_error"]

        async def follow_up() -> bool:
            return len(recorder.emitted) == 2

        await eventually(follow_up)
        second = recorder.emitted[1]
        assert second.external_id == "wamid.DOC:media:2"
        assert second.metadata["media_for"] == "wamid.DOC"
        assert blobs.files[second.attachments[0].url].data == b"%PDF-1.7"


async def test_a_file_over_the_limit_is_listed_not_stored(fake: FakeGraph) -> None:
    fake.media["1003"] = ("video/mp4", b"x" * 5000)
    async with running("whatsapp", fake, max_attachment_bytes=1000) as (channel, recorder, blobs):
        [entry] = whatsapp(wa_message(CUSTOMER, "wamid.V", "video", {"id": "1003"}))["entry"]
        await channel.accept(channel.parse_entry(entry)[0])
        [inbound] = recorder.emitted
        assert "over the limit" in inbound.text
        assert blobs.files == {}
        assert "pending_media" not in inbound.metadata


# sending -----------------------------------------------------------------------------------


def reply(text: str = "", **extra: object) -> Outbound:
    return Outbound(
        message_id=42,
        channel="wa",
        recipient=Sender(external_id=CUSTOMER),
        text=text,
        thread_id=CUSTOMER,
        **extra,  # type: ignore[arg-type]
    )


async def test_a_text_reply_and_its_wamid(fake: FakeGraph) -> None:
    async with running("whatsapp", fake) as (channel, _, _):
        delivery = await channel.send(reply("سفارش شما فردا می‌رسد."))
        [call] = fake.sent("messages")
        assert call.path == f"{PHONE_NUMBER_ID}/messages"
        assert call.body == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CUSTOMER,
            "type": "text",
            "text": {"body": "سفارش شما فردا می‌رسد.", "preview_url": False},
        }
        assert delivery.external_id.startswith("wamid.SENT")
        assert channel.status()["last_send_at"] is not None


async def test_long_text_is_split_at_4096(fake: FakeGraph) -> None:
    text = ("کلمه " * 1500).strip()
    async with running("whatsapp", fake) as (channel, _, _):
        await channel.send(reply(text))
        bodies = [c.body["text"]["body"] for c in fake.sent("messages")]
        assert len(bodies) == 2 and all(len(b) <= 4096 for b in bodies)
        assert " ".join(bodies) == text


async def test_choices_go_as_buttons_or_a_list(fake: FakeGraph) -> None:
    async with running("whatsapp", fake) as (channel, _, _):
        await channel.send(
            reply("یکی را انتخاب کنید:", quick_replies=("هزینه ارسال چقدر است؟", "مرجوعی"))
        )
        [call] = fake.sent("messages")
        interactive = call.body["interactive"]
        assert call.body["type"] == "interactive" and interactive["type"] == "button"
        assert interactive["body"] == {"text": "یکی را انتخاب کنید:"}
        buttons = [b["reply"] for b in interactive["action"]["buttons"]]
        assert buttons[0] == {"id": "qr:هزینه ارسال چقدر است؟", "title": "هزینه ارسال چقدر اس…"}
        assert all(len(b["title"]) <= 20 for b in buttons)

        choices = tuple(f"Question number {i} about shipping and returns" for i in range(12))
        await channel.send(reply("Pick one:", quick_replies=choices))
        listed = fake.sent("messages")[-1].body["interactive"]
        assert listed["type"] == "list"
        rows = listed["action"]["sections"][0]["rows"]
        assert len(rows) == 10
        assert all(len(r["title"]) <= 24 and len(r["description"]) <= 72 for r in rows)
        assert rows[0]["id"] == "qr:" + choices[0]
        assert listed["action"]["button"] == "Choose"


async def test_a_file_is_uploaded_then_sent_by_id(fake: FakeGraph) -> None:
    async with running("whatsapp", fake) as (channel, _, blobs):
        url = await blobs.put(b"%PDF", "فاکتور.pdf", "application/pdf", owner="x")
        photo = await blobs.put(b"\x89PNG", "p.png", "image/png", owner="x")
        await channel.send(
            reply(
                "فاکتور پیوست است.",
                attachments=(
                    Attachment("فاکتور.pdf", "application/pdf", 4, url),
                    Attachment("p.png", "image/png", 4, photo),
                ),
            )
        )
        uploads = fake.sent("media_upload")
        assert [u.body["file"][0] for u in uploads] == ["فاکتور.pdf", "p.png"]
        assert uploads[0].body["messaging_product"] == "whatsapp"
        text, document, image = (c.body for c in fake.sent("messages"))
        assert text["type"] == "text"
        assert document["type"] == "document"
        assert document["document"]["filename"] == "فاکتور.pdf"
        assert fake.media[document["document"]["id"]] == ("application/pdf", b"%PDF")
        assert image["type"] == "image" and "filename" not in image["image"]


async def test_a_template_send(fake: FakeGraph) -> None:
    async with running("whatsapp", fake) as (channel, _, _):
        template = TemplateMessage(name="order_update", language="fa", parameters=("مریم", "۱۲۳"))
        await channel.send(reply("rendered text", template=template))
        [call] = fake.sent("messages")
        assert call.body["type"] == "template"
        assert call.body["template"] == {
            "name": "order_update",
            "language": {"code": "fa"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "مریم"},
                        {"type": "text", "text": "۱۲۳"},
                    ],
                }
            ],
        }


async def test_templates_and_the_window_are_declared(fake: FakeGraph) -> None:
    templates = [{"name": "order_update", "language": "fa", "parameters": ["name", "order"]}]
    async with running("whatsapp", fake, templates=templates) as (channel, _, _):
        assert channel.reply_window is not None
        assert channel.reply_window.total_seconds() == 24 * 3600
        [template] = channel.templates  # type: ignore[attr-defined]
        assert (template.name, template.parameters) == ("order_update", ("name", "order"))


async def test_rate_limits_and_5xx_are_retried_with_backoff(fake: FakeGraph) -> None:
    async with running("whatsapp", fake) as (channel, _, _):
        fake.fail("messages", 429, 130429, "Rate limit hit")
        fake.fail("messages", 503, 2, "Service temporarily unavailable")
        delivery = await channel.send(reply("سلام"))
        assert delivery.external_id
        assert len(fake.sent("messages")) == 3

        fake.fail("messages", 500, 131000, "Something went wrong", times=3)
        with pytest.raises(DeliveryError) as caught:
            await channel.send(reply("سلام"))
        assert not caught.value.permanent
        assert "Something went wrong" in caught.value.reason


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        (401, 190, "access token is invalid"),
        (400, 131047, "send a template"),
        (400, 551, "not available"),
        (403, 10, "permission"),
        (403, 200, "permission"),
        (400, 100, "Meta refused (100)"),
    ],
)
async def test_refusals_fail_visibly_with_metas_message(
    fake: FakeGraph, status: int, code: int, words: str
) -> None:
    async with running("whatsapp", fake) as (channel, _, _):
        fake.fail("messages", status, code, f"Meta says {code}")
        with pytest.raises(DeliveryError) as caught:
            await channel.send(reply("سلام"))
        assert caught.value.permanent
        assert f"Meta says {code}" in caught.value.reason
        assert words in caught.value.reason
        assert len(fake.sent("messages")) == 1  # not retried
        assert f"Meta says {code}" in channel.status()["last_error"]


async def test_a_wrong_token_never_reaches_the_status_page(fake: FakeGraph) -> None:
    async with running("whatsapp", fake, access_token="EAAG-wrong") as (channel, _, _):
        with pytest.raises(DeliveryError) as caught:
            await channel.send(reply("سلام"))
        assert caught.value.permanent and "190" in caught.value.reason
        assert "EAAG-wrong" not in str(channel.status())


async def test_an_unreachable_graph_api_is_transient(fake: FakeGraph) -> None:
    async with running("whatsapp", fake, graph_url="http://127.0.0.1:9") as (channel, _, _):
        with pytest.raises(DeliveryError) as caught:
            await channel.send(reply("سلام"))
        assert not caught.value.permanent
        assert "unreachable" in caught.value.reason


async def test_a_split_reply_resumes_where_it_failed(fake: FakeGraph) -> None:
    text = ("کلمه " * 1500).strip()
    async with running("whatsapp", fake, send_attempts=1) as (channel, _, _):
        fake.failures["messages"] = []
        # The first piece goes, the second fails: a retry sends only the second.
        original = fake._failure

        def second_fails(endpoint: str):  # type: ignore[no-untyped-def]
            if endpoint == "messages" and len(fake.sent("messages")) == 2:
                fake.fail("messages", 500, 1)
            return original(endpoint)

        fake._failure = second_fails  # type: ignore[method-assign]
        with pytest.raises(DeliveryError):
            await channel.send(reply(text))
        fake._failure = original  # type: ignore[method-assign]
        await channel.send(reply(text))
        bodies = [c.body["text"]["body"] for c in fake.sent("messages")]
        assert len(bodies) == 3 and bodies[1] == bodies[2]


def test_classification_of_graph_errors() -> None:
    assert not classify(429, None).permanent
    assert not classify(502, "<html>").permanent
    assert not classify(
        400, {"error": {"code": 4, "message": "Application request limit"}}
    ).permanent
    assert classify(400, {"error": {"code": 131026, "message": "Undeliverable"}}).permanent
    error = classify(400, {"error": {"code": 131047, "message": "Re-engagement message"}})
    assert error.permanent and error.code == 131047
    window = {"code": 10, "error_subcode": 2018278, "message": "outside of allowed window"}
    assert "Messenger's 24-hour reply window" in classify(400, {"error": window}).reason


async def test_nothing_to_send_to_is_permanent(fake: FakeGraph) -> None:
    async with running("whatsapp", fake) as (channel, _, _):
        bad = Outbound(message_id=1, channel="wa", recipient=Sender(external_id=""), text="x")
        with pytest.raises(DeliveryError) as caught:
            await channel.send(bad)
        assert caught.value.permanent
        with pytest.raises(DeliveryError):
            await channel.send(reply("   "))
    await asyncio.sleep(0)


def test_config_takes_secrets_only_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from inbox.config import ConfigError, parse_config

    entry = {
        "type": "whatsapp",
        "name": "wa",
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": "${PISHKHAN_TEST_WA_TOKEN}",
        "app_secret": "${PISHKHAN_TEST_WA_SECRET}",
        "verify_token": "${PISHKHAN_TEST_WA_VERIFY}",
        "templates": [{"name": "order_update", "language": "fa", "parameters": ["order"]}],
    }
    for name in ("TOKEN", "SECRET", "VERIFY"):
        monkeypatch.setenv(f"PISHKHAN_TEST_WA_{name}", f"value-{name}")
    [channel] = parse_config({"channels": [entry]}).channels
    assert channel.type == "whatsapp"
    for key in ("access_token", "app_secret", "verify_token"):
        with pytest.raises(ConfigError, match=f"channels\\[0\\].{key}: a secret"):
            parse_config({"channels": [{**entry, key: "written-in-the-file"}]})
    with pytest.raises(ConfigError, match="phone_number_id"):
        parse_config({"channels": [{**entry, "phone_number_id": "+98 912"}]})
    with pytest.raises(ConfigError, match="page_id"):
        parse_config({"channels": [{**entry, "type": "messenger", "phone_number_id": None}]})
