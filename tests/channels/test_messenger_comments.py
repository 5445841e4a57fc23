"""Comments on the page's and the Instagram account's posts: they open conversations when the
channel asks for them, the commenter is the same identity as in Direct and Messenger, and
replies go back as a reply comment or a private reply."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from channels.base import Attachment, DeliveryError, Outbound, Sender
from channels.messenger_events import parse_entry
from channels.meta_events import BadEvent
from tests.fixtures.graph_api import (
    IG_ACCOUNT_ID,
    PAGE_ID,
    FakeGraph,
    fake_graph,
    load_payload,
    running,
)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with fake_graph() as server:
        yield server


def test_facebook_feed_comments() -> None:
    [entry] = load_payload("messenger_feed_comments.json")["entry"]
    assert parse_entry(entry, account_id=PAGE_ID, platform="messenger") == []  # off by default
    [comment] = parse_entry(entry, account_id=PAGE_ID, platform="messenger", comments=True)
    assert comment.external_id == "comment:999_1001"
    assert comment.text == "قیمت این مدل چند است؟"
    assert comment.sender == Sender(external_id="6000000000000001", name="سارا کریمی")
    assert comment.thread_id == "comments:112233445566778_999:6000000000000001"
    assert comment.metadata["kind"] == "comment"
    assert comment.received_at.timestamp() == 1763900000


def test_instagram_comments() -> None:
    [entry] = load_payload("instagram_comments.json")["entry"]
    [comment] = parse_entry(entry, account_id=IG_ACCOUNT_ID, platform="instagram", comments=True)
    assert comment.external_id == "comment:17900000000000001"
    assert comment.sender == Sender(external_id="7000000000000001", name="maryam.shop")
    assert comment.thread_id == "comments:18000000000000777:7000000000000001"
    assert comment.metadata["post_id"] == "18000000000000777"


def test_a_comment_without_its_media_is_skipped() -> None:
    [entry] = load_payload("instagram_comments.json")["entry"]
    del entry["changes"][0]["value"]["media"]
    with pytest.raises(BadEvent):
        parse_entry(entry, account_id=IG_ACCOUNT_ID, platform="instagram", comments=True)


def answer(thread: str, comment: str, text: str = "بله، موجود است.") -> Outbound:
    return Outbound(
        message_id=3,
        channel="ig",
        recipient=Sender(external_id="7000000000000001"),
        text=text,
        thread_id=thread,
        in_reply_to=f"comment:{comment}",
    )


async def test_public_replies(fake: FakeGraph) -> None:
    async with running("instagram", fake, comments="public") as (channel, _, _):
        delivery = await channel.send(answer("comments:1800:7000", "17900000000000001"))
        [call] = fake.sent("comment_reply")
        assert call.path == "17900000000000001/replies"
        assert call.body == {"message": "بله، موجود است."}
        assert delivery.external_id == "17900000000000001_reply1"
    async with running("messenger", fake, comments="public") as (channel, _, _):
        await channel.send(answer("comments:post:6000", "999_1001"))
        assert fake.sent("comment_reply")[-1].path == "999_1001/comments"


async def test_private_replies(fake: FakeGraph) -> None:
    async with running("messenger", fake, comments="private") as (channel, _, _):
        delivery = await channel.send(answer("comments:post:6000", "999_1001"))
        [call] = fake.sent("me/messages")
        assert call.body == {
            "recipient": {"comment_id": "999_1001"},
            "message": {"text": "بله، موجود است."},
        }
        assert delivery.external_id.startswith("m_")


async def test_what_a_comment_reply_cannot_be(fake: FakeGraph) -> None:
    async with running("instagram", fake, comments="public") as (channel, _, _):
        for bad in (
            answer("comments:1800:7000", "x", text="ب" * 2201),
            answer("comments:1800:7000", "x", text="  "),
            Outbound(
                message_id=1,
                channel="ig",
                recipient=Sender(external_id="7000"),
                text="x",
                thread_id="comments:1800:7000",
                in_reply_to="aWdfZAG1",  # the last message was no comment
            ),
            Outbound(
                message_id=1,
                channel="ig",
                recipient=Sender(external_id="7000"),
                text="x",
                thread_id="comments:1800:7000",
                in_reply_to="comment:1",
                attachments=(Attachment("a.png", "image/png", 1, "/blobs/1"),),
            ),
        ):
            with pytest.raises(DeliveryError) as caught:
                await channel.send(bad)
            assert caught.value.permanent
        assert fake.sent("comment_reply") == []
