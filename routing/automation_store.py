"""What admins do to automation rules: create, change, enable, reorder and delete them, each
change kept in `automation_audit` (who, when, the rule before and after) and recorded as an
`automation.changed` event.

Units of work in the style of `routing.rules_store`: `fn(session, ...) -> (result, EventLog)`,
run and published by `Actions.run`. The engine (`routing.automation`) reads the rules afresh
in every unit of work, so a change here applies to the next message."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from routing.actions import Invalid, NotFound
from routing.automation import (
    AssignAgent,
    AssignTeam,
    CannedReply,
    ChangeLabels,
    LabelsAre,
    Notify,
    RuleSpec,
    TeamIs,
)
from routing.events import EventLog
from storage.models import (
    Agent,
    AutomationAudit,
    AutomationRule,
    CannedResponse,
    Label,
    Team,
)

EDITABLE = ("name", "trigger", "conditions", "actions", "enabled")


def rule_summary(rule: AutomationRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "trigger": rule.trigger,
        "conditions": list(rule.conditions or []),
        "actions": list(rule.actions or []),
        "position": rule.position,
        "enabled": rule.enabled,
        "created_by": rule.created_by,
        "updated_by": rule.updated_by,
        "created_at": rule.created_at.isoformat() if rule.created_at else None,
        "updated_at": rule.updated_at.isoformat() if rule.updated_at else None,
    }


def list_rules(session: Session) -> list[dict[str, Any]]:
    """Every rule, grouped by trigger, each trigger's in the order they run."""
    rows = session.scalars(
        select(AutomationRule).order_by(
            AutomationRule.trigger, AutomationRule.position, AutomationRule.id
        )
    )
    return [rule_summary(rule) for rule in rows]


def get_rule(session: Session, rule_id: int) -> dict[str, Any]:
    return rule_summary(_rule(session, rule_id))


def _rule(session: Session, rule_id: int) -> AutomationRule:
    rule = session.get(AutomationRule, rule_id)
    if rule is None:
        raise NotFound(f"automation rule {rule_id}")
    return rule


def check_references(session: Session, spec: RuleSpec) -> None:
    """The teams, agents, labels and canned responses the rule names exist (`Invalid`, naming
    the first that does not, otherwise)."""
    teams: list[tuple[str, int]] = []
    agents: list[tuple[str, int]] = []
    labels: list[tuple[str, str]] = []
    shortcuts: list[tuple[str, str]] = []
    for index, condition in enumerate(spec.conditions):
        where = f"conditions.{index}"
        if isinstance(condition, TeamIs):
            teams += [(f"{where}.team_ids", t) for t in condition.team_ids]
        elif isinstance(condition, LabelsAre):
            labels += [(where, n) for n in (*condition.include, *condition.exclude)]
    for index, action in enumerate(spec.actions):
        where = f"actions.{index}"
        if isinstance(action, AssignTeam):
            teams.append((f"{where}.team_id", action.team_id))
        elif isinstance(action, AssignAgent | Notify) and action.agent_id is not None:
            agents.append((f"{where}.agent_id", action.agent_id))
        elif isinstance(action, ChangeLabels):
            labels += [(f"{where}.labels", n) for n in action.labels]
        elif isinstance(action, CannedReply):
            shortcuts.append((f"{where}.shortcut", action.shortcut))
    _exist(session, teams, select(Team.id).where(Team.id.in_([v for _, v in teams])), "no team")
    _exist(
        session,
        agents,
        select(Agent.id).where(Agent.id.in_([v for _, v in agents]), Agent.active.is_(True)),
        "no active agent",
    )
    _exist(
        session,
        labels,
        select(Label.name).where(Label.name.in_([v for _, v in labels])),
        "no label",
    )
    _exist(
        session,
        shortcuts,
        select(CannedResponse.shortcut).where(
            CannedResponse.shortcut.in_([v for _, v in shortcuts])
        ),
        "no canned response with shortcut",
    )


def _exist(session: Session, named: Sequence[tuple[str, Any]], query: Any, what: str) -> None:
    if not named:
        return
    found = set(session.scalars(query))
    for where, value in named:
        if value not in found:
            raise Invalid(f"{where}: {what} {value!r}")


def _validated(data: dict[str, Any]) -> RuleSpec:
    try:
        return RuleSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        where = ".".join(str(part) for part in first["loc"])
        raise Invalid(f"{where}: {message}" if where else message) from None


def _next_position(session: Session, trigger: str) -> int:
    last = session.scalar(
        select(func.max(AutomationRule.position)).where(AutomationRule.trigger == trigger)
    )
    return (last or 0) + 1


def _audit(
    session: Session,
    log: EventLog,
    change: str,
    rule_id: int | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    actor_agent_id: int,
    now: datetime,
) -> None:
    session.add(
        AutomationAudit(
            rule_id=rule_id,
            agent_id=actor_agent_id,
            change=change,
            before=before,
            after=after,
            created_at=now,
        )
    )
    log.add(
        "automation.changed",
        None,
        {"change": change, "rule_id": rule_id, "before": before, "after": after},
        actor_agent_id=actor_agent_id,
    )


