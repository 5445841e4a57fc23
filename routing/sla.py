"""SLA clocks: which policy a conversation falls under, and its first-response, next-response
and resolution deadlines, kept up to date by a reaction inside every unit of work.

Clocks count business time of the conversation's team calendar. They pause while the
conversation waits on the customer (pending) or is snoozed, and go on with the business time
that was left when it opens again. `sla_state` keeps, per running clock, its target
(`targets`), the moment its warning is due (`warn_at`), and while paused the business seconds
left (`remaining`) or, for a clock already past due, its deadline (`overdue`).
`Conversation.sla_due_at` is the next moment the watcher (`routing.sla_watch`) has something to
do: a warning to send or a deadline to check."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.business_hours import BusinessCalendar, team_calendar
from routing.config import RoutingConfig, SlaPolicyConfig
from routing.events import EventLog, Happened
from storage.models import (
    Conversation,
    ConversationLabel,
    CustomerLabel,
    Label,
    Team,
    utcnow,
)

logger = logging.getLogger(__name__)

METRICS = ("first_response", "next_response", "resolution")
PAUSED = ("pending", "snoozed")
_WATCHED = frozenset(
    {
        "conversation.created",
        "conversation.reopened",
        "conversation.status_changed",
        "conversation.team_changed",
        "conversation.labels_changed",
        "conversation.priority_changed",
        "message.created",
    }
)


def due_column(metric: str) -> str:
    return f"{metric}_due_at"


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def pick_policy(
    policies: Sequence[SlaPolicyConfig],
    *,
    channel: str,
    team: str | None,
    labels: Iterable[str],
    priority: str,
) -> SlaPolicyConfig | None:
    """The first policy whose every condition holds (a pure function of the conversation)."""
    held = set(labels)
    for policy in policies:
        if policy.channels and channel not in policy.channels:
            continue
        if policy.teams and team not in policy.teams:
            continue
        if policy.customer_labels and not held.intersection(policy.customer_labels):
            continue
        if policy.priorities and priority not in policy.priorities:
            continue
        return policy
    return None


class Clocks:
    """The clocks of one conversation inside one unit of work."""

    def __init__(
        self,
        conversation: Conversation,
        policy: SlaPolicyConfig | None,
        calendar: BusinessCalendar,
    ) -> None:
        self.conversation = conversation
        self.policy = policy
        self.calendar = calendar
        state = conversation.sla_state if isinstance(conversation.sla_state, dict) else {}
        self.targets: dict[str, float] = dict(state.get("targets", {}))
        self.warn_at: dict[str, str] = dict(state.get("warn_at", {}))
        self.remaining: dict[str, float] = dict(state.get("remaining", {}))
        self.overdue: dict[str, str] = dict(state.get("overdue", {}))
        self.breached: dict[str, str] = dict(state.get("breached", {}))
        self.warned: list[str] = list(state.get("warned", []))
        self.warn_from: dict[str, str] = dict(state.get("warn_from", {}))
        """When each running clock enters its warning window (kept after the warning: the inbox
        shows the clock amber from then on)."""

    @property
    def paused(self) -> bool:
        return self.conversation.sla_paused_at is not None

    def due(self, metric: str) -> datetime | None:
        value: datetime | None = getattr(self.conversation, due_column(metric))
        return value

    def _set_due(self, metric: str, value: datetime | None) -> None:
        setattr(self.conversation, due_column(metric), value)

    def _target(self, metric: str) -> float | None:
        minutes = getattr(self.policy, metric) if self.policy is not None else None
        return None if minutes is None else float(minutes) * 60

    def _run(self, metric: str, seconds: float, now: datetime, *, total: float) -> None:
        """Run `metric` with `seconds` of business time left out of `total`."""
        assert self.policy is not None
        try:
            due = self.calendar.add_business_seconds(now, seconds)
        except ValueError:  # a calendar that never opens: no deadline can be met or missed
            self.stop(metric)
            return
        self._set_due(metric, due)
        self.targets[metric] = total
        warning = self.policy.warning_seconds(total)
        if seconds > warning:
            warn_at = _iso(self.calendar.add_business_seconds(now, seconds - warning))
            self.warn_at[metric] = self.warn_from[metric] = warn_at
        else:  # already inside the warning window
            self.warn_from[metric] = _iso(now)
            if seconds > 0 and metric not in self.warned:
                self.warn_at[metric] = _iso(now)
        if self.paused:
            self._pause_one(metric, now)

    def start(self, metric: str, now: datetime) -> None:
        """Start `metric` afresh (a no-op when the policy has no target for it)."""
        target = self._target(metric)
        self.stop(metric)
        if target is not None:
            self._run(metric, target, now, total=target)

    def stop(self, metric: str) -> None:
        self._set_due(metric, None)
        for kept in (
            self.targets,
            self.warn_at,
            self.warn_from,
            self.remaining,
            self.overdue,
            self.breached,
        ):
            kept.pop(metric, None)
        if metric in self.warned:
            self.warned.remove(metric)

    def running(self) -> list[str]:
        return [m for m in METRICS if self.due(m) is not None or m in self.remaining]

    def _pause_one(self, metric: str, now: datetime) -> None:
        due = self.due(metric)
        if due is None:
            return
        if due <= now:
            self.overdue[metric] = _iso(due)
        else:
            self.remaining[metric] = self.calendar.business_seconds(now, due)
        self._set_due(metric, None)
        self.warn_at.pop(metric, None)
        if due > now:
            self.warn_from.pop(metric, None)

    def pause(self, now: datetime) -> None:
        if self.paused:
            return
        self.conversation.sla_paused_at = now
        for metric in METRICS:
            self._pause_one(metric, now)

    def resume(self, now: datetime) -> None:
        if not self.paused:
            return
        self.conversation.sla_paused_at = None
        for metric, due in self.overdue.items():
            self._set_due(metric, _parse(due))
        self.overdue.clear()
        remaining, self.remaining = self.remaining, {}
        for metric, seconds in remaining.items():
            self._run(metric, seconds, now, total=self.targets.get(metric, seconds))

    def repolicy(self, policy: SlaPolicyConfig | None, now: datetime) -> None:
        """Move the running clocks to another policy, keeping the business time they have
        used: a clock with 1h used of a 4h target has 1h used of the new policy's target."""
        if policy is self.policy or (
            policy is not None and self.policy is not None and policy.name == self.policy.name
        ):
            self.policy = policy
            return
        was_paused = self.paused
        self.resume(now)  # measure every clock as running, then pause again below
        used: dict[str, float] = {}
        for metric in self.running():
            due = self.due(metric)
            assert due is not None
            left = self.calendar.business_seconds(now, due)
            if due <= now:
                left = -self.calendar.business_seconds(due, now)
            used[metric] = self.targets.get(metric, 0.0) - left
        self.policy = policy
        self.conversation.sla_policy = policy.name if policy else None
        for metric in METRICS:
            self.stop(metric)
        for metric, spent in used.items():
            target = self._target(metric)
            if target is not None:
                self._run(metric, max(target - spent, 0.0), now, total=target)
        if was_paused:
            self.pause(now)

    def save(self) -> None:
        """Write the state back and work out when the watcher must look next."""
        conversation = self.conversation
        state = {
            "targets": self.targets,
            "warn_at": self.warn_at,
            "remaining": self.remaining,
            "overdue": self.overdue,
            "breached": self.breached,
            "warned": self.warned,
            "warn_from": self.warn_from,
        }
        if state != conversation.sla_state:  # no UPDATE for a message that changed nothing
            conversation.sla_state = state
        look = next_look(self)
        if look != conversation.sla_due_at:
            conversation.sla_due_at = look


