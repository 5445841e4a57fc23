"""Search finds what was written however it was spelled, on both backends, and only what the
caller may see."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Select, delete, or_, select, text, update

from storage.db import SessionFactory
from storage.models import ContactPoint, Conversation, Customer, Message, Team
from storage.search import SearchResults, fold, search, tokens


async def add_conversation(
    sessions: SessionFactory,
    *texts: str,
    name: str = "",
    contacts: tuple[tuple[str, str], ...] = (),
    team: str | None = None,
    subject: str = "",
    private: bool = False,
) -> tuple[int, list[int]]:
    async with sessions.begin() as session:
        team_id = None
        if team is not None:
            team_id = await session.scalar(select(Team.id).where(Team.name == team))
            if team_id is None:
                row = Team(name=team)
                session.add(row)
                await session.flush()
                team_id = row.id
        customer = Customer(name=name)
        session.add(customer)
        await session.flush()
        for kind, value in contacts:
            session.add(ContactPoint(customer_id=customer.id, kind=kind, value=value))
        conversation = Conversation(
            customer_id=customer.id, channel="webform", subject=subject, team_id=team_id
        )
        session.add(conversation)
        await session.flush()
        messages = [
            Message(
                conversation_id=conversation.id,
                channel="webform",
                direction="in",
                author_kind="customer",
                subject=subject,
                text=body,
                private=private,
            )
            for body in texts
        ]
        session.add_all(messages)
        await session.flush()
        return conversation.id, [m.id for m in messages]


async def find(sessions: SessionFactory, query: str, **kwargs: Any) -> SearchResults:
    async with sessions() as session:
        return await search(session, query, **kwargs)


async def conversation_ids(sessions: SessionFactory, query: str, **kwargs: Any) -> list[int]:
    return [hit.conversation_id for hit in (await find(sessions, query, **kwargs)).conversations]


@pytest.mark.parametrize(
    ("written", "typed"),
    [
        ("کتاب را کی می‌فرستید؟", "كتاب"),  # Arabic kaf in the query
        ("كتاب را كي مي‌فرستيد", "کتاب"),  # Arabic kaf and yeh in the text
        ("شماره سفارش 0912 است", "۰۹۱۲"),  # Persian digits
        ("شماره سفارش 0912 است", "٠٩١٢"),  # Arabic-Indic digits
        ("شماره سفارش ۰۹۱۲ است", "0912"),
        ("من می\u200cخواهم پول را پس بگیرم", "میخواهم"),  # ZWNJ in the text
        ("من میخواهم پول را پس بگیرم", "می\u200cخواهم"),  # ZWNJ in the query
        ("مُشتَری گرامی", "مشتری"),  # diacritics
        ("پيـــگيري سفارش", "پیگیری"),  # tatweel
        ("Where is my ORDER?", "order"),  # case
        ("The Refund-Policy page", "refund policy"),
        ("ارسال سفارش‌ها با تاخیر", "سفارش"),  # a word with a suffix: the last word is a prefix
        ("ارسال سفارش‌ها با تاخیر", "ارسال سفا"),
    ],
)
async def test_spellings_people_mix_find_each_other(
    sessions: SessionFactory, written: str, typed: str
) -> None:
    conversation, messages = await add_conversation(sessions, written)
    await add_conversation(sessions, "متن دیگری بدون ربط")
    results = await find(sessions, typed)
    assert [(h.conversation_id, h.message_id) for h in results.conversations] == [
        (conversation, messages[0])
    ]


async def test_every_word_must_match_and_only_the_last_is_a_prefix(
    sessions: SessionFactory,
) -> None:
    both, _ = await add_conversation(sessions, "ارسال بسته پستی")
    await add_conversation(sessions, "ارسال فاکتور")
    assert await conversation_ids(sessions, "ارسال بسته") == [both]
    assert await conversation_ids(sessions, "ارسال بس") == [both]
    assert await conversation_ids(sessions, "ارس بسته") == []


async def test_subject_and_private_notes_are_found(sessions: SessionFactory) -> None:
    by_subject, _ = await add_conversation(sessions, "سلام", subject="Invoice 4411")
    note, _ = await add_conversation(sessions, "یادداشت داخلی: مشتری ویژه", private=True)
    assert await conversation_ids(sessions, "invoice 4411") == [by_subject]
    assert await conversation_ids(sessions, "ویژه") == [note]


async def test_one_hit_per_conversation_newest_first_with_a_snippet(
    sessions: SessionFactory,
) -> None:
    older, _ = await add_conversation(sessions, "گارانتی دستگاه")
    newer, messages = await add_conversation(
        sessions, "گارانتی اول", "چیز دیگر", "سلام. " * 40 + "گارانتی دوم تمدید شود " + "x " * 100
    )
    results = await find(sessions, "گارانتي")
    assert [h.conversation_id for h in results.conversations] == [newer, older]
    hit = results.conversations[0]
    assert hit.message_id == messages[2]
    assert "گارانتی دوم تمدید شود" in hit.snippet
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…")
    assert len(hit.snippet) < 200


async def test_limit_counts_conversations(sessions: SessionFactory) -> None:
    for _ in range(5):
        await add_conversation(sessions, "تکراری", "تکراری", "تکراری")
    assert len(await conversation_ids(sessions, "تکراری", limit=3)) == 3
    assert len(await conversation_ids(sessions, "تکراری", limit=10)) == 5


async def test_customers_by_name_email_and_phone(sessions: SessionFactory) -> None:
    maryam, _ = await add_conversation(
        sessions,
        "سلام",
        name="مریم رضايي",
        contacts=(("email", "maryam.rezaei@example.com"), ("phone", "+989121234567")),
    )
    await add_conversation(sessions, "سلام", name="Ali", contacts=(("email", "ali@test.org"),))
    async with sessions() as session:
        customer = await session.scalar(
            select(Conversation.customer_id).where(Conversation.id == maryam)
        )

    async def customers(query: str) -> list[int]:
        return [hit.customer_id for hit in (await find(sessions, query)).customers]

    assert await customers("رضایی") == [customer]
    assert await customers("مريم") == [customer]
    assert await customers("maryam.rezaei@example.com") == [customer]
    assert await customers("MARYAM") == [customer]
    assert await customers("۰۹۱۲۱۲۳") == [customer]
    assert await customers("09121234567") == [customer]
    assert await customers("+98912") == [customer]
    hit = (await find(sessions, "maryam")).customers[0]
    assert hit.name == "مریم رضايي"
    assert hit.contact_points == [
        ("email", "maryam.rezaei@example.com"),
        ("phone", "+989121234567"),
    ]


async def test_scope_limits_conversations_and_customers(sessions: SessionFactory) -> None:
    sales, _ = await add_conversation(sessions, "قرارداد فروش", name="Sales Customer", team="sales")
    support, _ = await add_conversation(
        sessions, "قرارداد پشتیبانی", name="Support Customer", team="support"
    )
    async with sessions() as session:
        support_team = await session.scalar(select(Team.id).where(Team.name == "support"))

    def only_support(query: Select[Any]) -> Select[Any]:
        return query.where(or_(Conversation.team_id == support_team))

    assert await conversation_ids(sessions, "قرارداد", scope=only_support) == [support]
    assert sorted(await conversation_ids(sessions, "قرارداد")) == sorted([sales, support])
    hits = await find(sessions, "customer", scope=only_support)
    assert [h.name for h in hits.customers] == ["Support Customer"]


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"unbalanced',
        "*",
        "کتاب*",
        "a NEAR b",
        "NEAR(a b)",
        "(((",
        "-کتاب",
        "a AND OR NOT b",
        "body:کتاب",
        "^کتاب",
        "'; DROP TABLE messages; --",
        "\\",
        "a & b | !c <-> d:*",
        "\x00",
        "🙂",
        "",
        "   ",
    ],
)
async def test_query_syntax_is_just_text(sessions: SessionFactory, query: str) -> None:
    conversation, _ = await add_conversation(sessions, "کتاب and book near me")
    results = await find(sessions, query)
    expected = [conversation] if tokens(query) else []
    assert [h.conversation_id for h in results.conversations] in ([], expected)
    async with sessions() as session:
        assert await session.scalar(select(Message.id).limit(1)) is not None


async def test_edits_and_deletes_keep_the_index_in_step(sessions: SessionFactory) -> None:
    conversation, messages = await add_conversation(
        sessions, "پیام اول", name="Old Name", contacts=(("email", "old@example.com"),)
    )
    assert await conversation_ids(sessions, "اول") == [conversation]
    async with sessions.begin() as session:
        await session.execute(
            update(Message).where(Message.id == messages[0]).values(text="پیام ویرایش‌شده")
        )
        await session.execute(
            update(Message).where(Message.id == messages[0]).values(delivery_status="sent")
        )
        await session.execute(update(Customer).values(name="New Name"))
        await session.execute(update(ContactPoint).values(value="new@example.com"))
    assert await conversation_ids(sessions, "اول") == []
    assert await conversation_ids(sessions, "ویرایش شده") == []  # ZWNJ joins, not splits
    assert await conversation_ids(sessions, "ویرایششده") == [conversation]
    assert [h.name for h in (await find(sessions, "new")).customers] == ["New Name"]
    assert (await find(sessions, "old")).customers == []
    async with sessions.begin() as session:
        await session.execute(delete(Conversation).where(Conversation.id == conversation))
    assert await conversation_ids(sessions, "ویرایششده") == []


async def test_the_databases_fold_like_python(sessions: SessionFactory) -> None:
    """The index folds in SQL, the query in Python: they must agree character for character."""
    sample = "كتاب يك ي ى ة ۰۱۲۳۴۵۶۷۸۹ ٠١٢٣٤٥٦٧٨٩ می\u200cخواهم مُشتَرِیّ پيـــگيري ؤ إأٱ"
    async with sessions() as session:
        dialect = session.bind.dialect.name
        if dialect == "sqlite":
            from storage.search import sqlite_fold

            folded = await session.scalar(text(f"SELECT {sqlite_fold(':s')}"), {"s": sample})
        else:
            folded = await session.scalar(text("SELECT pishkhan_fold(:s)"), {"s": sample})
    assert folded is not None
    assert folded.split() == fold(sample).split()
