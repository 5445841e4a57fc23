"""Agents, teams, routing rules, channel status and the dead-letter queue."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field, field_validator
from sqlalchemy import func, select

from inbox.accounts import AccountError, create_agent
from inbox.api.base import ApiError, ApiRoute, Body, int_param, json_response, principal, read_json
from inbox.realtime import DEACTIVATED
from inbox.services import SERVICES, Services
from routing import admin_actions, rules_store
from routing.actions import Conflict
from routing.router import INBOUND_TOPIC
from storage.models import Agent, Conversation, Message, Team, TeamMember

TOPICS = (INBOUND_TOPIC, "outbound")
TeamIds = list[Annotated[int, Field(ge=1, le=2**62)]]


def _distinct(value: list[int] | None) -> list[int] | None:
    return None if value is None else sorted(set(value))


class NewAgentBody(Body):
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    password: str = Field(min_length=10, max_length=1000)
    role: Literal["admin", "agent"] = "agent"
    capacity: int | None = Field(default=None, ge=1, le=1000)
    """Default: the configuration's `routing.default_capacity`."""
    team_ids: TeamIds = Field(default_factory=list, max_length=200)


class AgentPatchBody(Body):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    capacity: int | None = Field(default=None, ge=1, le=1000)
    active: bool | None = None
    role: Literal["admin", "agent"] | None = None
    team_ids: TeamIds | None = Field(default=None, max_length=200)
    """The agent's teams, all of them (`[]`: none)."""


class TeamMemberBody(Body):
    agent_id: int = Field(ge=1, le=2**62)
    lead: bool = False


class TeamBody(Body):
    name: str = Field(min_length=1, max_length=100)
    members: list[TeamMemberBody] = Field(default_factory=list, max_length=1000)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a team needs a name")
        return value.strip()


