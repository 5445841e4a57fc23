"""A satisfaction survey by email, end to end: Dovecot brings the customer's mail in, aiosmtpd
catches the survey mail, and its one-click links are opened like a mail client opens them
(no login): once, not after they expire, never with a forged token."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, update

from storage.config import StorageConfig
from storage.models import CsatSurvey, Event, Notification
from tests.channels.test_email_transport import (
    ENV,
    append,
    conversations,
    email_channel,
    email_stack,
)
from tests.fixtures.mail import (
    PASSWORD,
    Dovecot,
    SmtpServer,
    customer_mail,
    dovecot_server,  # noqa: F401 - the `dovecot` fixture
    smtp_recorder,  # noqa: F401 - the `smtp_server` fixture
)
from tests.fixtures.services import unique
from tests.fixtures.stack import Stack, eventually

LINK = re.compile(r"https?://[^\s/]+(/csat/[A-Za-z0-9._-]+\?rating=(\d)[^\s]*)")


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, PASSWORD)


@pytest.fixture
def mailbox(dovecot: Dovecot) -> str:
    name = unique("box")
    dovecot.create("support", name)
    return name


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


async def _survey(stack: Stack) -> CsatSurvey:
    async with stack.sessions() as session:
        survey = await session.scalar(select(CsatSurvey))
        assert survey is not None
        return survey


async def _csat_events(stack: Stack) -> list[str]:
    async with stack.sessions() as session:
        return list(
            await session.scalars(
                select(Event.type).where(Event.type.like("csat.%")).order_by(Event.id)
            )
        )


async def test_the_email_survey_links_answer_once_and_only_when_signed(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    await append(dovecot, customer_mail(message_id="<order@mail.example.com>"), mailbox)
    settings: dict[str, Any] = {
        "routing": {
            "teams": [{"name": "پشتیبانی", "leads": ["lead@pishkhan.test"]}],
            "default_team": "پشتیبانی",
            "csat": {"channels": ["support"]},
        }
    }
    channel = email_channel(dovecot, smtp_server, mailbox)
    async with email_stack(storage_config, [channel], **settings) as stack:
        agent = await stack.add_agent("sara@pishkhan.test")
        [conversation] = await eventually(lambda: conversations(stack), timeout=10)
        status, _ = await agent.send(
            "POST",
            f"/api/v1/conversations/{conversation.id}/messages",
            {"text": "سفارش شما امروز ارسال شد."},
        )
        assert status == 201
        status, _ = await agent.send(
            "PUT", f"/api/v1/conversations/{conversation.id}/status", {"status": "resolved"}
        )
        assert status == 200
        _, survey_mail = await smtp_server.wait_for(2)
        assert survey_mail.rcpt_tos == ["maryam@example.com"]
        body = survey_mail.message.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert "از پاسخگویی ما در این گفتگو چقدر راضی بودید" in text
        links = {int(rating): path for path, rating in LINK.findall(text)}
        assert sorted(links) == [1, 2, 3, 4, 5]

        customer = aiohttp.ClientSession()  # a mail client's browser: no cookie, no token
        try:
            base = stack.base
            # Forged and garbled tokens: 404, nothing said about why, nothing stored.
            token = links[4].split("/")[2].split("?")[0]
            survey_id, nonce, mac = token.split(".")
            forged = f"{survey_id}.{nonce}.{'A' * len(mac)}"
            for path in (f"/csat/{forged}?rating=5", "/csat/garbage?rating=5", "/csat/1.2.3"):
                status, page = await _get(customer, base + path)
                assert status == 404, path
                assert "این پیوند معتبر نیست" in page
            status, _ = await _get(customer, base + links[4].replace("rating=4", "rating=9"))
            assert status == 400
            assert (await _survey(stack)).status == "sent"

            # Past its time: 410, and the answer is not taken.
            sent_at = (await _survey(stack)).sent_at
            async with stack.sessions.begin() as session:
                await session.execute(
                    update(CsatSurvey).values(expires_at=sent_at - timedelta(hours=1))
                )
            status, page = await _get(customer, base + links[5])
            assert status == 410 and "مهلت پاسخ" in page
            assert (await _survey(stack)).rating is None
            async with stack.sessions.begin() as session:
                await session.execute(
                    update(CsatSurvey).values(expires_at=sent_at + timedelta(hours=72))
                )

            # One click: recorded, thanked in Persian (Persian digits), a comment form without JS.
            status, page = await _get(customer, base + links[2])
            assert status == 200
            assert 'dir="rtl"' in page and "<script" not in page
            assert "امتیاز ۲ از ۵ ثبت شد" in page and "<form" in page
            survey = await _survey(stack)
            assert (survey.status, survey.rating, survey.agent_id) == ("answered", 2, agent.id)

            # A comment, once; a second one changes nothing. Another site cannot post one, and
            # an oversized one is refused whole.
            action = links[2].split("?")[0]
            async with customer.post(
                base + action,
                data={"comment": "از سایت دیگر"},
                headers={"Origin": "https://evil.example"},
            ) as response:
                assert response.status == 403
            async with customer.post(base + action, data={"comment": "ب" * 20_000}) as response:
                assert response.status == 413
            assert (await _survey(stack)).comment == ""
            async with customer.post(
                base + action, data={"comment": "پاسخ دیر رسید ولی درست بود"}
            ) as response:
                assert response.status == 200
                assert "نظر شما ثبت شد" in await response.text()
            async with customer.post(base + action, data={"comment": "دوباره"}) as response:
                assert response.status == 200
            assert (await _survey(stack)).comment == "پاسخ دیر رسید ولی درست بود"

            # The link used again (another rating): "already answered", nothing changed.
            status, page = await _get(customer, base + links[5])
            assert status == 200 and "پیش‌تر پاسخ داده شده" in page
            survey = await _survey(stack)
            assert survey.rating == 2
            assert await _csat_events(stack) == [
                "csat.requested",
                "csat.answered",
                "csat.commented",
            ]
        finally:
            await customer.close()

        # A low score: the assignee is told (the team has no lead agent yet), nothing reopens.
        async with stack.sessions() as session:
            kinds = list(await session.scalars(select(Notification.kind)))
            assert kinds == ["csat_low"]
        status, detail = await agent.get(f"/api/v1/conversations/{conversation.id}")
        assert status == 200 and detail["status"] == "resolved"
        assert detail["csat"]["rating"] == 2 and detail["csat"]["comment"].startswith("پاسخ")
        assert detail["customer"]["csat"]["average"] == 2.0
        async with stack.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(CsatSurvey)) == 1
