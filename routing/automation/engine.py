"""The automation reaction: which events trigger rules, the enabled rules read in one query,
and each rule applied once per conversation and trigger, in a savepoint of its own."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.automation.actions import act
from routing.automation.base import MARK, AutomationError, Trigger
from routing.automation.conditions import holds
from routing.automation.run import Run
from routing.automation.spec import LoadedRule, loaded
from routing.config import RoutingConfig
from routing.events import EventLog, Happened, Reaction
from storage.models import AutomationRule, utcnow

logger = logging.getLogger(__name__)

FIRED = "pishkhan.automation.fired"
"""`Session.info` key: the (rule, conversation, trigger) that fired in this unit of work."""


def trigger_of(event: Happened) -> Trigger | None:
    """The trigger an event is, or `None`: events of rules, events outside a conversation and
    messages other than a customer's match nothing."""
    if event.conversation_id is None or MARK in event.data:
        return None
    if event.type == "message.created":
        message = event.data.get("message")
        if not isinstance(message, dict):
            return None
        inbound = message.get("direction") == "in" and message.get("author_kind") == "customer"
        return "message.created" if inbound else None
    if event.type in ("conversation.created", "conversation.status_changed", "sla.warning"):
        return event.type  # type: ignore[return-value]
    return None


def load_rules(session: Session, triggers: set[str]) -> dict[str, list[LoadedRule]]:
    """One query: the enabled rules of these triggers, each trigger's in position order."""
    rows = session.execute(
        select(AutomationRule)
        .where(AutomationRule.enabled.is_(True), AutomationRule.trigger.in_(sorted(triggers)))
        .order_by(AutomationRule.trigger, AutomationRule.position, AutomationRule.id)
    ).scalars()
    found: dict[str, list[LoadedRule]] = {}
    for row in rows:
        found.setdefault(row.trigger, []).append(loaded(row))
    return found


def automation(
    config: RoutingConfig,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> Reaction:
    """The reaction that runs the admins' automation rules (see `routing.automation`)."""

    def react(session: Session, log: EventLog, events: Sequence[Happened]) -> None:
        triggered = [(e, t) for e in events if (t := trigger_of(e)) is not None]
        if not triggered:
            return
        rules = load_rules(session, {t for _, t in triggered})
        if not rules:
            return
        session.flush()  # the conversations are read afresh below: write pending changes first
        fired: set[tuple[int, int, str]] = session.info.setdefault(FIRED, set())
        run = Run(session, log, config, clock(), events)
        for event, trigger in triggered:
            assert event.conversation_id is not None
            for rule in rules.get(trigger, ()):
                key = (rule.id, event.conversation_id, trigger)
                if key not in fired:
                    fired.add(key)
                    apply(run, rule, event, trigger)

    return react


def apply(run: Run, rule: LoadedRule, event: Happened, trigger: str) -> None:
    """Evaluate and run one rule in a savepoint of its own; a failure is recorded, not
    raised."""
    assert event.conversation_id is not None
    conversation = run.conversation(event.conversation_id)
    if conversation is None:
        return
    checkpoint = run.log.checkpoint()
    try:
        if rule.spec is None:
            raise AutomationError(rule.problem)
        if not all(holds(run, c, conversation, event) for c in rule.spec.conditions):
            return  # conditions only read: no savepoint needed
        with run.session.begin_nested():
            for action in rule.spec.actions:
                act(run, action, conversation, rule_name=rule.spec.name)
            run.session.flush()
    except Exception as exc:
        run.log.discard_since(checkpoint)
        run.forget_conversations()  # rolled back: read them again
        logger.warning("automation rule %s failed: %s", rule.id, exc)
        again = run.conversation(event.conversation_id)
        run.log.add(
            "automation.failed",
            again,
            {
                MARK: rule.id,
                "rule": rule.spec.name if rule.spec else "",
                "trigger": trigger,
                "error": str(exc) or type(exc).__name__,
            },
        )
        return
    for data in run.log.data_since(checkpoint):
        data[MARK] = rule.id
    if run.log.checkpoint() > checkpoint:
        logger.info("automation rule %s ran on conversation %s", rule.id, conversation.id)
