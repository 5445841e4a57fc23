"""Conversations: list, open (with the customer's history), reply, note, assign, status, labels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, TypeVarTuple

from aiohttp import web
from pydantic import AwareDatetime, Field
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.accounts import Principal
from inbox.api.base import (
    ApiError,
    ApiRoute,
    Body,
    Id,
    int_param,
    json_response,
    principal,
    query_id,
    read_json,
)
from inbox.realtime import can_see
from inbox.services import SERVICES
from routing.actions import conversation_labels
from routing.events import conversation_summary, message_summary
from routing.history import customer_profile
from storage.models import Agent, Conversation, Customer, Event, Message

Ts = TypeVarTuple("Ts")
STATUS_FILTERS = ("open", "pending", "snoozed", "resolved", "bot")


class ReplyBody(Body):
    text: str = Field(min_length=1, max_length=100_000)
    private: bool = False


class AssignBody(Body):
    agent_id: Id | None = None
    team_id: Id | None = None
    set_team: bool = Field(default=False, description="Also move to team_id (a transfer)")


class StatusBody(Body):
    status: Literal["open", "pending", "snoozed", "resolved"]
    snoozed_until: AwareDatetime | None = None


class LabelsBody(Body):
    add: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    remove: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )


def visible(query: Select[*Ts], who: Principal) -> Select[*Ts]:
    if who.is_admin:
        return query
    return query.where(
        or_(
            Conversation.assignee_id == who.id,
            Conversation.team_id.is_(None),
            Conversation.team_id.in_(who.team_ids or {-1}),
        )
    )


async def load_visible(session: AsyncSession, who: Principal, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or not can_see(who, conversation.team_id, conversation.assignee_id):
        raise ApiError(404, f"not found: conversation {conversation_id}")
    return conversation


def _cursor(value: str) -> tuple[datetime, int]:
    stamp, _, ident = value.rpartition("|")
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not (ident.isascii() and ident.isdigit()):
        raise ApiError(400, "before: not a cursor this API gave out")
    return moment, int(ident)


async def list_conversations(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    params = request.query
    try:
        limit = min(max(int(params.get("limit", "50")), 1), 200)
    except ValueError:
        raise ApiError(400, "limit: a number from 1 to 200") from None
    query = visible(select(Conversation, Customer.name), who).join(
        Customer, Customer.id == Conversation.customer_id
    )
    if status := params.get("status"):
        if status not in STATUS_FILTERS:
            raise ApiError(400, f"status: one of {', '.join(STATUS_FILTERS)}")
        query = query.where(Conversation.status == status)
    if assignee := params.get("assignee"):
        if assignee == "me":
            query = query.where(Conversation.assignee_id == who.id)
        elif assignee == "unassigned":
            query = query.where(Conversation.assignee_id.is_(None))
        else:
            query = query.where(Conversation.assignee_id == query_id(request, "assignee"))
    if channel := params.get("channel"):
        query = query.where(Conversation.channel == channel)
    if (team := query_id(request, "team")) is not None:
        query = query.where(Conversation.team_id == team)
    if before := params.get("before"):
        stamp, ident = _cursor(before)
        query = query.where(
            or_(
                Conversation.last_activity_at < stamp,
                and_(Conversation.last_activity_at == stamp, Conversation.id < ident),
            )
        )
    query = query.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
    async with request.app[SERVICES].sessions() as session:
        rows = (await session.execute(query.limit(limit))).all()
        ids = [conversation.id for conversation, _ in rows]
        previews: dict[int, str] = {}
        if ids:
            last = (
                select(func.max(Message.id))
                .where(Message.conversation_id.in_(ids), Message.private.is_(False))
                .group_by(Message.conversation_id)
            )
            previews = dict(
                (
                    await session.execute(
                        select(Message.conversation_id, Message.text).where(Message.id.in_(last))
                    )
                ).all()
            )
    items = [
        {
            **conversation_summary(c),
            "customer": {"id": c.customer_id, "name": name},
            "preview": previews.get(c.id, "")[:200],
        }
        for c, name in rows
    ]
    cursor = None
    if len(rows) == limit:
        tail = rows[-1][0]
        cursor = f"{tail.last_activity_at.isoformat()}|{tail.id}"
    return json_response({"conversations": items, "next_before": cursor})


async def get_conversation(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    conversation_id = int_param(request, "id")
    async with request.app[SERVICES].sessions() as session:
        conversation = await load_visible(session, who, conversation_id)
        messages = (
            await session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation.id)
                .order_by(Message.id)
            )
        ).all()
        assignee = (
            await session.get(Agent, conversation.assignee_id) if conversation.assignee_id else None
        )
        customer = await customer_profile(session, conversation.customer_id)
        labels = await session.run_sync(conversation_labels, conversation.id)
    return json_response(
        {
            **conversation_summary(conversation),
            "thread_id": conversation.thread_id,
            "created_at": conversation.created_at.isoformat(),
            "first_response_at": conversation.first_response_at.isoformat()
            if conversation.first_response_at
            else None,
            "snoozed_until": conversation.snoozed_until.isoformat()
            if conversation.snoozed_until
            else None,
            "metadata": conversation.metadata_,
            "labels": labels,
            "assignee": {"id": assignee.id, "name": assignee.name} if assignee else None,
            "messages": [
                {
                    **message_summary(m),
                    "html": m.html,
                    "attachments": m.attachments.get("files", []),
                }
                for m in messages
            ],
            "customer": customer,
        }
    )


async def conversation_events(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    conversation_id = int_param(request, "id")
    async with request.app[SERVICES].sessions() as session:
        await load_visible(session, who, conversation_id)
        events = (
            await session.scalars(
                select(Event).where(Event.conversation_id == conversation_id).order_by(Event.id)
            )
        ).all()
    return json_response(
        {
            "events": [
                {
                    "id": e.id,
                    "type": e.type,
                    "actor_agent_id": e.actor_agent_id,
                    "data": {k: v for k, v in e.data.items() if k != "conversation"},
                    "created_at": e.created_at.isoformat(),
                }
                for e in events
            ]
        }
    )


async def _check_visible(request: web.Request, conversation_id: int) -> None:
    async with request.app[SERVICES].sessions() as session:
        await load_visible(session, principal(request), conversation_id)


async def post_message(request: web.Request) -> web.StreamResponse:
    conversation_id = int_param(request, "id")
    body = await read_json(request, ReplyBody)
    await _check_visible(request, conversation_id)
    message = await request.app[SERVICES].actions.reply(
        conversation_id, principal(request).id, body.text, private=body.private
    )
    return json_response(message_summary(message), status=201)


async def assign(request: web.Request) -> web.StreamResponse:
    conversation_id = int_param(request, "id")
    body = await read_json(request, AssignBody)
    await _check_visible(request, conversation_id)
    conversation = await request.app[SERVICES].actions.assign(
        conversation_id,
        actor_agent_id=principal(request).id,
        agent_id=body.agent_id,
        team_id=body.team_id,
        set_team=body.set_team,
    )
    return json_response(conversation_summary(conversation))


async def set_status(request: web.Request) -> web.StreamResponse:
    conversation_id = int_param(request, "id")
    body = await read_json(request, StatusBody)
    await _check_visible(request, conversation_id)
    conversation = await request.app[SERVICES].actions.set_status(
        conversation_id,
        body.status,
        actor_agent_id=principal(request).id,
        snoozed_until=body.snoozed_until,
    )
    return json_response(conversation_summary(conversation))


async def set_labels(request: web.Request) -> web.StreamResponse:
    conversation_id = int_param(request, "id")
    body = await read_json(request, LabelsBody)
    for name in [*body.add, *body.remove]:
        if not name.strip() or len(name) > 100:
            raise ApiError(422, "labels: 1 to 100 characters each")
    await _check_visible(request, conversation_id)
    labels = await request.app[SERVICES].actions.set_labels(
        conversation_id,
        add=[n.strip() for n in body.add],
        remove=[n.strip() for n in body.remove],
        actor_agent_id=principal(request).id,
    )
    return json_response({"labels": labels})


async def retry_message(request: web.Request) -> web.StreamResponse:
    message_id = int_param(request, "id")
    async with request.app[SERVICES].sessions() as session:
        message = await session.get(Message, message_id)
        if message is None:
            raise ApiError(404, f"not found: message {message_id}")
        await load_visible(session, principal(request), message.conversation_id)
    retried = await request.app[SERVICES].actions.retry_delivery(message_id, principal(request).id)
    return json_response(message_summary(retried))


async def get_customer(request: web.Request) -> web.StreamResponse:
    """Admins see every customer; an agent, those with a conversation the agent can see."""
    customer_id = int_param(request, "id")
    who = principal(request)
    async with request.app[SERVICES].sessions() as session:
        visible_one = await session.scalar(
            visible(select(Conversation.id), who)
            .where(Conversation.customer_id == customer_id)
            .limit(1)
        )
        profile = await customer_profile(session, customer_id) if visible_one else None
    if profile is None:
        raise ApiError(404, f"not found: customer {customer_id}")
    return json_response(profile)


ROUTES = [
    ApiRoute(
        "GET",
        "/conversations",
        list_conversations,
        "agent",
        "Conversations the caller may see, newest activity first",
        query=("status", "assignee", "channel", "team", "limit", "before"),
    ),
    ApiRoute(
        "GET",
        "/conversations/{id}",
        get_conversation,
        "agent",
        "A conversation with its messages and the customer's history",
    ),
    ApiRoute(
        "GET",
        "/conversations/{id}/events",
        conversation_events,
        "agent",
        "Everything that happened to a conversation, in order",
    ),
    ApiRoute(
        "POST",
        "/conversations/{id}/messages",
        post_message,
        "agent",
        "Reply to the customer, or add a private note",
        body=ReplyBody,
    ),
    ApiRoute(
        "POST",
        "/conversations/{id}/assignment",
        assign,
        "agent",
        "Assign or transfer to an agent and/or team",
        body=AssignBody,
    ),
    ApiRoute(
        "PUT",
        "/conversations/{id}/status",
        set_status,
        "agent",
        "Open, pend, snooze or resolve",
        body=StatusBody,
    ),
    ApiRoute(
        "POST",
        "/conversations/{id}/labels",
        set_labels,
        "agent",
        "Add and remove labels",
        body=LabelsBody,
    ),
    ApiRoute(
        "POST", "/messages/{id}/retry", retry_message, "agent", "Retry a failed outbound message"
    ),
    ApiRoute("GET", "/customers/{id}", get_customer, "agent", "A customer's 360° view"),
]