def next_look(clocks: Clocks) -> datetime | None:
    """The earliest pending warning or deadline not yet recorded as breached."""
    moments: list[datetime] = []
    for metric in METRICS:
        due = clocks.due(metric)
        if due is None:
            continue
        if metric in clocks.warn_at:
            moments.append(_parse(clocks.warn_at[metric]))
        if clocks.breached.get(metric) != _iso(due):
            moments.append(due)
    return min(moments, default=None)


class SlaReaction:
    """Starts, pauses, resumes and stops the clocks as conversations change. Does nothing at all
    (no query) when no policy is configured."""

    def __init__(self, config: RoutingConfig, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self._policies = config.sla.policies
        self._clock = clock
        self._labels = any(policy.customer_labels for policy in self._policies)
        self._teams = any(policy.teams for policy in self._policies)

    def __call__(self, session: Session, log: EventLog, happened: Sequence[Happened]) -> None:
        if not self._policies:
            return
        relevant = [
            h
            for h in happened
            if h.type in _WATCHED and h.conversation_id is not None and _moves_clocks(h)
        ]
        relabelled = {
            h.customer_id
            for h in happened
            if h.type == "customer.updated" and h.customer_id is not None and self._labels
        }
        if not relevant and not relabelled:
            return
        now = self._clock()
        by_conversation: dict[int, list[Happened]] = {}
        for event in relevant:
            assert event.conversation_id is not None
            by_conversation.setdefault(event.conversation_id, []).append(event)
        if relabelled:  # a customer's labels (VIP) choose the policy of their open conversations
            unresolved = session.execute(
                select(Conversation.id, Conversation.customer_id).where(
                    Conversation.customer_id.in_(relabelled), Conversation.status != "resolved"
                )
            )
            for conversation_id, customer_id in unresolved:
                by_conversation.setdefault(conversation_id, []).append(
                    Happened(
                        "conversation.labels_changed", conversation_id, customer_id, None, {}, now
                    )
                )
        try:
            with session.begin_nested():  # one savepoint for the batch: cheap, and all or none
                for conversation_id, events in by_conversation.items():
                    conversation = session.get(Conversation, conversation_id)
                    if conversation is not None:
                        self._apply(session, conversation, events, now)
        except Exception:  # the clocks must never cost the messages that moved them
            logger.exception("SLA clocks of conversations %s not updated", list(by_conversation))

    def _team_name(self, session: Session, team_id: int | None) -> str | None:
        if team_id is None:
            return None
        return session.scalar(select(Team.name).where(Team.id == team_id))

    def _labels_of(self, session: Session, conversation: Conversation) -> set[str]:
        customer = select(Label.name).join(CustomerLabel, CustomerLabel.label_id == Label.id)
        on_conversation = select(Label.name).join(
            ConversationLabel, ConversationLabel.label_id == Label.id
        )
        return set(
            session.scalars(customer.where(CustomerLabel.customer_id == conversation.customer_id))
        ) | set(
            session.scalars(
                on_conversation.where(ConversationLabel.conversation_id == conversation.id)
            )
        )

    def policy_for(self, session: Session, conversation: Conversation) -> SlaPolicyConfig | None:
        return pick_policy(
            self._policies,
            channel=conversation.channel,
            team=self._team_name(session, conversation.team_id) if self._teams else None,
            labels=self._labels_of(session, conversation) if self._labels else (),
            priority=conversation.priority,
        )

    def _apply(
        self, session: Session, conversation: Conversation, events: list[Happened], now: datetime
    ) -> None:
        current = next((p for p in self._policies if p.name == conversation.sla_policy), None)
        calendar = team_calendar(session, self.config, conversation.team_id)
        clocks = Clocks(conversation, current, calendar)
        for event in events:
            self._handle(session, clocks, event, now)
        clocks.save()

    def _handle(self, session: Session, clocks: Clocks, event: Happened, now: datetime) -> None:
        """What one event does to the clocks."""
        _handle(self, session, clocks, event, now)


def _handle(
    reaction: SlaReaction, session: Session, clocks: Clocks, event: Happened, now: datetime
) -> None:
    conversation = clocks.conversation
    data = event.data
    if event.type == "conversation.created":
        policy = reaction.policy_for(session, conversation)
        clocks.policy = policy
        conversation.sla_policy = policy.name if policy else None
        if conversation.status != "bot":  # with the bot, the clocks start at the handover
            _start_all(clocks, now)
        if conversation.status in PAUSED:
            clocks.pause(now)
    elif event.type in (
        "conversation.team_changed",
        "conversation.labels_changed",
        "conversation.priority_changed",
    ):
        if event.type == "conversation.team_changed":
            clocks.calendar = team_calendar(session, reaction.config, conversation.team_id)
        policy = reaction.policy_for(session, conversation)
        if conversation.sla_policy is None and policy is not None and not clocks.running():
            clocks.policy = policy
            conversation.sla_policy = policy.name
            if conversation.status not in ("bot", "resolved"):
                _start_all(clocks, now)
                if conversation.status in PAUSED:
                    clocks.pause(now)
        else:
            clocks.repolicy(policy, now)
    elif event.type == "conversation.status_changed":
        _status(clocks, str(data.get("from")), str(data.get("to")), now)
    elif event.type == "conversation.reopened":
        if clocks.paused:
            clocks.resume(now)
        else:  # reopened after resolution: the customer wrote again
            clocks.start("resolution", now)
            metric = "first_response" if conversation.first_response_at is None else None
            clocks.start(metric or "next_response", now)
    elif event.type == "message.created":
        _message(clocks, data.get("message"), now)


def _start_all(clocks: Clocks, now: datetime) -> None:
    if clocks.conversation.first_response_at is None:
        clocks.start("first_response", now)
    clocks.start("resolution", now)


def _status(clocks: Clocks, old: str, new: str, now: datetime) -> None:
    if new in PAUSED:
        clocks.pause(now)
    elif new == "resolved":
        clocks.resume(now)
        for metric in METRICS:
            clocks.stop(metric)
        clocks.conversation.sla_paused_at = None
    elif new == "open":
        if old in PAUSED:
            clocks.resume(now)
        elif old == "bot" and not clocks.running():  # handed over to the agents
            _start_all(clocks, now)
        elif old == "resolved" and not clocks.running():  # an agent reopened it
            clocks.start("resolution", now)


def _message(clocks: Clocks, message: Any, now: datetime) -> None:
    if not isinstance(message, dict):
        return
    conversation = clocks.conversation
    if message.get("direction") == "in":
        if (
            conversation.first_response_at is not None
            and conversation.status not in ("bot", "resolved")
            and clocks.due("next_response") is None
            and "next_response" not in clocks.remaining
            and "next_response" not in clocks.overdue
        ):
            clocks.start("next_response", now)
    elif (
        message.get("direction") == "out"
        and message.get("author_kind") == "agent"
        and not message.get("private")
    ):
        clocks.stop("first_response")
        clocks.stop("next_response")


def _moves_clocks(event: Happened) -> bool:
    """Bot replies, notes' echoes and the like cannot change a clock: skip them unread."""
    if event.type != "message.created":
        return True
    message = event.data.get("message")
    if not isinstance(message, dict):
        return False
    return message.get("direction") == "in" or message.get("author_kind") == "agent"
