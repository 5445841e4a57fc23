"""Agents, teams, channel status and the dead-letter queue."""

from __future__ import annotations

import json
from typing import Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import func, select

from inbox.accounts import AccountError, create_agent
from inbox.api.base import ApiError, ApiRoute, Body, int_param, json_response, principal, read_json
from inbox.realtime import DEACTIVATED
from inbox.services import SERVICES
from routing.router import INBOUND_TOPIC
from storage.models import Agent, Conversation, Team, TeamMember

TOPICS = (INBOUND_TOPIC, "outbound")


class NewAgentBody(Body):
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    password: str = Field(min_length=10, max_length=1000)
    role: Literal["admin", "agent"] = "agent"
    capacity: int | None = Field(default=None, ge=1, le=1000)
    """Default: the configuration's `routing.default_capacity`."""


class AgentPatchBody(Body):
    capacity: int | None = Field(default=None, ge=1, le=1000)
    active: bool | None = None
    role: Literal["admin", "agent"] | None = None


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
                    "open_conversations": load.get(a.id, 0),
                }
                for a in agents
            ]
        }
    )


async def add_agent(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, NewAgentBody)
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
    except AccountError as exc:
        raise ApiError(422, str(exc)) from None
    return json_response(
        {"id": agent.id, "email": agent.email, "name": agent.name, "role": agent.role}, status=201
    )


async def update_agent(request: web.Request) -> web.StreamResponse:
    agent_id = int_param(request, "id")
    body = await read_json(request, AgentPatchBody)
    if agent_id == principal(request).id and (body.active is False or body.role == "agent"):
        raise ApiError(422, "admins cannot deactivate or demote themselves")
    services = request.app[SERVICES]
    agent = await services.actions.update_agent(
        agent_id,
        capacity=body.capacity,
        active=body.active,
        role=body.role,
        actor_agent_id=principal(request).id,
    )
    # Open event streams were authorised for the account as it was; end what it no longer allows.
    if not agent.active:
        services.hub.disconnect_agent(agent.id, DEACTIVATED)
    elif body.role is not None:
        services.hub.update_agent(agent.id, role=agent.role)
    return json_response(
        {"id": agent.id, "capacity": agent.capacity, "active": agent.active, "role": agent.role}
    )


async def list_teams(request: web.Request) -> web.StreamResponse:
    async with request.app[SERVICES].sessions() as session:
        teams = (await session.scalars(select(Team).order_by(Team.name))).all()
        members = (await session.execute(select(TeamMember))).scalars().all()
    return json_response(
        {
            "teams": [
                {
                    "id": t.id,
                    "name": t.name,
                    "members": [m.agent_id for m in members if m.team_id == t.id],
                    "leads": [m.agent_id for m in members if m.team_id == t.id and m.lead],
                }
                for t in teams
            ]
        }
    )


async def list_channels(request: web.Request) -> web.StreamResponse:
    channels = request.app[SERVICES].channels
    return json_response(
        {
            "channels": [
                {"name": name, "type": channel.type, **channel.status()}
                for name, channel in channels.items()
            ]
        }
    )


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
        "Change an agent's capacity, role or active state",
        body=AgentPatchBody,
    ),
    ApiRoute("GET", "/teams", list_teams, "agent", "Teams and their members"),
    ApiRoute("GET", "/channels", list_channels, "admin", "Configured channels and their state"),
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
