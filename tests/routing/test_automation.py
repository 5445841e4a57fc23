"""Automation rules on SQLite and PostgreSQL, driven through the real router and agent actions
with the reaction installed: conditions, actions, order, no loops, a failing rule recorded
without losing the message, and an audit row for every change an admin makes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from channels.base import Inbound, Sender
from inbox import accounts
from inbox.accounts import create_agent
from routing import automation_store
from routing.actions import Actions, Invalid, conversation_labels
from routing.automation import RuleSpec, automation
from routing.config import RoutingConfig
from routing.events import REACTIONS, EventLog, Published
from routing.router import Routed, Router
from storage.config import QueueConfig
from storage.db import SessionFactory
from storage.models import (
    AutomationAudit,
    CannedResponse,
    Conversation,
    Customer,
    CustomerLabel,
    Event,
    Label,
    Message,
    Notification,
    Team,
    TeamMember,
)
from storage.queue.sql import SqlQueue
from storage.work import UnitOfWork

_ids = itertools.count(1)
MONDAY_NOON_TEHRAN = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = MONDAY_NOON_TEHRAN

    def __call__(self) -> datetime:
        return self.now


class Desk:
    """The router and agent actions sharing one unit-of-work runner with the rules installed."""

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions
        self.clock = Clock()
        self.events: list[Published] = []
        self.work = UnitOfWork.for_sessions(sessions)
        self.work.session_info[REACTIONS] = (automation(RoutingConfig(), clock=self.clock),)
        self.router = Router(
            sessions, RoutingConfig(), channel_teams={}, notify=self.record, work=self.work
        )
        self.actions = Actions(
            sessions,
            SqlQueue(sessions, QueueConfig()),
            self.record,
            clock=self.clock,
            work=self.work,
        )
        self.admin = 0

    async def record(self, events: Sequence[Published]) -> None:
        self.events.extend(events)

    async def agent(self, email: str, *, online: bool = True, role: str = "agent") -> int:
        async with self.sessions.begin() as session:
            agent = await create_agent(
                session, email=email, name=email.split("@")[0], password="x" * 12, role=role
            )
        if online:
            await self.actions.set_presence(agent.id, "online")
        return agent.id

    async def team(self, name: str, members: dict[int, bool]) -> int:
        async with self.sessions.begin() as session:
            team = Team(name=name)
            session.add(team)
            await session.flush()
            session.add_all(
                TeamMember(team_id=team.id, agent_id=a, lead=lead) for a, lead in members.items()
            )
            return team.id

    async def labels(self, *names: str) -> None:
        async with self.sessions.begin() as session:
            session.add_all(Label(name=name) for name in names)

    async def rule(self, trigger: str, conditions: list[Any], actions: list[Any]) -> int:
        spec = RuleSpec.model_validate(
            {"name": f"rule {next(_ids)}", "trigger": trigger, "conditions": conditions}
            | {"actions": actions}
        )
        summary = await self.actions.run(
            automation_store.create_rule, spec, self.admin, self.clock()
        )
        return int(summary["id"])

    async def write(
        self, text: str, *, who: str = "reza@example.com", channel: str = "contact"
    ) -> Routed:
        return await self.router.route(
            Inbound(
                channel=channel,
                external_id=f"m{next(_ids)}",
                sender=Sender(external_id=who, name="رضا", email=who),
                text=text,
            )
        )

    async def conversation(self, conversation_id: int) -> Conversation:
        async with self.sessions() as session:
            found = await session.get(Conversation, conversation_id)
            assert found is not None
            return found

    async def labels_of(self, conversation_id: int) -> list[str]:
        async with self.sessions() as session:
            return await session.run_sync(conversation_labels, conversation_id)

    async def stored_events(self, conversation_id: int) -> list[Event]:
        async with self.sessions() as session:
            return list(
                await session.scalars(
                    select(Event).where(Event.conversation_id == conversation_id).order_by(Event.id)
                )
            )


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its real cost takes 0.2 s a hash; what these tests check does not depend on it."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", hasher)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", hasher.hash("not a password anyone has"))


@pytest.fixture
async def desk(sessions: SessionFactory) -> Any:
    desk = Desk(sessions)
    await desk.router.start()
    desk.admin = await desk.agent("admin@example.com", online=False, role="admin")
    yield desk
    await desk.work.close()


def label(name: str) -> dict[str, Any]:
    return {"type": "add_labels", "labels": [name]}


async def test_each_condition_decides_whether_its_rule_runs(desk: Desk) -> None:
    sales = await desk.team("فروش", {})
    await desk.labels("vip", "c-channel", "c-text", "c-no-text", "c-cust", "c-attr", "c-attr-in")
    await desk.labels("c-prio", "c-status", "c-no-team", "c-open", "c-closed", "c-other-channel")
    await desk.labels("c-has-vip", "c-no-vip")
    await desk.write("سلام", who="sara@example.com")  # the customer exists, then gets a label
    async with desk.sessions.begin() as session:
        customer = await session.scalar(select(Customer).where(Customer.name == "رضا"))
        assert customer is not None
        customer.attributes = {"tier": "VIP", "plans": ["طلایی", "نقره‌ای"]}
        vip = await session.scalar(select(Label.id).where(Label.name == "vip"))
        session.add(CustomerLabel(customer_id=customer.id, label_id=vip))
    rules: list[tuple[list[Any], str]] = [
        ([{"type": "channel", "values": ["contact"]}], "c-channel"),
        ([{"type": "channel", "values": ["telegram"]}], "c-other-channel"),
        # Written with Arabic letters, matched after Persian normalization.
        ([{"type": "text", "words": ["قيمت", "price"]}], "c-text"),
        ([{"type": "text", "words": ["مرجوعی"]}], "c-no-text"),
        ([{"type": "customer_labels", "include": ["vip"]}], "c-cust"),
        ([{"type": "attribute", "key": "tier", "value": "vip"}], "c-attr"),
        ([{"type": "attribute", "key": "plans", "op": "contains", "value": "طلا"}], "c-attr-in"),
        ([{"type": "priority", "values": ["normal"]}], "c-prio"),
        ([{"type": "status", "values": ["open"]}], "c-status"),
        ([{"type": "team", "team_ids": [sales]}], "c-no-team"),
        ([{"type": "business_hours", "open": True}], "c-open"),
        ([{"type": "business_hours", "open": False}], "c-closed"),
        ([{"type": "labels", "include": ["c-channel"]}], "c-has-vip"),
        ([{"type": "labels", "exclude": ["c-channel"]}], "c-no-vip"),
    ]
    for conditions, name in rules:
        await desk.rule("message.created", conditions, [label(name)])

    routed = await desk.write("قیمت این کالا چند است؟", who="sara@example.com")
    assert routed.conversation_id is not None
    held = ["c-channel", "c-text", "c-cust", "c-attr", "c-attr-in", "c-prio", "c-status"]
    assert await desk.labels_of(routed.conversation_id) == sorted([*held, "c-open", "c-has-vip"])

    # At night in Tehran, and for a customer without the label or attributes.
    desk.clock.now = MONDAY_NOON_TEHRAN + timedelta(hours=11)
    other = await desk.write("hello, what is the PRICE?", who="ali@example.com")
    assert other.conversation_id is not None
    assert await desk.labels_of(other.conversation_id) == sorted(
        ["c-channel", "c-text", "c-prio", "c-status", "c-closed", "c-has-vip"]
    )


async def test_a_vip_message_becomes_urgent_and_goes_to_the_vip_team(desk: Desk) -> None:
    busy = await desk.agent("busy@example.com")
    vip_agent = await desk.agent("maryam@example.com")
    vips = await desk.team("مشتریان ویژه", {vip_agent: False})
    await desk.labels("ویژه")
    first = await desk.write("سلام", who="sara@example.com")
    assert first.assignee_id == busy  # before the rule: anyone free
    await desk.rule(
        "message.created",
        [{"type": "attribute", "key": "tier", "value": "VIP"}],
        [
            {"type": "set_priority", "priority": "urgent"},
            {"type": "assign_team", "team_id": vips},
            label("ویژه"),
        ],
    )
    async with desk.sessions.begin() as session:
        customer = await session.scalar(select(Customer).where(Customer.name == "رضا"))
        assert customer is not None
        customer.attributes = {"tier": "vip"}
    desk.events.clear()
    routed = await desk.write("سفارش من کجاست؟", who="sara@example.com")
    assert routed.conversation_id == first.conversation_id
    conversation = await desk.conversation(first.conversation_id or 0)
    assert (conversation.priority, conversation.team_id) == ("urgent", vips)
    assert conversation.assignee_id == vip_agent
    assert await desk.labels_of(conversation.id) == ["ویژه"]
    by_rule = [e.type for e in desk.events if "rule_id" in e.data]
    assert by_rule == [
        "conversation.priority_changed",
        "conversation.team_changed",
        "conversation.assigned",
        "conversation.labels_changed",
    ]
    # The customer's own message is kept and published as usual.
    assert [e.type for e in desk.events][:1] == ["message.created"]


async def test_canned_reply_snooze_resolve_and_notifications(desk: Desk) -> None:
    lead = await desk.agent("lead@example.com", online=False)
    watcher = await desk.agent("watcher@example.com", online=False)
    team = await desk.team("پشتیبانی", {lead: True})
    async with desk.sessions.begin() as session:
        session.add(
            CannedResponse(
                shortcut="شب",
                text="پیام شما رسید؛ همکاران ما ساعت ۹ صبح پاسخ می‌دهند.",
            )
        )
    await desk.rule(
        "conversation.created",
        [{"type": "channel", "values": ["contact"]}],
        [
            {"type": "assign_team", "team_id": team},
            {"type": "canned_reply", "shortcut": "شب"},
            {"type": "notify", "to": "team_leads", "text": "گفتگوی تازه"},
            {"type": "notify", "to": "agent", "agent_id": watcher},
            {"type": "snooze", "minutes": 60},
        ],
    )
    routed = await desk.write("کسی هست؟")
    conversation = await desk.conversation(routed.conversation_id or 0)
    assert conversation.status == "snoozed"
    assert conversation.snoozed_until == MONDAY_NOON_TEHRAN + timedelta(minutes=60)
    async with desk.sessions() as session:
        replies = list(
            await session.scalars(
                select(Message).where(
                    Message.conversation_id == conversation.id, Message.direction == "out"
                )
            )
        )
        notes = list(await session.scalars(select(Notification).order_by(Notification.agent_id)))
    assert [(m.author_kind, m.delivery_status) for m in replies] == [("bot", "queued")]
    assert replies[0].text.startswith("پیام شما رسید")
    assert [(n.agent_id, n.kind, n.text) for n in notes] == [
        (lead, "automation", "گفتگوی تازه"),
        (watcher, "automation", notes[1].text),
    ]
    assert notes[1].text.startswith("rule ")  # no text given: the rule's name
    sent = [e for e in desk.events if e.type == "message.created" and e.data.get("deliver")]
    assert [e.data["message"]["id"] for e in sent] == [replies[0].id]
    # A status change an agent makes triggers rules; the one a rule makes does not.
    await desk.rule("conversation.status_changed", [], [{"type": "resolve"}])
    await desk.actions.set_status(conversation.id, "open", actor_agent_id=lead)
    assert (await desk.conversation(conversation.id)).status == "resolved"


async def test_rules_run_in_position_order_and_reordering_changes_it(desk: Desk) -> None:
    await desk.labels("اول", "دوم")
    first = await desk.rule("message.created", [], [label("اول")])
    second = await desk.rule(
        "message.created", [{"type": "labels", "exclude": ["اول"]}], [label("دوم")]
    )
    routed = await desk.write("سلام")
    assert await desk.labels_of(routed.conversation_id or 0) == ["اول"]

    await desk.actions.run(
        automation_store.reorder_rules,
        "message.created",
        [second, first],
        desk.admin,
        desk.clock(),
    )
    other = await desk.write("سلام", who="ali@example.com")
    assert await desk.labels_of(other.conversation_id or 0) == ["اول", "دوم"]


async def test_rules_cannot_loop(desk: Desk) -> None:
    agent = await desk.agent("agent@example.com")
    await desk.labels("برچسب")
    # Resolving snoozes, snoozing resolves: each status change a rule makes matches no rule.
    await desk.rule(
        "conversation.status_changed",
        [{"type": "status_to", "values": ["resolved"]}],
        [{"type": "snooze", "minutes": 30}],
    )
    await desk.rule(
        "conversation.status_changed",
        [{"type": "status_to", "values": ["snoozed"]}],
        [{"type": "resolve"}],
    )
    # A rule that labels on every message: its own label change triggers nothing.
    await desk.rule("message.created", [], [label("برچسب")])
    routed = await desk.write("سلام")
    await desk.actions.set_status(routed.conversation_id or 0, "resolved", actor_agent_id=agent)
    events = await desk.stored_events(routed.conversation_id or 0)
    changes = [(e.data["to"], "rule_id" in e.data) for e in events if "status" in e.type]
    assert changes == [("resolved", False), ("snoozed", True)]
    assert [e.type for e in events].count("conversation.labels_changed") == 1
    assert (await desk.conversation(routed.conversation_id or 0)).status == "snoozed"


async def test_a_failing_rule_is_recorded_and_the_message_and_other_rules_stay(
    desk: Desk,
) -> None:
    gone = await desk.agent("gone@example.com", online=False)
    await desk.labels("نیمه", "بعدی")
    broken = await desk.rule(
        "message.created", [], [label("نیمه"), {"type": "assign_agent", "agent_id": gone}]
    )
    await desk.rule("message.created", [], [label("بعدی")])
    await desk.actions.update_agent(gone, active=False, actor_agent_id=desk.admin)

    routed = await desk.write("سفارشم نرسیده")
    assert routed.message_id is not None and not routed.duplicate
    events = await desk.stored_events(routed.conversation_id or 0)
    failed = [e for e in events if e.type == "automation.failed"]
    assert [(e.data["rule_id"], e.data["trigger"]) for e in failed] == [(broken, "message.created")]
    assert f"agent {gone}" in failed[0].data["error"]
    # The broken rule's label was rolled back with it; the next rule ran.
    assert await desk.labels_of(routed.conversation_id or 0) == ["بعدی"]
    async with desk.sessions() as session:
        assert await session.get(Message, routed.message_id) is not None


def _warn(session: Session, conversation_id: int) -> tuple[None, EventLog]:
    """What the SLA watcher records before a deadline passes."""
    log = EventLog(session)
    conversation = session.get(Conversation, conversation_id)
    assert conversation is not None
    log.add(
        "sla.warning",
        conversation,
        {"metric": "first_response", "due_at": "2026-11-23T10:00:00+00:00", "policy": "عادی"},
    )
    return None, log


async def test_an_sla_warning_escalates_to_the_team_lead(desk: Desk) -> None:
    agent = await desk.agent("agent@example.com")
    lead = await desk.agent("lead@example.com")
    team = await desk.team("پشتیبانی", {agent: False, lead: True})
    await desk.rule(
        "sla.warning",
        [{"type": "sla_metric", "values": ["first_response"]}],
        [
            {"type": "assign_team_lead"},
            {"type": "set_priority", "priority": "high"},
            {"type": "notify", "to": "team_leads", "text": "نزدیک به نقض SLA"},
        ],
    )
    routed = await desk.write("سلام")
    await desk.actions.assign(
        routed.conversation_id or 0,
        actor_agent_id=desk.admin,
        agent_id=agent,
        team_id=team,
        set_team=True,
    )
    await desk.work.run(_warn, routed.conversation_id)
    await desk.work.run(_warn, routed.conversation_id)  # a second warning: same result
    conversation = await desk.conversation(routed.conversation_id or 0)
    assert (conversation.assignee_id, conversation.priority) == (lead, "high")
    async with desk.sessions() as session:
        texts = list(
            await session.scalars(
                select(Notification.text).where(
                    Notification.agent_id == lead, Notification.kind == "automation"
                )
            )
        )
    assert texts == ["نزدیک به نقض SLA", "نزدیک به نقض SLA"]


async def test_every_change_to_a_rule_is_audited(desk: Desk) -> None:
    await desk.labels("شکایت")
    rule_id = await desk.rule("message.created", [], [label("شکایت")])
    other = await desk.rule("message.created", [], [{"type": "set_priority", "priority": "high"}])
    now = desk.clock()
    await desk.actions.run(
        automation_store.update_rule, rule_id, {"enabled": False}, desk.admin, now
    )
    await desk.actions.run(
        automation_store.update_rule, rule_id, {"name": "شکایت‌ها"}, desk.admin, now
    )
    await desk.actions.run(
        automation_store.reorder_rules, "message.created", [other, rule_id], desk.admin, now
    )
    await desk.actions.run(automation_store.delete_rule, rule_id, desk.admin, now)

    routed = await desk.write("شکایت دارم")
    assert await desk.labels_of(routed.conversation_id or 0) == []
    async with desk.sessions() as session:
        audit = list(await session.scalars(select(AutomationAudit).order_by(AutomationAudit.id)))
        changed = list(
            await session.scalars(select(Event).where(Event.type == "automation.changed"))
        )
    assert [(a.change, a.rule_id, a.agent_id) for a in audit] == [
        ("created", rule_id, desk.admin),
        ("created", other, desk.admin),
        ("updated", rule_id, desk.admin),
        ("updated", rule_id, desk.admin),
        ("reordered", None, desk.admin),
        ("deleted", rule_id, desk.admin),
    ]
    assert audit[2].before is not None and audit[2].after is not None
    assert (audit[2].before["enabled"], audit[2].after["enabled"]) == (True, False)
    assert audit[3].after is not None and audit[3].after["name"] == "شکایت‌ها"
    assert audit[4].after == {"trigger": "message.created", "ids": [other, rule_id]}
    assert audit[5].after is None
    assert len(changed) == len(audit)


BAD_RULES: list[tuple[dict[str, Any], str]] = [
    ({"actions": [{"type": "assign_team", "team_id": 999}]}, "actions.0.team_id: no team"),
    ({"actions": [{"type": "assign_agent", "agent_id": 999}]}, "no active agent"),
    ({"actions": [{"type": "add_labels", "labels": ["ناموجود"]}]}, "no label 'ناموجود'"),
    ({"actions": [{"type": "canned_reply", "shortcut": "x"}]}, "no canned response"),
    (
        {"conditions": [{"type": "sla_metric", "values": ["resolution"]}]},
        "conditions.0: sla_metric applies only to sla.warning rules",
    ),
    ({"actions": [{"type": "explode"}]}, "actions.0"),
    ({"actions": []}, "actions: Tuple should have at least 1 item"),
]


async def test_bad_rules_are_refused_with_the_reason_and_the_rule_stays(desk: Desk) -> None:
    rule_id = await desk.rule("message.created", [], [{"type": "resolve"}])
    for rule, error in BAD_RULES:
        data = {"name": "بد", "trigger": "message.created", "actions": [label("x")]} | rule
        with pytest.raises(Invalid, match=error):
            await desk.actions.run(
                automation_store.update_rule, rule_id, data, desk.admin, desk.clock()
            )
    async with desk.sessions() as session:
        rules = await session.run_sync(automation_store.list_rules)
        audited = list(await session.scalars(select(AutomationAudit.change)))
    assert [(r["name"], r["actions"]) for r in rules] == [(rules[0]["name"], [{"type": "resolve"}])]
    assert audited == ["created"]


async def test_rules_cost_one_query_per_transaction_and_none_without_a_trigger(
    desk: Desk,
) -> None:
    agent = await desk.agent("agent@example.com")
    routed = await desk.write("سلام")
    reads: list[str] = []

    def count(state: Any) -> None:
        if "automation_rules" in str(state.statement):
            reads.append(str(state.statement))

    event.listen(Session, "do_orm_execute", count)
    try:
        await desk.actions.set_labels(
            routed.conversation_id or 0, add=["پیگیری"], remove=[], actor_agent_id=agent
        )
        await desk.actions.reply(routed.conversation_id or 0, agent, "در حال بررسی است")
        assert reads == []  # nothing a rule could match: no query at all
        await asyncio.gather(*(desk.write(f"پیام {n}", who=f"c{n}@example.com") for n in range(5)))
        assert len(reads) == 1  # five messages routed in one transaction: one query
    finally:
        event.remove(Session, "do_orm_execute", count)
