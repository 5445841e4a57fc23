"""Routing rules admins edit in the web app, stored in `routing_rules`, and what they do to the
router: config.yaml's rules are tried first, then these in `position` order.

Units of work in the style of `routing.admin_actions`: `fn(session, ...) -> (result, EventLog)`.
The router loads the enabled rules once per batch of messages in its own unit of work (one small
query however many messages the batch holds), so a change here steers the next batch, in every
router process, without any cache to invalidate."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from routing.actions import Invalid, NotFound
from routing.assignment import pick_team
from routing.config import RuleConfig
from routing.events import EventLog
from storage.models import RoutingRule, Team

_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Conditions:
    channels: tuple[str, ...] = ()
    language: str | None = None
    keywords: tuple[str, ...] = ()
    customer_labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredRules:
    """The enabled database rules, in order, as the policy sees them (team: the team's id)."""

    rules: tuple[RuleConfig, ...] = ()

    @property
    def need_labels(self) -> bool:
        return any(rule.customer_labels for rule in self.rules)

    def pick(
        self, *, channel: str, language: str, text: str, customer_labels: Iterable[str]
    ) -> int | None:
        found = pick_team(
            self.rules,
            channel=channel,
            language=language,
            text=text,
            customer_labels=customer_labels,
        )
        return int(found) if found is not None else None


_ENABLED = (
    select(
        RoutingRule.team_id,
        RoutingRule.channels,
        RoutingRule.language,
        RoutingRule.keywords,
        RoutingRule.customer_labels,
    )
    .where(RoutingRule.enabled.is_(True))
    .order_by(RoutingRule.position, RoutingRule.id)
)


def load_enabled(session: Session) -> StoredRules:
    """One query: the enabled rules in position order."""
    rows = session.execute(_ENABLED).all()
    return StoredRules(
        tuple(
            RuleConfig(
                team=str(row.team_id),
                channels=tuple(row.channels or ()),
                language=row.language if row.language in ("fa", "en") else None,  # type: ignore[arg-type]
                keywords=tuple(row.keywords or ()),
                customer_labels=tuple(row.customer_labels or ()),
            )
            for row in rows
        )
    )


def rule_summary(rule: RoutingRule, team_name: str | None) -> dict[str, Any]:
    return {
        "id": rule.id,
        "position": rule.position,
        "team_id": rule.team_id,
        "team": team_name,
        "channels": list(rule.channels or []),
        "language": rule.language,
        "keywords": list(rule.keywords or []),
        "customer_labels": list(rule.customer_labels or []),
        "enabled": rule.enabled,
        "created_by": rule.created_by,
        "updated_at": rule.updated_at.isoformat() if rule.updated_at else None,
        "configured": False,
    }


def list_rules(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(RoutingRule, Team.name)
        .join(Team, Team.id == RoutingRule.team_id)
        .order_by(RoutingRule.position, RoutingRule.id)
    ).all()
    return [rule_summary(rule, name) for rule, name in rows]


def _team_name(session: Session, team_id: int) -> str:
    name = session.scalar(select(Team.name).where(Team.id == team_id))
    if name is None:
        raise NotFound(f"team {team_id}")
    return name


def create_rule(
    session: Session,
    team_id: int,
    conditions: Conditions,
    enabled: bool,
    actor_agent_id: int,
    now: datetime,
) -> tuple[dict[str, Any], EventLog]:
    """A new rule, after every other database rule. An unknown team is `NotFound`."""
    log = EventLog(session)
    name = _team_name(session, team_id)
    last = session.scalar(select(func.max(RoutingRule.position)))
    rule = RoutingRule(
        position=(last or 0) + 1,
        team_id=team_id,
        channels=list(conditions.channels),
        language=conditions.language,
        keywords=list(conditions.keywords),
        customer_labels=list(conditions.customer_labels),
        enabled=enabled,
        created_by=actor_agent_id,
        created_at=now,
        updated_at=now,
    )
    session.add(rule)
    session.flush()
    summary = rule_summary(rule, name)
    log.add("routing_rule.created", None, {"rule": summary}, actor_agent_id=actor_agent_id)
    return summary, log


def update_rule(
    session: Session,
    rule_id: int,
    changes: dict[str, Any],
    actor_agent_id: int,
    now: datetime,
) -> tuple[dict[str, Any], EventLog]:
    """Change what `changes` names (team_id, channels, language, keywords, customer_labels,
    enabled); the rest stays."""
    log = EventLog(session)
    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound(f"routing rule {rule_id}")
    if "team_id" in changes:
        _team_name(session, changes["team_id"])
        rule.team_id = changes["team_id"]
    for key in ("channels", "keywords", "customer_labels"):
        if key in changes:
            setattr(rule, key, list(changes[key]))
    if "language" in changes:
        rule.language = changes["language"]
    if "enabled" in changes:
        rule.enabled = bool(changes["enabled"])
    rule.updated_at = now
    session.flush()
    summary = rule_summary(rule, _team_name(session, rule.team_id))
    log.add("routing_rule.updated", None, {"rule": summary}, actor_agent_id=actor_agent_id)
    return summary, log


def delete_rule(session: Session, rule_id: int, actor_agent_id: int) -> tuple[None, EventLog]:
    log = EventLog(session)
    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound(f"routing rule {rule_id}")
    session.delete(rule)
    log.add("routing_rule.deleted", None, {"id": rule_id}, actor_agent_id=actor_agent_id)
    return None, log


def reorder_rules(
    session: Session, rule_ids: Sequence[int], actor_agent_id: int, now: datetime
) -> tuple[list[dict[str, Any]], EventLog]:
    """Put the database rules in exactly this order: every rule once (`Invalid` otherwise)."""
    log = EventLog(session)
    rules = {rule.id: rule for rule in session.scalars(select(RoutingRule))}
    if len(set(rule_ids)) != len(rule_ids):
        raise Invalid("ids: each rule must appear once")
    if missing := [i for i in rule_ids if i not in rules]:
        raise NotFound(f"routing rule {missing[0]}")
    if left := sorted(set(rules) - set(rule_ids)):
        raise Invalid(f"ids: rule {left[0]} is missing; give every rule's id")
    for position, rule_id in enumerate(rule_ids, start=1):
        if rules[rule_id].position != position:
            rules[rule_id].position = position
            rules[rule_id].updated_at = now
    session.flush()
    log.add("routing_rule.reordered", None, {"ids": list(rule_ids)}, actor_agent_id=actor_agent_id)
    return list_rules(session), log


def rules_of_team(session: Session, team_id: int) -> int:
    """How many database rules send conversations to this team."""
    return session.scalar(select(func.count()).where(RoutingRule.team_id == team_id)) or 0