class TeamPatchBody(Body):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    members: list[TeamMemberBody] | None = Field(default=None, max_length=1000)
    """All the members (`[]`: none)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("a team needs a name")
        return value.strip() if value is not None else None


async def list_agents(request: web.Request) -> web.StreamResponse:
    async with request.app[SERVICES].sessions() as session:
        agents = (await session.scalars(select(Agent).order_by(Agent.id))).all()
        load = dict(
            (
                await session.execute(
                    select(Conversation.assignee_id, func.count())
                    .where(Conversation.status == "open")
                    .group_by(Conversation.assignee_id)
                )
            ).all()
        )
        teams = await session.run_sync(admin_actions.teams_of, [a.id for a in agents])
    return json_response(
        {
            "agents": [
                {
                    "id": a.id,
                    "email": a.email,
                    "name": a.name,
                    "role": a.role,
                    "presence": a.presence,
                    "capacity": a.capacity,
                    "active": a.active,
                    "team_ids": teams[a.id],
                    "load": load.get(a.id, 0),
                    "open_conversations": load.get(a.id, 0),  # the older name of `load`
                }
                for a in agents
            ]
        }
    )


async def add_agent(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, NewAgentBody)
    team_ids = _distinct(body.team_ids) or []
    try:
        async with request.app[SERVICES].sessions.begin() as session:
            agent = await create_agent(
                session,
                email=body.email,
                name=body.name,
                password=body.password,
                role=body.role,
                capacity=body.capacity or request.app[SERVICES].config.routing.default_capacity,
            )
            known = set(await session.scalars(select(Team.id).where(Team.id.in_(team_ids))))
            if missing := [t for t in team_ids if t not in known]:
                raise ApiError(404, f"not found: team {missing[0]}")  # rolls the agent back
            session.add_all(TeamMember(team_id=t, agent_id=agent.id) for t in team_ids)
    except AccountError as exc:
        raise ApiError(422, str(exc)) from None
    return json_response(
        {
            "id": agent.id,
            "email": agent.email,
            "name": agent.name,
            "role": agent.role,
            "capacity": agent.capacity,
            "team_ids": team_ids,
        },
        status=201,
    )


async def update_agent(request: web.Request) -> web.StreamResponse:
    agent_id = int_param(request, "id")
    body = await read_json(request, AgentPatchBody)
    if agent_id == principal(request).id and (body.active is False or body.role == "agent"):
        raise ApiError(422, "admins cannot deactivate or demote themselves")
    services, actor = request.app[SERVICES], principal(request).id
    # Name and teams first: their checks (unknown team) refuse before anything is changed.
    team_ids = await services.actions.run(
        admin_actions.update_agent_details,
        agent_id,
        body.name,
        _distinct(body.team_ids),
        actor,
        services.actions.now(),
    )
    agent = await services.actions.update_agent(
        agent_id,
        capacity=body.capacity,
        active=body.active,
        role=body.role,
        actor_agent_id=actor,
    )
    # Open event streams were authorised for the account as it was; end what it no longer
    # allows, and let them follow new teams from the next event on.
    if not agent.active:
        services.hub.disconnect_agent(agent.id, DEACTIVATED)
    elif body.role is not None or body.team_ids is not None:
        services.hub.update_agent(
            agent.id,
            role=agent.role,
            team_ids=frozenset(team_ids) if body.team_ids is not None else None,
        )
    return json_response(
        {
            "id": agent.id,
            "name": agent.name,
            "capacity": agent.capacity,
            "active": agent.active,
            "role": agent.role,
            "team_ids": team_ids,
        }
    )


def _configured(services: Services) -> set[str]:
    return {team.name for team in services.config.routing.teams}


async def list_teams(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    configured = _configured(services)
    async with services.sessions() as session:
        teams = (await session.scalars(select(Team).order_by(Team.name))).all()
        members = (await session.scalars(select(TeamMember))).all()
    return json_response(
        {
            "teams": [
                {
                    **admin_actions.team_summary(t, [m for m in members if m.team_id == t.id]),
                    "configured": t.name in configured,
                }
                for t in teams
            ]
        }
    )


async def _save_team(
    request: web.Request,
    team_id: int | None,
    name: str | None,
    members: list[TeamMemberBody] | None,
) -> dict[str, Any]:
    services = request.app[SERVICES]
    try:
        return await services.actions.run(
            admin_actions.save_team,
            team_id,
            name,
            None
            if members is None
            else [admin_actions.Member(m.agent_id, m.lead) for m in members],
            principal(request).id,
            services.actions.now(),
        )
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None


async def _team_name(request: web.Request, team_id: int) -> str:
    async with request.app[SERVICES].sessions() as session:
        name = await session.scalar(select(Team.name).where(Team.id == team_id))
    if name is None:
        raise ApiError(404, f"not found: team {team_id}")
    return name


async def add_team(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, TeamBody)
    team = await _save_team(request, None, body.name, body.members)
    return json_response({**team, "configured": False}, status=201)


async def update_team(request: web.Request) -> web.StreamResponse:
    team_id = int_param(request, "id")
    body = await read_json(request, TeamPatchBody)
    configured = _configured(request.app[SERVICES])
    current = await _team_name(request, team_id)
    if body.name is not None and body.name != current and current in configured:
        raise ApiError(409, f"team {current!r} is named in config.yaml: rename it there")
    team = await _save_team(request, team_id, body.name, body.members)
    return json_response({**team, "configured": team["name"] in configured})


async def delete_team(request: web.Request) -> web.StreamResponse:
    team_id = int_param(request, "id")
    services = request.app[SERVICES]
    name = await _team_name(request, team_id)
    if name in _configured(services):
        raise ApiError(409, f"team {name!r} is named in config.yaml: remove it there")
    try:
        await services.actions.run(admin_actions.delete_team, team_id, principal(request).id)
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return json_response({"deleted": team_id})


Words = list[Annotated[str, Field(min_length=1, max_length=200)]]


def _words(value: list[str] | None) -> list[str] | None:
    """Trimmed, without blanks and repeats, in the order given."""
    if value is None:
        return None
    return list(dict.fromkeys(word.strip() for word in value if word.strip()))


class RuleBody(Body):
    """A routing rule: the first rule whose conditions all hold picks the team; an empty
    condition always holds."""

    team_id: int = Field(ge=1, le=2**62)
    channels: Words = Field(default_factory=list, max_length=100)
    """Channel names (config.yaml's `channels[].name`)."""
    language: Literal["fa", "en"] | None = None
    keywords: Words = Field(default_factory=list, max_length=200)
    """Any one of these, matched after Persian normalization, in the subject or text."""
    customer_labels: Words = Field(default_factory=list, max_length=100)
    enabled: bool = True

    _clean = field_validator("channels", "keywords", "customer_labels")(_words)


class RulePatchBody(Body):
    team_id: int | None = Field(default=None, ge=1, le=2**62)
    channels: Words | None = Field(default=None, max_length=100)
    language: Literal["fa", "en"] | None = None
    """`null`: any language."""
    keywords: Words | None = Field(default=None, max_length=200)
    customer_labels: Words | None = Field(default=None, max_length=100)
    enabled: bool | None = None

    _clean = field_validator("channels", "keywords", "customer_labels")(_words)


class RuleOrderBody(Body):
    ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(max_length=10000)
    """Every database rule's id, in the order the router should try them."""


def _check_channels(services: Services, channels: list[str] | None) -> None:
    known = {c.name for c in services.config.channels}
    for index, name in enumerate(channels or []):
        if name not in known:
            raise ApiError(422, f"channels.{index}: no channel named {name!r}")


async def routing_rules(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    routing = services.config.routing
    async with services.sessions() as session:
        stored = await session.run_sync(rules_store.list_rules)
    return json_response(
        {
            "rules": [
                {**rule.model_dump(mode="json"), "configured": True} for rule in routing.rules
            ]
            + stored,
            "default_team": routing.default_team,
            "channel_teams": {
                c.name: c.team for c in request.app[SERVICES].config.channels if c.team
            },
            "teams": [team.model_dump(mode="json") for team in routing.teams],
            "default_capacity": routing.default_capacity,
            "reopen_window_hours": routing.reopen_window_hours,
            "business_hours": routing.business_hours.model_dump(mode="json"),
        }
    )


async def add_rule(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, RuleBody)
    services = request.app[SERVICES]
    _check_channels(services, body.channels)
    rule = await services.actions.run(
        rules_store.create_rule,
        body.team_id,
        rules_store.Conditions(
            channels=tuple(body.channels),
            language=body.language,
            keywords=tuple(body.keywords),
            customer_labels=tuple(body.customer_labels),
        ),
        body.enabled,
        principal(request).id,
        services.actions.now(),
    )
    return json_response(rule, status=201)


async def update_rule(request: web.Request) -> web.StreamResponse:
    rule_id = int_param(request, "id")
    body = await read_json(request, RulePatchBody)
    services = request.app[SERVICES]
    _check_channels(services, body.channels)
    changes = {key: getattr(body, key) for key in body.model_fields_set}
    for key in ("team_id", "channels", "keywords", "customer_labels", "enabled"):
        if key in changes and changes[key] is None:
            raise ApiError(422, f"{key}: may not be null")
    rule = await services.actions.run(
        rules_store.update_rule, rule_id, changes, principal(request).id, services.actions.now()
    )
    return json_response(rule)


async def delete_rule(request: web.Request) -> web.StreamResponse:
    rule_id = int_param(request, "id")
    await request.app[SERVICES].actions.run(rules_store.delete_rule, rule_id, principal(request).id)
    return json_response({"deleted": rule_id})


async def reorder_rules(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, RuleOrderBody)
    services = request.app[SERVICES]
    rules = await services.actions.run(
        rules_store.reorder_rules, body.ids, principal(request).id, services.actions.now()
    )
    return json_response({"rules": rules})


async def list_channels(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    last: dict[str, str | None] = {}
    async with services.sessions() as session:
        for configured in services.config.channels:
            # Newest first by id: stops at the channel's latest message instead of scanning all.
            at = await session.scalar(
                select(Message.created_at)
                .where(Message.channel == configured.name, Message.direction == "in")
                .order_by(Message.id.desc())
                .limit(1)
            )
            last[configured.name] = at.isoformat() if at else None
    return json_response(
        {"channels": [_channel(services, c, last[c.name]) for c in services.config.channels]}
    )


def _channel(services: Services, configured: Any, last_message_at: str | None) -> dict[str, Any]:
    channel = services.channels.get(configured.name) if configured.enabled else None
    state: dict[str, Any] = dict(channel.status()) if channel is not None else {}
    if channel is None:
        status = "disabled"
    elif isinstance(state.get("status"), str):
        status = state["status"]
    else:
        status = "running" if state.get("running", True) else "stopped"
    return {
        **state,
        "name": configured.name,
        "type": configured.type,
        "enabled": configured.enabled,
        "team": configured.team,
        "status": status,
        "last_message_at": last_message_at,
        "last_error": state.get("last_error"),
    }


def _topic(request: web.Request) -> str:
    topic = request.match_info["topic"]
    if topic not in TOPICS:
        raise ApiError(404, f"no queue topic {topic!r}")
    return topic


async def dead_letters(request: web.Request) -> web.StreamResponse:
    topic = _topic(request)
    services = request.app[SERVICES]
    items = await services.queue.dead_letters(topic)
    stats = await services.queue.stats(topic)
    return json_response(
        {
            "topic": topic,
            "depth": stats.depth,
            "pending": stats.pending,
            "dead_letters": [
                {
                    "id": d.id,
                    "key": d.key,
                    "error": d.error,
                    "attempts": d.attempts,
                    "payload": _readable(d.payload),
                }
                for d in items
            ],
        }
    )


def _readable(payload: bytes) -> object:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")


async def retry_dead_letter(request: web.Request) -> web.StreamResponse:
    topic = _topic(request)
    dead_id = request.match_info["dead_id"]
    if not await request.app[SERVICES].queue.requeue_dead(topic, dead_id):
        raise ApiError(404, f"not found: dead letter {dead_id}")
    return json_response({"requeued": dead_id})


ROUTES = [
    ApiRoute("GET", "/agents", list_agents, "agent", "Agents with presence and load"),
    ApiRoute("POST", "/agents", add_agent, "admin", "Add an agent", body=NewAgentBody),
    ApiRoute(
        "PATCH",
        "/agents/{id}",
        update_agent,
        "admin",
        "Change an agent's name, capacity, role, active state or teams",
        body=AgentPatchBody,
    ),
    ApiRoute("GET", "/teams", list_teams, "agent", "Teams and their members"),
    ApiRoute("POST", "/teams", add_team, "admin", "Create a team", body=TeamBody),
    ApiRoute(
        "PATCH",
        "/teams/{id}",
        update_team,
        "admin",
        "Rename a team or set its members (a team named in config.yaml keeps its name)",
        body=TeamPatchBody,
    ),
    ApiRoute(
        "DELETE",
        "/teams/{id}",
        delete_team,
        "admin",
        "Delete a team no conversation belongs to and config.yaml does not name",
    ),
    ApiRoute(
        "GET",
        "/routing/rules",
        routing_rules,
        "admin",
        "The routing rules in effect: config.yaml's (`configured`, read-only), then the web app's",
    ),
    ApiRoute(
        "POST",
        "/routing/rules",
        add_rule,
        "admin",
        "Add a routing rule, tried after every other",
        body=RuleBody,
    ),
    ApiRoute(
        "PUT",
        "/routing/rules/order",
        reorder_rules,
        "admin",
        "Put the web app's routing rules in this order (every rule's id, once)",
        body=RuleOrderBody,
    ),
    ApiRoute(
        "PATCH",
        "/routing/rules/{id}",
        update_rule,
        "admin",
        "Change a routing rule's team, conditions or enabled state",
        body=RulePatchBody,
    ),
    ApiRoute("DELETE", "/routing/rules/{id}", delete_rule, "admin", "Delete a routing rule"),
    ApiRoute(
        "GET",
        "/channels",
        list_channels,
        "admin",
        "Configured channels: status, last message received, last error",
    ),
    ApiRoute(
        "GET",
        "/queues/{topic}/dead-letters",
        dead_letters,
        "admin",
        "Queue items that kept failing, with their errors",
    ),
    ApiRoute(
        "POST",
        "/queues/{topic}/dead-letters/{dead_id}/retry",
        retry_dead_letter,
        "admin",
        "Put a dead-lettered item back on its queue",
    ),
]