def create_rule(
    session: Session, spec: RuleSpec, actor_agent_id: int, now: datetime
) -> tuple[dict[str, Any], EventLog]:
    """A new rule, run after the other rules of its trigger."""
    log = EventLog(session)
    check_references(session, spec)
    stored = spec.stored()
    rule = AutomationRule(
        name=stored["name"],
        trigger=stored["trigger"],
        conditions=stored["conditions"],
        actions=stored["actions"],
        enabled=stored["enabled"],
        position=_next_position(session, spec.trigger),
        created_by=actor_agent_id,
        updated_by=actor_agent_id,
        created_at=now,
        updated_at=now,
    )
    session.add(rule)
    session.flush()
    summary = rule_summary(rule)
    _audit(session, log, "created", rule.id, None, summary, actor_agent_id, now)
    return summary, log


def update_rule(
    session: Session, rule_id: int, changes: dict[str, Any], actor_agent_id: int, now: datetime
) -> tuple[dict[str, Any], EventLog]:
    """Change what `changes` names (name, trigger, conditions, actions, enabled), checked as a
    whole rule; a rule moved to another trigger runs after that trigger's rules."""
    log = EventLog(session)
    rule = _rule(session, rule_id)
    before = rule_summary(rule)
    if unknown := sorted(set(changes) - set(EDITABLE)):
        raise Invalid(f"{unknown[0]}: not a field of a rule")
    spec = _validated({key: before[key] for key in EDITABLE} | changes)
    check_references(session, spec)
    stored = spec.stored()
    if spec.trigger != rule.trigger:
        rule.position = _next_position(session, spec.trigger)
    rule.name, rule.trigger = stored["name"], stored["trigger"]
    rule.conditions, rule.actions = stored["conditions"], stored["actions"]
    rule.enabled = stored["enabled"]
    after = {**before, **{key: stored[key] for key in EDITABLE}, "position": rule.position}
    if after == before:
        return before, log  # nothing changed: nothing to audit
    rule.updated_by, rule.updated_at = actor_agent_id, now
    session.flush()
    after = rule_summary(rule)
    _audit(session, log, "updated", rule.id, before, after, actor_agent_id, now)
    return after, log


def delete_rule(
    session: Session, rule_id: int, actor_agent_id: int, now: datetime
) -> tuple[None, EventLog]:
    log = EventLog(session)
    rule = _rule(session, rule_id)
    before = rule_summary(rule)
    session.delete(rule)
    session.flush()
    _audit(session, log, "deleted", rule_id, before, None, actor_agent_id, now)
    return None, log


def reorder_rules(
    session: Session, trigger: str, rule_ids: Sequence[int], actor_agent_id: int, now: datetime
) -> tuple[list[dict[str, Any]], EventLog]:
    """Put the rules of one trigger in exactly this order: each of its rules once (`Invalid`
    otherwise). Returns every rule, as `list_rules`."""
    log = EventLog(session)
    rules = {
        rule.id: rule
        for rule in session.scalars(
            select(AutomationRule)
            .where(AutomationRule.trigger == trigger)
            .order_by(AutomationRule.position, AutomationRule.id)
        )
    }
    if len(set(rule_ids)) != len(rule_ids):
        raise Invalid("ids: each rule must appear once")
    if missing := [i for i in rule_ids if i not in rules]:
        raise Invalid(f"ids: {missing[0]} is no {trigger} rule")
    if left := [i for i in rules if i not in rule_ids]:
        raise Invalid(f"ids: rule {left[0]} is missing; give every {trigger} rule's id")
    before = list(rules)
    if before != list(rule_ids):
        for position, rule_id in enumerate(rule_ids, start=1):
            rules[rule_id].position = position
            rules[rule_id].updated_by, rules[rule_id].updated_at = actor_agent_id, now
        session.flush()
        _audit(
            session,
            log,
            "reordered",
            None,
            {"trigger": trigger, "ids": before},
            {"trigger": trigger, "ids": list(rule_ids)},
            actor_agent_id,
            now,
        )
    return list_rules(session), log


def list_audit(
    session: Session, *, limit: int = 50, before_id: int | None = None, rule_id: int | None = None
) -> list[dict[str, Any]]:
    """The newest changes first (who, when, what), paged by `before_id`."""
    query = (
        select(AutomationAudit, Agent.name, Agent.email)
        .outerjoin(Agent, Agent.id == AutomationAudit.agent_id)
        .order_by(AutomationAudit.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(AutomationAudit.id < before_id)
    if rule_id is not None:
        query = query.where(AutomationAudit.rule_id == rule_id)
    return [
        {
            "id": row.id,
            "rule_id": row.rule_id,
            "change": row.change,
            "agent": {"id": row.agent_id, "name": name, "email": email}
            if row.agent_id is not None
            else None,
            "before": row.before,
            "after": row.after,
            "created_at": row.created_at.isoformat(),
        }
        for row, name, email in session.execute(query)
    ]
