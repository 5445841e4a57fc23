"""A rule's actions, run in the order given: what admins write, and doing each one. An action
that cannot be done now raises `AutomationError`, which fails its rule alone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator
from sqlalchemy import delete, select

from routing.actions import change_priority, conversation_labels, message_with_files
from routing.assignment import choose_agent
from routing.automation.base import AutomationError, Part, Priority, RowId, Word
from routing.automation.run import Run
from routing.dispatch import Roster, assign_waiting, set_assignee
from routing.events import conversation_summary
from routing.mentions import notify
from storage.models import (
    Agent,
    CannedResponse,
    Conversation,
    ConversationLabel,
    Label,
    Message,
    Team,
    TeamMember,
)


class AssignTeam(Part):
    """Move to the team; its agents' usual assignment picks who answers (the current assignee
    keeps it when they belong to the team)."""

    type: Literal["assign_team"]
    team_id: RowId


class AssignAgent(Part):
    type: Literal["assign_agent"]
    agent_id: RowId


class AssignTeamLead(Part):
    """Give it to a lead of the conversation's team (an online one first)."""

    type: Literal["assign_team_lead"]


class ChangeLabels(Part):
    type: Literal["add_labels", "remove_labels"]
    labels: Annotated[tuple[Word, ...], Field(min_length=1, max_length=20)]


class SetPriority(Part):
    type: Literal["set_priority"]
    priority: Priority


class CannedReply(Part):
    """Send a canned response (by shortcut) to the customer, as the bot."""

    type: Literal["canned_reply"]
    shortcut: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class Snooze(Part):
    type: Literal["snooze"]
    minutes: int = Field(ge=1, le=60 * 24 * 90)


class Resolve(Part):
    type: Literal["resolve"]


class Notify(Part):
    """A notification to one agent, the conversation's assignee, or its team's leads."""

    type: Literal["notify"]
    to: Literal["agent", "assignee", "team_leads"]
    agent_id: RowId | None = None
    text: Annotated[str, StringConstraints(max_length=500)] = ""

    @model_validator(mode="after")
    def _agent_when_needed(self) -> Notify:
        if (self.to == "agent") != (self.agent_id is not None):
            raise ValueError("agent_id: give it exactly when `to` is agent")
        return self


Action = Annotated[
    AssignTeam
    | AssignAgent
    | AssignTeamLead
    | ChangeLabels
    | SetPriority
    | CannedReply
    | Snooze
    | Resolve
    | Notify,
    Field(discriminator="type"),
]


def act(run: Run, action: Any, conversation: Conversation, *, rule_name: str) -> None:
    """Do one action of the rule named `rule_name` (a notification without text says it)."""
    match action:
        case AssignTeam(team_id=team_id):
            _assign_team(run, conversation, team_id)
        case AssignAgent(agent_id=agent_id):
            agent = run.session.get(Agent, agent_id)
            if agent is None or not agent.active:
                raise AutomationError(f"agent {agent_id} no longer exists or is inactive")
            _give(run, conversation, agent_id)
        case AssignTeamLead():
            _give(run, conversation, _team_lead(run, conversation))
        case ChangeLabels(type=kind, labels=labels):
            _change_labels(run, conversation, labels, add=kind == "add_labels")
        case SetPriority(priority=priority):
            change_priority(conversation, priority, run.log, actor_agent_id=None)
        case CannedReply(shortcut=shortcut):
            _canned_reply(run, conversation, shortcut)
        case Snooze(minutes=minutes):
            _set_status(run, conversation, "snoozed", run.now + timedelta(minutes=minutes))
        case Resolve():
            _set_status(run, conversation, "resolved", None)
        case Notify(to=to, agent_id=agent_id, text=text):
            for recipient in _recipients(run, conversation, to, agent_id):
                notify(
                    run.session,
                    run.log,
                    agent_id=recipient,
                    kind="automation",
                    conversation=conversation,
                    message_id=None,
                    actor_agent_id=None,
                    text=text or rule_name,
                    now=run.now,
                )
        case _:
            raise AssertionError(f"unknown action {action!r}")


def _assign_team(run: Run, conversation: Conversation, team_id: int) -> None:
    session, log = run.session, run.log
    if session.get(Team, team_id) is None:
        raise AutomationError(f"team {team_id} no longer exists")
    if conversation.team_id != team_id:
        previous = conversation.team_id
        conversation.team_id = team_id
        log.add(
            "conversation.team_changed",
            conversation,
            {
                "from": previous,
                "to": team_id,
                "conversation": conversation_summary(conversation),
            },
        )
    if conversation.status != "open":
        return  # the bot's, or not waiting for anyone: assigned when it opens
    members = set(session.scalars(select(TeamMember.agent_id).where(TeamMember.team_id == team_id)))
    roster = Roster(session)
    customer, _ = run.customer(conversation.customer_id)
    owner = customer.owner_id if customer is not None else None
    decision = choose_agent(
        current_assignee=conversation.assignee_id if conversation.assignee_id in members else None,
        owner_id=owner if owner in members else None,
        team_id=team_id,
        candidates=list(roster.candidates.values()),
    )
    if decision.agent_id != conversation.assignee_id:
        set_assignee(
            session, conversation, decision.agent_id, log, reason="automation", now=run.now
        )


