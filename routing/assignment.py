"""Who gets a conversation: a pure policy over plain data, in DESIGN.md's order. No I/O here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bots.normalize import normalize
from routing.config import RuleConfig


@dataclass(frozen=True, slots=True)
class Candidate:
    """An agent as the policy sees them: presence, load and when they last got one."""

    id: int
    presence: str  # online | away | offline
    active: bool
    capacity: int
    open_count: int
    last_assigned_at: datetime | None
    team_ids: frozenset[int] = frozenset()

    @property
    def available(self) -> bool:
        """Takes new conversations: an active account, online, with a free slot."""
        return self.active and self.presence == "online" and self.open_count < self.capacity

    @property
    def keeps_assignments(self) -> bool:
        """Keeps what they already have: active and not signed off."""
        return self.active and self.presence != "offline"


@dataclass(frozen=True, slots=True)
class Decision:
    agent_id: int | None
    reason: str  # kept | owner | least_loaded | queued


def choose_agent(
    *,
    current_assignee: int | None,
    owner_id: int | None,
    team_id: int | None,
    candidates: Sequence[Candidate],
) -> Decision:
    """1. keep the current assignee; 2. the customer's owner; 3–4. the least-loaded available
    agent of the team (of everyone when there is no team or it has no members), ties to the
    longest idle;
    5. nobody: the conversation waits in the team's queue."""
    by_id = {candidate.id: candidate for candidate in candidates}
    current = by_id.get(current_assignee) if current_assignee is not None else None
    if current is not None and current.keeps_assignments:
        return Decision(current.id, "kept")
    owner = by_id.get(owner_id) if owner_id is not None else None
    if owner is not None and owner.available:
        return Decision(owner.id, "owner")
    # A team nobody belongs to cannot answer anyone: treat it as no team rather than let its
    # conversations wait forever.
    staffed = team_id is not None and any(team_id in c.team_ids for c in candidates)
    pool = [c for c in candidates if c.available and (not staffed or team_id in c.team_ids)]
    if not pool:
        return Decision(None, "queued")
    best = min(
        pool,
        key=lambda c: (
            c.open_count,
            c.last_assigned_at is not None,
            c.last_assigned_at or datetime.min,
            c.id,
        ),
    )
    return Decision(best.id, "least_loaded")


def pick_team(
    rules: Iterable[RuleConfig],
    *,
    channel: str,
    language: str,
    text: str,
    customer_labels: Iterable[str],
) -> str | None:
    """The team of the first rule whose conditions all hold, or `None`."""
    normalized = normalize(text)
    labels = set(customer_labels)
    for rule in rules:
        if rule.channels and channel not in rule.channels:
            continue
        if rule.language and rule.language != language:
            continue
        if rule.keywords and not any(normalize(k) in normalized for k in rule.keywords):
            continue
        if rule.customer_labels and not labels.intersection(rule.customer_labels):
            continue
        return rule.team
    return None
