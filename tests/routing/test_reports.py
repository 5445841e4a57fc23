"""Reports agree with the raw data: a generated month of conversations, messages, events,
breaches and surveys, the reports over it, and the same figures computed here in plain Python
from the stored rows, compared figure by figure on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from routing.reports import FIGURES, WEEKDAYS, Period, Scope, report
from storage.db import SessionFactory
from storage.models import (
    Agent,
    Conversation,
    CsatSurvey,
    Customer,
    Event,
    Message,
    SlaBreach,
    Team,
)

START = date(2026, 10, 1)
END = date(2026, 10, 31)
CHANNELS = ("webform", "telegram", "email")
TEXTS = ("سفارشم هنوز نرسیده است", "فاکتور خرید را می‌خواهم", "Where is my order?")


@dataclass
class World:
    teams: list[int]
    agents: list[int]


async def seed_month(sessions: SessionFactory, seed: int = 3) -> World:
    """About 300 conversations from late September to early November, written as the app
    leaves them: events for creation, statuses, bot handovers; breaches and surveys."""
    rng = random.Random(seed)
    base = datetime(2026, 9, 26, tzinfo=UTC)
    async with sessions.begin() as session:
        teams = [Team(name="فروش"), Team(name="پشتیبانی")]
        agents = [
            Agent(email=f"a{i}@example.com", name=name, password_hash="!")
            for i, name in enumerate(("مریم", "علی", "سارا"))
        ]
        session.add_all([*teams, *agents])
        await session.flush()
        team_ids, agent_ids = [t.id for t in teams], [a.id for a in agents]
        session.add_all(Customer(id=n + 1, name=f"مشتری {n}") for n in range(300))
        await session.flush()
        for n in range(300):
            created = base + timedelta(seconds=rng.randrange(40 * 86400))
            first = created + timedelta(seconds=rng.randrange(20, 2 * 86400))
            conversation = Conversation(
                id=n + 1,
                customer_id=n + 1,
                channel=rng.choice(CHANNELS),
                team_id=rng.choice([*team_ids, None]),
                assignee_id=rng.choice([*agent_ids, None]),
                status="open",
                created_at=created,
                last_activity_at=created,
                first_response_at=first if rng.random() < 0.8 else None,
            )
            session.add(conversation)
            cid = conversation.id

            def event(kind: str, at: datetime, data: dict[str, Any], cid: int = cid) -> None:
                session.add(Event(type=kind, conversation_id=cid, data=data, created_at=at))

            def message(
                direction: str, author: str, at: datetime, c: Conversation = conversation
            ) -> None:
                session.add(
                    Message(
                        conversation_id=c.id,
                        channel=c.channel,
                        direction=direction,
                        author_kind=author,
                        text=rng.choice(TEXTS),
                        created_at=at,
                    )
                )

            event("conversation.created", created, {"conversation": {"id": cid}})
            for k in range(rng.randrange(1, 5)):
                message("in", "customer", created + timedelta(minutes=k * rng.randrange(1, 400)))
            message("out", "agent", first)
            if rng.random() < 0.3:  # the bot took a turn, which it notes on the conversation
                message("out", "bot", created + timedelta(seconds=2))
                conversation.metadata_ = {"bot": {"misses": 0, "language": "fa"}}
                if rng.random() < 0.5:
                    event("conversation.handed_over", created + timedelta(seconds=5), {})
            if rng.random() < 0.15:
                event("conversation.status_changed", first, {"from": "open", "to": "pending"})
            if rng.random() < 0.6:  # resolved, a few of them twice
                resolved = first + timedelta(seconds=rng.randrange(60, 5 * 86400))
                times = [resolved]
                if rng.random() < 0.2:
                    times.append(resolved + timedelta(hours=rng.randrange(1, 100)))
                for at in times:
                    event("conversation.status_changed", at, {"from": "open", "to": "resolved"})
                conversation.status, conversation.resolved_at = "resolved", times[-1]
                if rng.random() < 0.7:
                    answered = rng.random() < 0.6
                    session.add(
                        CsatSurvey(
                            conversation_id=cid,
                            customer_id=n + 1,
                            channel=conversation.channel,
                            agent_id=rng.choice([conversation.assignee_id, agent_ids[0]]),
                            team_id=conversation.team_id,
                            status="answered" if answered else rng.choice(["sent", "expired"]),
                            sent_at=times[0],
                            expires_at=times[0] + timedelta(days=7),
                            rating=rng.randrange(1, 6) if answered else None,
                            answered_at=times[0] + timedelta(hours=2) if answered else None,
                            nonce=f"n{cid}",
                        )
                    )
            if rng.random() < 0.25:
                due = created + timedelta(hours=rng.randrange(1, 30))
                session.add(
                    SlaBreach(
                        conversation_id=cid,
                        metric=rng.choice(["first_response", "resolution"]),
                        policy="عادی",
                        due_at=due,
                        breached_at=due + timedelta(seconds=30),
                        channel=conversation.channel,
                        team_id=conversation.team_id,
                        assignee_id=rng.choice([conversation.assignee_id, agent_ids[1]]),
                    )
                )
    return World(team_ids, agent_ids)


# --- the same figures, computed here from the stored rows ---------------------------------------


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=10, method="inclusive")
    return statistics.median(values) if p == 0.5 else cuts[8]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


async def expected(
    sessions: SessionFactory, period: Period, scope: Scope, key_of: str
) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    """Every figure per key ("bucket" → the bucket's first local day, or channel / team /
    agent), and over everything, from plain rows."""
    zone = period.zone
    async with sessions() as session:
        conversations = {c.id: c for c in (await session.scalars(select(Conversation))).all()}
        events = (await session.scalars(select(Event))).all()
        messages = (await session.scalars(select(Message))).all()
        breaches = (await session.scalars(select(SlaBreach))).all()
        surveys = (await session.scalars(select(CsatSurvey))).all()

    def in_period(at: datetime) -> bool:
        return period.start <= at.astimezone(zone).date() <= period.end

    def bucket(at: datetime) -> date:
        local = at.astimezone(zone).date()
        if period.group == "day":
            return local
        return local - timedelta(days=(local.weekday() - period.week_start) % 7)

    def visible(agent: int | None, team: int | None, channel: str) -> bool:
        return (
            (scope.agent_ids is None or agent in scope.agent_ids)
            and (scope.team_ids is None or team in scope.team_ids)
            and (scope.channels is None or channel in scope.channels)
        )

    def conv_key(c: Conversation, at: datetime) -> Any:
        return {
            "bucket": bucket(at),
            "channel": c.channel,
            "team": c.team_id,
            "agent": c.assignee_id,
        }[key_of]

    groups: dict[Any, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    everything: dict[str, list[Any]] = defaultdict(list)

    def put(key: Any, name: str, value: Any) -> None:
        groups[key][name].append(value)
        everything[name].append(value)

    bot_ids = {m.conversation_id for m in messages if m.author_kind == "bot"}
    handed = {e.conversation_id for e in events if e.type == "conversation.handed_over"}
    resolutions = [
        e for e in events if e.type == "conversation.status_changed" and e.data["to"] == "resolved"
    ]
    for c in conversations.values():
        if not (in_period(c.created_at) and visible(c.assignee_id, c.team_id, c.channel)):
            continue
        key = conv_key(c, c.created_at)
        put(key, "opened", 1)
        if c.first_response_at is not None:
            put(key, "frt", (c.first_response_at - c.created_at).total_seconds())
        if c.id in bot_ids:
            put(key, "bot", 1)
            if c.id in handed:
                put(key, "handed", 1)
            elif c.status == "resolved":
                put(key, "bot_resolved", 1)
    for e in resolutions:
        c = conversations[e.conversation_id or 0]
        if in_period(e.created_at) and visible(c.assignee_id, c.team_id, c.channel):
            put(
                conv_key(c, e.created_at),
                "resolution",
                (e.created_at - c.created_at).total_seconds(),
            )
    for b in breaches:
        if in_period(b.breached_at) and visible(b.assignee_id, b.team_id, b.channel):
            key = {"bucket": bucket(b.breached_at), "channel": b.channel, "team": b.team_id}
            put(key.get(key_of, b.assignee_id), "breach", 1)
    for s in surveys:
        if in_period(s.sent_at) and visible(s.agent_id, s.team_id, s.channel):
            key = {"bucket": bucket(s.sent_at), "channel": s.channel, "team": s.team_id}
            k = key.get(key_of, s.agent_id)
            put(k, "sent", 1)
            if s.answered_at is not None:
                put(k, "rating", s.rating)

    def summarize(g: dict[str, list[Any]]) -> dict[str, Any]:
        bots = len(g["bot"])
        return {
            "opened": len(g["opened"]),
            "resolved": len(g["resolution"]),
            "first_response_median": _percentile(sorted(g["frt"]), 0.5),
            "first_response_p90": _percentile(sorted(g["frt"]), 0.9),
            "resolution_median": _percentile(sorted(g["resolution"]), 0.5),
            "resolution_p90": _percentile(sorted(g["resolution"]), 0.9),
            "breaches": len(g["breach"]),
            "csat_sent": len(g["sent"]),
            "csat_answered": len(g["rating"]),
            "csat_average": statistics.mean(g["rating"]) if g["rating"] else None,
            "csat_response_rate": _ratio(len(g["rating"]), len(g["sent"])),
            "bot_conversations": bots,
            "bot_resolved": len(g["bot_resolved"]),
            "handed_over": len(g["handed"]),
            "bot_resolution_rate": _ratio(len(g["bot_resolved"]), bots),
            "handoff_rate": _ratio(len(g["handed"]), bots),
        }

    return {k: summarize(g) for k, g in groups.items()}, summarize(everything)


def same(actual: dict[str, Any], wanted: dict[str, Any], where: str) -> None:
    for name in FIGURES:
        if wanted[name] is None:
            assert actual[name] is None, (where, name, actual[name])
        else:
            assert actual[name] == pytest.approx(wanted[name], abs=0.01), (where, name)


# --- the tests ----------------------------------------------------------------------------------

ZONES = ("Asia/Tehran", "Europe/Berlin")
"""Tehran (UTC+3:30, no daylight saving) and Berlin, whose clocks go back on 25 October."""


@pytest.mark.parametrize("zone", ZONES)
async def test_every_table_agrees_with_the_raw_rows(sessions: SessionFactory, zone: str) -> None:
    world = await seed_month(sessions)
    cases: list[tuple[str, str, Period, Scope]] = [
        ("summary", "bucket", Period(START, END, ZoneInfo(zone)), Scope()),
        ("summary", "bucket", Period(START, END, ZoneInfo(zone), group="week"), Scope()),
        ("channels", "channel", Period(START, END, ZoneInfo(zone)), Scope()),
        ("teams", "team", Period(START, END, ZoneInfo(zone)), Scope()),
        ("agents", "agent", Period(START, END, ZoneInfo(zone)), Scope()),
        (
            "agents",
            "agent",
            Period(date(2026, 10, 10), date(2026, 10, 20), ZoneInfo(zone)),
            Scope(team_ids=frozenset({world.teams[0]})),
        ),
        (
            "summary",
            "bucket",
            Period(START, END, ZoneInfo(zone), group="week", week_start=0),
            Scope(agent_ids=frozenset({world.agents[1]}), channels=frozenset({"telegram"})),
        ),
    ]
    seen: list[dict[str, Any]] = []
    for name, key_of, period, scope in cases:
        async with sessions() as session:
            table = await report(session, name, period, scope)
        by_key, totals = await expected(sessions, period, scope, key_of)
        where = f"{name} {period.group} {scope}"
        same(table.totals, totals, where + " totals")
        assert sum(row["opened"] for row in table.rows) == totals["opened"]
        keyed = {
            (date.fromisoformat(row["key"]) if key_of == "bucket" else row["key"]): row
            for row in table.rows
        }
        assert set(by_key) <= set(keyed), where
        for key, row in keyed.items():
            wanted = by_key.get(key)
            if wanted is None:  # a day or week with nothing in it is listed, all zero
                assert key_of == "bucket" and row["opened"] == row["resolved"] == 0, (where, key)
                continue
            same(row, wanted, f"{where} {key}")
        seen.append(totals)
    every = seen[0]  # the whole month: each kind of figure has something to count
    for name in ("opened", "resolved", "breaches", "csat_answered", "bot_resolved", "handed_over"):
        assert every[name] > 0, name


async def test_summary_lists_every_bucket_of_the_period(sessions: SessionFactory) -> None:
    await seed_month(sessions)
    tehran = ZoneInfo("Asia/Tehran")
    async with sessions() as session:
        days = await report(session, "summary", Period(START, END, tehran), Scope())
        weeks = await report(session, "summary", Period(START, END, tehran, group="week"), Scope())
    assert [row["key"] for row in days.rows] == [
        (START + timedelta(days=i)).isoformat() for i in range(31)
    ]
    # Weeks start on Saturday: 1 October 2026 is a Thursday, its week began 26 September.
    assert weeks.rows[0]["key"] == "2026-09-26"
    assert all(date.fromisoformat(row["key"]).weekday() == 5 for row in weeks.rows)
    assert sum(r["opened"] for r in weeks.rows) == sum(r["opened"] for r in days.rows)


@pytest.mark.parametrize("zone", ZONES)
async def test_busiest_hours_count_customer_messages_by_local_hour(
    sessions: SessionFactory, zone: str
) -> None:
    world = await seed_month(sessions)
    period = Period(START, END, ZoneInfo(zone))
    async with sessions() as session:
        rows = (
            await session.execute(
                select(
                    Message.created_at, Message.direction, Message.author_kind, Conversation
                ).join(Conversation, Conversation.id == Message.conversation_id)
            )
        ).all()
    for team in (None, world.teams[1]):
        scope = Scope(team_ids=frozenset({team})) if team else Scope()
        async with sessions() as session:
            table = await report(session, "hours", period, scope)
        wanted: Counter[tuple[str, str]] = Counter()
        for at, direction, author, conversation in rows:
            local = at.astimezone(period.zone)
            if (
                direction == "in"
                and author == "customer"
                and team in (None, conversation.team_id)
                and START <= local.date() <= END
            ):
                wanted[(WEEKDAYS[local.weekday()], f"h{local.hour:02d}")] += 1
        found = Counter(
            {(row["key"], h): row[h] for row in table.rows for h in table.columns[2:-1] if row[h]}
        )
        assert found == wanted, team
        assert table.rows[0]["key"] == "sat"
        assert table.totals["total"] == sum(wanted.values()) > 0


async def test_csat_distribution_counts_answers_by_rating(sessions: SessionFactory) -> None:
    await seed_month(sessions)
    period = Period(START, END, ZoneInfo("Asia/Tehran"))
    async with sessions() as session:
        table = await report(session, "csat", period, Scope())
        surveys = (await session.scalars(select(CsatSurvey))).all()
    wanted = Counter(
        s.rating
        for s in surveys
        if s.answered_at is not None and START <= s.sent_at.astimezone(period.zone).date() <= END
    )
    assert {row["key"]: row["count"] for row in table.rows} == {r: wanted[r] for r in range(1, 6)}
    assert table.totals["count"] == sum(wanted.values()) > 0


def test_a_period_is_whole_local_days_and_bounded() -> None:
    tehran = ZoneInfo("Asia/Tehran")
    period = Period(date(2026, 3, 21), date(2026, 3, 21), tehran)  # Nowruz
    assert period.since == datetime(2026, 3, 20, 20, 30, tzinfo=UTC)
    assert period.until - period.since == timedelta(days=1)
    with pytest.raises(ValueError, match="after"):
        Period(date(2026, 3, 2), date(2026, 3, 1), tehran)
    with pytest.raises(ValueError, match="400"):
        Period(date(2025, 1, 1), date(2026, 3, 1), tehran)