def _give(run: Run, conversation: Conversation, agent_id: int) -> None:
    if set_assignee(run.session, conversation, agent_id, run.log, reason="automation", now=run.now):
        notify(
            run.session,
            run.log,
            agent_id=agent_id,
            kind="assigned",
            conversation=conversation,
            message_id=None,
            actor_agent_id=None,
            text=conversation.subject,
            now=run.now,
        )


def _leads(run: Run, conversation: Conversation) -> list[Agent]:
    if conversation.team_id is None:
        return []
    return list(
        run.session.scalars(
            select(Agent)
            .join(TeamMember, TeamMember.agent_id == Agent.id)
            .where(
                TeamMember.team_id == conversation.team_id,
                TeamMember.lead.is_(True),
                Agent.active.is_(True),
            )
            .order_by(Agent.id)
        )
    )


def _team_lead(run: Run, conversation: Conversation) -> int:
    leads = _leads(run, conversation)
    if not leads:
        raise AutomationError("the conversation's team has no active lead")
    if conversation.assignee_id in {lead.id for lead in leads}:
        return conversation.assignee_id  # type: ignore[return-value]
    online = [lead for lead in leads if lead.presence == "online"]
    return (online or leads)[0].id


def _recipients(run: Run, conversation: Conversation, to: str, agent_id: int | None) -> list[int]:
    if to == "agent":
        agent = run.session.get(Agent, agent_id) if agent_id else None
        if agent is None or not agent.active:
            raise AutomationError(f"agent {agent_id} no longer exists or is inactive")
        return [agent.id]
    if to == "assignee":
        return [conversation.assignee_id] if conversation.assignee_id is not None else []
    return [lead.id for lead in _leads(run, conversation)]


def _change_labels(
    run: Run, conversation: Conversation, names: Sequence[str], *, add: bool
) -> None:
    session = run.session
    current = set(conversation_labels(session, conversation.id))
    wanted = [n for n in dict.fromkeys(names) if (n not in current) == add]
    if not wanted:
        return
    labels = {
        label.name: label.id
        for label in session.scalars(select(Label).where(Label.name.in_(wanted)))
    }
    if missing := [n for n in wanted if n not in labels]:
        raise AutomationError(f"label {missing[0]!r} no longer exists")
    if add:
        session.add_all(
            ConversationLabel(conversation_id=conversation.id, label_id=labels[n]) for n in wanted
        )
        current.update(wanted)
    else:
        session.execute(
            delete(ConversationLabel).where(
                ConversationLabel.conversation_id == conversation.id,
                ConversationLabel.label_id.in_(labels.values()),
            )
        )
        current.difference_update(wanted)
    session.flush()
    run.log.add("conversation.labels_changed", conversation, {"labels": sorted(current)})


def _canned_reply(run: Run, conversation: Conversation, shortcut: str) -> None:
    session = run.session
    canned = session.scalar(select(CannedResponse).where(CannedResponse.shortcut == shortcut))
    if canned is None:
        raise AutomationError(f"canned response /{shortcut} no longer exists")
    message = Message(
        conversation_id=conversation.id,
        channel=conversation.channel,
        direction="out",
        author_kind="bot",
        private=False,
        text=canned.text,
        attachments={"files": []},
        delivery_status="queued",
        created_at=run.now,
        metadata_={"automation": {"shortcut": shortcut}},
    )
    session.add(message)
    conversation.last_activity_at = run.now
    session.flush()
    run.log.add("message.created", conversation, {"message": message_with_files(message)})
    run.log.deliver(message.id)


def _set_status(
    run: Run, conversation: Conversation, status: str, snoozed_until: datetime | None
) -> None:
    previous = conversation.status
    if previous == status and conversation.snoozed_until == snoozed_until:
        return
    conversation.status = status
    conversation.snoozed_until = snoozed_until
    conversation.resolved_at = run.now if status == "resolved" else None
    run.log.add(
        "conversation.status_changed",
        conversation,
        {
            "from": previous,
            "to": status,
            "snoozed_until": snoozed_until.isoformat() if snoozed_until else None,
            "conversation": conversation_summary(conversation),
        },
    )
    run.session.flush()
    if previous == "open":
        assign_waiting(run.session, run.log, now=run.now)
