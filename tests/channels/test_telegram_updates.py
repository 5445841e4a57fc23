"""Turning Telegram updates into inbound messages: every kind a customer can send, and updates
that are not Telegram's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from channels.telegram_updates import BadUpdate, parse_update
from tests.fixtures.telegram_api import message, user


def update(update_id: int = 1, **kinds: Any) -> dict[str, Any]:
    return {"update_id": update_id, **kinds}


def test_a_text_message_names_its_sender_chat_and_message() -> None:
    draft = parse_update(
        update(message=message(777, 42, text="سلام، سفارشم نرسیده", sender=user(username="maryam")))
    )
    assert draft is not None
    assert draft.external_id == "777:42"
    assert draft.thread_id == "777"
    assert draft.text == "سلام، سفارشم نرسیده"
    assert draft.sender.external_id == "777"
    assert draft.sender.name == "مریم احمدی"
    assert draft.metadata["username"] == "maryam"
    assert draft.files == ()


def test_a_photo_takes_its_largest_size_and_keeps_the_caption() -> None:
    photo = [
        {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 900},
        {"file_id": "big", "file_unique_id": "b", "width": 900, "height": 900, "file_size": 9000},
    ]
    draft = parse_update(update(message=message(777, 3, photo=photo, caption="رسید پرداخت")))
    assert draft is not None
    [ref] = draft.files
    assert (ref.file_id, ref.content_type, ref.size) == ("big", "image/jpeg", 9000)
    assert draft.text == "رسید پرداخت"


@pytest.mark.parametrize(
    ("content", "filename", "content_type", "text"),
    [
        (
            {
                "document": {
                    "file_id": "d",
                    "file_unique_id": "d",
                    "file_name": "فاکتور.pdf",
                    "mime_type": "application/pdf",
                }
            },
            "فاکتور.pdf",
            "application/pdf",
            "[file]",
        ),
        (
            {
                "voice": {
                    "file_id": "v",
                    "file_unique_id": "v",
                    "duration": 4,
                    "mime_type": "audio/ogg",
                }
            },
            "voice_5.ogg",
            "audio/ogg",
            "[voice message]",
        ),
        (
            {"video_note": {"file_id": "n", "file_unique_id": "n", "length": 240, "duration": 3}},
            "video_note_5.mp4",
            "video/mp4",
            "[video message]",
        ),
        (
            {
                "video": {
                    "file_id": "x",
                    "file_unique_id": "x",
                    "width": 1,
                    "height": 1,
                    "duration": 1,
                }
            },
            "video_5.mp4",
            "video/mp4",
            "[video]",
        ),
        (
            {"audio": {"file_id": "a", "file_unique_id": "a", "duration": 1}},
            "audio_5.mp3",
            "audio/mpeg",
            "[audio]",
        ),
        (
            {
                "sticker": {
                    "file_id": "k",
                    "file_unique_id": "k",
                    "type": "regular",
                    "width": 1,
                    "height": 1,
                    "is_animated": False,
                    "is_video": False,
                    "emoji": "👍",
                }
            },
            "sticker_5.webp",
            "image/webp",
            "[sticker 👍]",
        ),
    ],
)
def test_media_become_files_with_a_readable_line(
    content: dict[str, Any], filename: str, content_type: str, text: str
) -> None:
    draft = parse_update(update(message=message(777, 5, **content)))
    assert draft is not None
    [ref] = draft.files
    assert (ref.filename, ref.content_type) == (filename, content_type)
    assert draft.text == text


def test_a_location_is_readable_with_a_map_link_and_coordinates() -> None:
    location = {"latitude": 35.6997, "longitude": 51.3380}
    draft = parse_update(update(message=message(777, 6, location=location)))
    assert draft is not None
    assert "35.699700, 51.338000" in draft.text
    assert "https://www.openstreetmap.org/?mlat=35.699700&mlon=51.338000" in draft.text
    assert draft.metadata["latitude"] == "35.699700"
    assert draft.metadata["longitude"] == "51.338000"


def test_the_customers_own_shared_contact_gives_their_phone_in_e164() -> None:
    contact = {"phone_number": "989121234567", "first_name": "مریم", "user_id": 777}
    draft = parse_update(update(message=message(777, 7, contact=contact)))
    assert draft is not None
    assert draft.sender.phone == "+989121234567"
    assert "989121234567" in draft.text
    assert draft.metadata["contact_phone"] == "989121234567"


def test_someone_elses_contact_card_is_content_not_the_customers_phone() -> None:
    contact = {"phone_number": "+989350000000", "first_name": "علی", "user_id": 999}
    draft = parse_update(update(message=message(777, 8, contact=contact)))
    assert draft is not None
    assert draft.sender.phone == ""
    assert "علی: +989350000000" in draft.text


def test_an_edit_is_its_own_message_naming_the_original() -> None:
    edited = message(777, 9, text="سفارش شماره ۱۲۴ (نه ۱۲۳)", date=1_700_000_000)
    edited["edit_date"] = 1_700_000_060
    draft = parse_update(update(edited_message=edited))
    assert draft is not None
    assert draft.external_id == "777:9:edit:1700000060"
    assert draft.metadata["edit_of"] == "777:9"
    assert draft.text == "سفارش شماره ۱۲۴ (نه ۱۲۳)"


@pytest.mark.parametrize(
    ("text", "payload"),
    [
        ("/start pricing-page", "pricing-page"),
        ("/start", ""),
        ("/start@pishkhan_bot ad_42", "ad_42"),
    ],
)
def test_start_records_the_deep_link_payload(text: str, payload: str) -> None:
    draft = parse_update(update(message=message(777, 10, text=text)))
    assert draft is not None
    assert draft.metadata["start_payload"] == payload


def test_a_slash_command_that_is_not_start_has_no_payload() -> None:
    draft = parse_update(update(message=message(777, 10, text="/starting now")))
    assert draft is not None
    assert "start_payload" not in draft.metadata


def test_group_chats_are_ignored_unless_allowed_then_the_group_is_the_thread() -> None:
    payload = update(
        message=message(-100500, 11, chat_type="supergroup", text="سلام", sender=user(777))
    )
    assert parse_update(payload) is None
    draft = parse_update(payload, allow_groups=True)
    assert draft is not None
    assert draft.thread_id == "-100500"
    assert draft.sender.external_id == "777"
    assert draft.metadata["group_title"] == "گروه مشتریان"


def test_a_tapped_button_is_the_customers_answer_in_the_buttons_words() -> None:
    markup = {
        "inline_keyboard": [
            [{"text": "پیگیری سفارش", "callback_data": "qr:0"}],
            [{"text": "صحبت با کارشناس", "callback_data": "qr:1"}],
        ]
    }
    bot_message = message(777, 12, text="چه کمکی از ما برمی‌آید؟", reply_markup=markup)
    bot_message["from"] = {"id": 1, "is_bot": True, "first_name": "bot"}
    query = {
        "id": "cbq-1",
        "from": user(),
        "chat_instance": "ci",
        "data": "qr:1",
        "message": bot_message,
    }
    draft = parse_update(update(callback_query=query))
    assert draft is not None
    assert draft.text == "صحبت با کارشناس"
    assert draft.external_id == "cb:cbq-1"
    assert draft.callback_query_id == "cbq-1"
    assert draft.thread_id == "777"


def test_service_messages_and_channel_posts_carry_nothing() -> None:
    joined = message(777, 13, new_chat_members=[user(5)])
    assert parse_update(update(message=joined)) is None
    assert (
        parse_update(update(channel_post=message(-1001, 1, chat_type="channel", text="x"))) is None
    )
    assert parse_update(update(my_chat_member=None)) is None


def test_a_bot_writing_is_not_a_customer() -> None:
    from_bot = message(777, 14, text="echo", sender={"id": 9, "is_bot": True, "first_name": "b"})
    assert parse_update(update(message=from_bot)) is None


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"update_id": "1", "message": message(text="x")},
        {"update_id": True},
        {"update_id": 1, "message": {"message_id": 1, "date": 0}},  # no chat
        {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": "777"}},
        {"update_id": 1, "message": "hello"},
        {"update_id": 1, "message": message(photo="not a list")},
        {"update_id": 1, "message": message(photo=[{"file_id": 1}])},
        {"update_id": 1, "message": message(location={"latitude": "north"})},
        {"update_id": 1, "message": message(text=["a"])},
        {"update_id": 1, "callback_query": {"id": 5, "from": user()}},
    ],
)
def test_what_telegram_never_sends_is_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(BadUpdate):
        parse_update(payload)


PAYLOADS = Path(__file__).parent.parent / "payloads" / "telegram"
MAP = "https://www.openstreetmap.org/?mlat=35.699739&mlon=51.338097#map=16/35.699739/51.338097"
RECORDED: dict[str, tuple[str, str, dict[str, str]]] = {
    "start_deep_link.json": (
        "90210777:1",
        "/start from-pricing-page",
        {"start_payload": "from-pricing-page", "username": "maryam_ah", "language_code": "fa"},
    ),
    "voice.json": ("90210777:2", "[voice message]", {"kind": "message"}),
    "contact_own.json": (
        "90210777:3",
        "📇 مریم احمدی: +989121234567",
        {"contact_phone": "+989121234567"},
    ),
    "venue.json": (
        "90210777:4",
        f"📍 میدان آزادی, تهران، میدان آزادی\n35.699739, 51.338097\n{MAP}",
        {"latitude": "35.699739"},
    ),
    "edited.json": (
        "90210777:5:edit:1763900100",
        "سفارش ۱۲۴ (نه ۱۲۳) هنوز نرسیده",
        {"edit_of": "90210777:5"},
    ),
    "callback_query.json": (
        "cb:4382bfdwdsb323b2d9",
        "صحبت با کارشناس",
        {"kind": "quick_reply", "reply_to": "90210777:6"},
    ),
}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_updates(name: str) -> None:
    data = json.loads((PAYLOADS / name).read_text())
    draft = parse_update(data)
    assert draft is not None
    external_id, text, metadata = RECORDED[name]
    assert draft.external_id == external_id
    assert draft.text == text
    assert draft.sender.external_id == "90210777"
    assert draft.thread_id == "90210777"
    assert {key: draft.metadata.get(key) for key in metadata} == metadata
    if name == "contact_own.json":
        assert draft.sender.phone == "+989121234567"
    if name == "voice.json":
        assert [(f.file_id, f.size) for f in draft.files] == [("AwACAgQAAxkBAAIBQ2b", 15872)]


@pytest.mark.parametrize("name", ["supergroup.json", "my_chat_member.json"])
def test_recorded_updates_without_a_customer_message(name: str) -> None:
    assert parse_update(json.loads((PAYLOADS / name).read_text())) is None


def test_a_recorded_group_message_is_taken_when_groups_are_allowed() -> None:
    data = json.loads((PAYLOADS / "supergroup.json").read_text())
    draft = parse_update(data, allow_groups=True)
    assert draft is not None
    assert (draft.thread_id, draft.sender.external_id) == ("-1001234567890", "90210778")
