"""Conversations: list (views, filters, unread counts), open (thread, activity, the customer's
360° view), reply, note with mentions, assign, status, labels, read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVarTuple

import nh3
from aiohttp import web
from pydantic import AwareDatetime, Field
from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from inbox.accounts import Principal
from inbox.api.base import (
    ApiError,
    ApiRoute,
    Body,
    Id,
    error,
    int_param,
    json_response,
    principal,
    query_id,
    read_json,
)
from inbox.realtime import can_see
from inbox.services import SERVICES
from routing.actions import WindowClosed, attachment_views, message_with_files
from routing.csat import conversation_csat, customer_csat
from routing.events import conversation_summary, message_summary
from routing.history import customer_profile
from routing.reply_window import template_view, window_at, wrote_at
from storage.models import (
    Agent,
    Attachment,
    Conversation,
    ConversationLabel,
    Customer,
    Event,
    Label,
    Message,
    ReadMarker,
)

Ts = TypeVarTuple("Ts")
STATUS_FILTERS = ("open", "pending", "snoozed", "resolved", "bot")
VIEWS = ("mine", "unassigned", "teams", "all")
SORTS = ("activity", "waiting")
NOT_ACTIVITIES = ("message.created", "note.created", "message.delivery", "notification.created")
"""Event types the thread shows as messages (or not at all), not as activity lines."""
PREVIEW = 200
Assignee = aliased(Agent)
Row = tuple[Conversation, str, str | None]
"""A list row: the conversation, its customer's name, its assignee's name."""
ListQuery = Select[Conversation, str, str]


def _stamp(moment: datetime) -> str:
    """A cursor's time, with `Z` rather than `+00:00` so that it survives an unencoded URL."""
    return moment.isoformat().replace("+00:00", "Z")


UploadId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class ReplyBody(Body):
    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=100_000,
        description="Required unless `attachments` are given",
    )
    private: bool = False
    mentions: list[Id] = Field(
        default_factory=list, max_length=50, description="Agents a private note notifies"
    )
    attachments: list[UploadId] = Field(
        default_factory=list,
        max_length=50,
        description="Ids from POST /conversations/{id}/attachments: the caller's own uploads "
        "for this conversation, not sent yet",
    )


class TemplateBody(Body):
    name: str = Field(min_length=1, max_length=512, description="A template the channel lists")
    parameters: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list, max_length=50, description="Its parameters' values, in order"
    )


class AssignBody(Body):
    agent_id: Id | None = None
    team_id: Id | None = None
    set_team: bool = Field(default=False, description="Also move to team_id (a transfer)")


class StatusBody(Body):
    status: Literal["open", "pending", "snoozed", "resolved"]
    snoozed_until: AwareDatetime | None = None


class ConversationPatchBody(Body):
    priority: Literal["low", "normal", "high", "urgent"]


LabelName = Annotated[str, Field(min_length=1, max_length=100)]


class LabelsBody(Body):
    add: list[LabelName] = Field(default_factory=list, max_length=50)
    remove: list[LabelName] = Field(default_factory=list, max_length=50)


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


def _view(view: str, who: Principal) -> ColumnElement[bool] | None:
    """The condition of a sidebar view, on top of what the caller may see."""
    if view == "mine":
        return Conversation.assignee_id == who.id
    if view == "unassigned":
        return Conversation.assignee_id.is_(None)
    if view == "teams":
        return Conversation.team_id.in_(who.team_ids) if who.team_ids else false()
    return None


def _text_param(request: web.Request, name: str, choices: Sequence[str] = ()) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if choices and value not in choices:
        raise ApiError(400, f"{name}: one of {', '.join(choices)}")
    if len(value) > 100:
        raise ApiError(400, f"{name}: at most 100 characters")
    return value


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "50")
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ApiError(400, "limit: a number from 1 to 200")
    return min(int(raw), 200)


def _filtered(request: web.Request, who: Principal) -> ListQuery:
    """The list query with every filter of the request applied, not yet sorted or paged."""
    query = visible(
        select(Conversation, Customer.name, Assignee.name)
        .join(Customer, Customer.id == Conversation.customer_id)
        .outerjoin(Assignee, Assignee.id == Conversation.assignee_id),
        who,
    )
    if (condition := _view(_text_param(request, "view", VIEWS) or "all", who)) is not None:
        query = query.where(condition)
    if status := _text_param(request, "status", STATUS_FILTERS):
        query = query.where(Conversation.status == status)
    if channel := _text_param(request, "channel"):
        query = query.where(Conversation.channel == channel)
    if (team := query_id(request, "team")) is not None:
        query = query.where(Conversation.team_id == team)
    if label := _text_param(request, "label"):
        # Driven from the label's rows (usually few) rather than probing every conversation.
        labelled = select(ConversationLabel.conversation_id).join(
            Label, Label.id == ConversationLabel.label_id
        )
        query = query.where(Conversation.id.in_(labelled.where(Label.name == label)))
    if assignee := _text_param(request, "assignee"):  # before views existed; still honoured
        if assignee == "me":
            query = query.where(Conversation.assignee_id == who.id)
        elif assignee == "unassigned":
            query = query.where(Conversation.assignee_id.is_(None))
        else:
            query = query.where(Conversation.assignee_id == query_id(request, "assignee"))
    return query


def _cursor(value: str) -> tuple[str, datetime | None, int]:
    """(sort, moment, id) from a `next_before` this API gave out: `ISO|id` when sorted by
    activity (the form clients already hold), `w|ISO|id` or `w||id` when sorted by waiting."""
    sort = "waiting" if value.startswith("w|") else "activity"
    # A "+" of the UTC offset arrives as a space when a client did not URL-encode the cursor.
    stamp, _, ident = value.removeprefix("w|").replace(" ", "+").rpartition("|")
    bad = ApiError(400, "before: not a cursor this API gave out")
    if not (ident.isascii() and ident.isdigit() and int(ident) < 2**63):
        raise bad
    if sort == "waiting" and stamp == "":
        return sort, None, int(ident)
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        raise bad from None
    if moment.tzinfo is None:
        raise bad
    return sort, moment, int(ident)


async def _page(
    session: AsyncSession, query: ListQuery, sort: str, before: str | None, limit: int
) -> tuple[list[Row], str | None]:
    """One page of the list and the cursor of the next, in the requested order."""
    cursor = _cursor(before) if before else None
    if cursor is not None and cursor[0] != sort:
        raise ApiError(400, "before: a cursor of another sort order")
    if sort == "activity":
        if cursor is not None:
            _, moment, ident = cursor
            query = query.where(
                or_(
                    Conversation.last_activity_at < moment,
                    and_(Conversation.last_activity_at == moment, Conversation.id < ident),
                )
            )
        ordered = query.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
        rows: list[Row] = list((await session.execute(ordered.limit(limit))).all())
        tail = rows[-1][0] if len(rows) == limit else None
        return rows, f"{_stamp(tail.last_activity_at)}|{tail.id}" if tail else None
    return await _waiting_page(session, query, cursor, limit)


async def _waiting_page(
    session: AsyncSession,
    query: ListQuery,
    cursor: tuple[str, datetime | None, int] | None,
    limit: int,
) -> tuple[list[Row], str | None]:
    """Waiting longest first, then those not waiting on us (oldest first). Two index-ordered
    queries rather than one NULLS LAST sort, which SQLite cannot take from an index."""
    rows: list[Row] = []
    in_nulls = cursor is not None and cursor[1] is None
    if not in_nulls:
        waiting = query.where(Conversation.waiting_since.is_not(None))
        if cursor is not None:
            _, moment, ident = cursor
            waiting = waiting.where(
                or_(
                    Conversation.waiting_since > moment,
                    and_(Conversation.waiting_since == moment, Conversation.id > ident),
                )
            )
        waiting = waiting.order_by(Conversation.waiting_since, Conversation.id).limit(limit)
        rows.extend((await session.execute(waiting)).all())
    if len(rows) < limit:
        idle = query.where(Conversation.waiting_since.is_(None))
        if in_nulls and cursor is not None:
            idle = idle.where(Conversation.id > cursor[2])
        idle = idle.order_by(Conversation.id).limit(limit - len(rows))
        rows.extend((await session.execute(idle)).all())
    if len(rows) < limit:
        return rows, None
    tail = rows[-1][0]
    stamp = _stamp(tail.waiting_since) if tail.waiting_since else ""
    return rows, f"w|{stamp}|{tail.id}"


async def _previews(session: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    """The last message the customer could see, per conversation (notes are not previews)."""
    last = (
        select(func.max(Message.id))
        .where(Message.conversation_id.in_(ids), Message.private.is_(False))
        .group_by(Message.conversation_id)
    )
    rows = await session.execute(
        select(Message.conversation_id, Message.text).where(Message.id.in_(last))
    )
    return {conversation_id: text[:PREVIEW] for conversation_id, text in rows.all()}


async def _labels(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[str]]:
    rows = await session.execute(
        select(ConversationLabel.conversation_id, Label.name)
        .join(Label, Label.id == ConversationLabel.label_id)
        .where(ConversationLabel.conversation_id.in_(ids))
        .order_by(Label.name)
    )
    labels: dict[int, list[str]] = {}
    for conversation_id, name in rows.all():
        labels.setdefault(conversation_id, []).append(name)
    return labels


async def _unread(session: AsyncSession, who: Principal, ids: Sequence[int]) -> dict[int, int]:
    marker = and_(
        ReadMarker.conversation_id == Message.conversation_id, ReadMarker.agent_id == who.id
    )
    rows = await session.execute(
        select(Message.conversation_id, func.count())
        .select_from(Message)
        .outerjoin(ReadMarker, marker)
        .where(
            Message.conversation_id.in_(ids),
            Message.direction == "in",
            Message.id > func.coalesce(ReadMarker.last_read_message_id, 0),
        )
        .group_by(Message.conversation_id)
    )
    return {conversation_id: count for conversation_id, count in rows.all()}


async def _counts(session: AsyncSession, who: Principal) -> dict[str, int]:
    """Open conversations with unread messages, per view: those with a customer message, less
    those the caller has read up to their newest one (`last_inbound_message_id`). Two counts
    from indexes (`ix_conversations_status_inbound`, then the caller's read markers); no
    message is looked at, however many conversations are open."""
    columns = [
        func.count().filter(condition)
        if (condition := _view(view, who)) is not None
        else func.count()
        for view in VIEWS
    ]
    open_ = and_(Conversation.status == "open", Conversation.last_inbound_message_id.is_not(None))
    waiting = visible(select(*columns).select_from(Conversation).where(open_), who)
    read = visible(
        select(*columns)
        .select_from(ReadMarker)
        .join(Conversation, Conversation.id == ReadMarker.conversation_id)
        .where(
            ReadMarker.agent_id == who.id,
            open_,
            ReadMarker.last_read_message_id >= Conversation.last_inbound_message_id,
        ),
        who,
    )
    total = (await session.execute(waiting)).one()
    done = (await session.execute(read)).one()
    return {view: int(n or 0) - int(m or 0) for view, n, m in zip(VIEWS, total, done, strict=True)}


def _item(
    conversation: Conversation,
    customer_name: str,
    assignee_name: str | None,
    *,
    preview: str,
    labels: list[str],
    unread: int,
) -> dict[str, Any]:
    assignee = conversation.assignee_id
    return {
        **conversation_summary(conversation),
        "assignee": {"id": assignee, "name": assignee_name} if assignee is not None else None,
        "customer": {"id": conversation.customer_id, "name": customer_name},
        "preview": preview,
        "labels": labels,
        "unread": unread,
        "created_at": conversation.created_at.isoformat(),
    }


async def list_conversations(request: web.Request) -> web.StreamResponse:
    """Previews, labels and unread counts are read for the page's ids only: a fixed number of
    queries per page, however large the inbox."""
    who = principal(request)
    sort = _text_param(request, "sort", SORTS) or "activity"
    limit = _limit(request)
    query = _filtered(request, who)
    async with request.app[SERVICES].sessions() as session:
        rows, next_before = await _page(session, query, sort, request.query.get("before"), limit)
        ids = [conversation.id for conversation, _, _ in rows]
        previews = await _previews(session, ids) if ids else {}
        labels = await _labels(session, ids) if ids else {}
        unread = await _unread(session, who, ids) if ids else {}
        counts = await _counts(session, who)
    items = [
        _item(
            c,
            customer,
            assignee,
            preview=previews.get(c.id, ""),
            labels=labels.get(c.id, []),
            unread=unread.get(c.id, 0),
        )
        for c, customer, assignee in rows
    ]
    return json_response({"conversations": items, "next_before": next_before, "counts": counts})


def safe_html(html: str) -> str:
    """Customer HTML as the agent's browser may render it: sanitized again on the way out, so
    that nothing stored before (or past) the inbound sanitizer can run script."""
    return nh3.clean(html) if html else ""


def _safe_url(url: str) -> str:
    """Only http(s) and same-site links: a `javascript:` or `data:` URL would run in the inbox."""
    lowered = url.strip().lower()
    if lowered.startswith(("https://", "http://")) or (
        lowered.startswith("/") and not lowered.startswith("//")
    ):
        return url.strip()
    return ""


def _attachments(message: Message) -> list[dict[str, Any]]:
    return [{**file, "url": _safe_url(file["url"])} for file in attachment_views(message)]


async def _names(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(wanted)))
    return dict(rows.all())


def _message(message: Message, agents: dict[int, str], customer: dict[str, Any]) -> dict[str, Any]:
    author: dict[str, Any] | None = None
    if message.author_kind == "customer":
        author = customer
    elif message.author_agent_id is not None:
        author = {"id": message.author_agent_id, "name": agents.get(message.author_agent_id, "")}
    return {
        **message_summary(message),
        "author": author,
        "html": safe_html(message.html),
        "attachments": _attachments(message),
        "metadata": message.metadata_,
        "external_id": message.external_id,
        "provider_id": message.provider_id,
    }


def _activity(event: Event, agents: dict[int, str]) -> dict[str, Any]:
    actor = event.actor_agent_id
    return {
        "id": event.id,
        "type": event.type,
        "actor": {"id": actor, "name": agents.get(actor, "")} if actor is not None else None,
        "data": {k: v for k, v in event.data.items() if k != "conversation"},
        "created_at": event.created_at.isoformat(),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


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
        events = (
            await session.scalars(
                select(Event)
                .where(Event.conversation_id == conversation.id, Event.type.not_in(NOT_ACTIVITIES))
                .order_by(Event.id)
            )
        ).all()
        agents = await _names(
            session,
            [
                conversation.assignee_id,
                *(m.author_agent_id for m in messages),
                *(e.actor_agent_id for e in events),
            ],
        )
        profile = await customer_profile(session, conversation.customer_id)
        low = request.app[SERVICES].config.routing.csat.low_score
        now = request.app[SERVICES].actions.now()
        csat = await conversation_csat(session, conversation.id, now, low_score=low)
        if profile is not None:
            profile["csat"] = await customer_csat(session, conversation.customer_id, low_score=low)
        labels = (await _labels(session, [conversation.id])).get(conversation.id, [])
        unread = (await _unread(session, who, [conversation.id])).get(conversation.id, 0)
    customer: dict[str, Any] = {
        "id": conversation.customer_id,
        "name": profile["name"] if profile else "",
    }
    preview = next((m.text for m in reversed(messages) if not m.private), "")[:PREVIEW]
    actions = request.app[SERVICES].actions
    wrote = next(
        (wrote_at(m.created_at, m.metadata_) for m in reversed(messages) if _customer_wrote(m)),
        None,
    )
    window = window_at(actions.reply_rules(conversation.channel), wrote, actions.now())
    assignee_name = agents.get(conversation.assignee_id) if conversation.assignee_id else None
    return json_response(
        {
            **_item(
                conversation,
                customer["name"],
                assignee_name,
                preview=preview,
                labels=labels,
                unread=unread,
            ),
            "thread_id": conversation.thread_id,
            "first_response_at": _iso(conversation.first_response_at),
            "snoozed_until": _iso(conversation.snoozed_until),
            "metadata": conversation.metadata_,
            "reply_window": window.view(),
            "messages": [_message(m, agents, customer) for m in messages],
            "activities": [_activity(e, agents) for e in events],
            "customer": profile,
            "csat": csat,
        }
    )


def _customer_wrote(message: Message) -> bool:
    return message.direction == "in" and message.author_kind == "customer"


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


async def _files_fit(request: web.Request, ids: Sequence[str]) -> None:
    """Refuse a reply whose files together pass the per-reply limits (they may have been
    uploaded in several requests); whose files they are is checked when the reply takes them."""
    limits = request.app[SERVICES].config.server.uploads
    if len(ids) > limits.max_files:
        raise ApiError(413, f"attachments: at most {limits.max_files} files go with one reply")
    if not ids:
        return
    async with request.app[SERVICES].sessions() as session:
        size = await session.scalar(
            select(func.coalesce(func.sum(Attachment.size), 0)).where(Attachment.id.in_(ids))
        )
    if int(size or 0) > limits.max_message_bytes:
        raise ApiError(413, f"attachments: larger than {limits.max_message_bytes} bytes together")


async def post_message(request: web.Request) -> web.StreamResponse:
    conversation_id = int_param(request, "id")
    body = await read_json(request, ReplyBody)
    if body.text is None and not body.attachments:
        raise ApiError(422, "text: Field required (unless attachments are given)")
    await _check_visible(request, conversation_id)
    await _files_fit(request, body.attachments)
    try:
        message = await request.app[SERVICES].actions.reply(
            conversation_id,
            principal(request).id,
            body.text or "",
            private=body.private,
            mentions=body.mentions,
            attachments=body.attachments,
        )
    except WindowClosed as exc:
        return await _window_closed(request, conversation_id, exc)
    return json_response(message_with_files(message), status=201)


async def _window_closed(
    request: web.Request, conversation_id: int, exc: WindowClosed
) -> web.Response:
    """409: a free-form reply after the channel's reply window closed; says when, and that a
    template may be sent."""
    window = await request.app[SERVICES].actions.reply_window(conversation_id)
    return error(409, str(exc), reply_window=window.view())


async def list_templates(request: web.Request) -> web.StreamResponse:
    conversation_id = int_param(request, "id")
    async with request.app[SERVICES].sessions() as session:
        conversation = await load_visible(session, principal(request), conversation_id)
    actions = request.app[SERVICES].actions
    rules = actions.reply_rules(conversation.channel)
    window = await actions.reply_window(conversation_id)
    return json_response(
        {
            "templates": [template_view(t) for t in rules.templates],
            "reply_window": window.view(),
        }
    )


async def send_template(request: web.Request) -> web.StreamResponse:
    conversation_id = int_param(request, "id")
    body = await read_json(request, TemplateBody)
    await _check_visible(request, conversation_id)
    message = await request.app[SERVICES].actions.send_template(
        conversation_id, principal(request).id, body.name, body.parameters
    )
    return json_response({**message_with_files(message), "metadata": message.metadata_}, status=201)


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


async def update_conversation(request: web.Request) -> web.StreamResponse:
    conversation_id = int_param(request, "id")
    body = await read_json(request, ConversationPatchBody)
    await _check_visible(request, conversation_id)
    conversation = await request.app[SERVICES].actions.set_priority(
        conversation_id, body.priority, actor_agent_id=principal(request).id
    )
    return json_response(conversation_summary(conversation))


def label_names(names: Sequence[str]) -> list[str]:
    """Trimmed label names; a name of only spaces is refused."""
    trimmed = [name.strip() for name in names]
    if not all(trimmed):
        raise ApiError(422, "labels: 1 to 100 characters each")
    return trimmed


async def set_labels(request: web.Request) -> web.StreamResponse:
    conversation_id = int_param(request, "id")
    body = await read_json(request, LabelsBody)
    add, remove = label_names(body.add), label_names(body.remove)
    await _check_visible(request, conversation_id)
    labels = await request.app[SERVICES].actions.set_labels(
        conversation_id, add=add, remove=remove, actor_agent_id=principal(request).id
    )
    return json_response({"labels": labels})


async def mark_read(request: web.Request) -> web.StreamResponse:
    conversation_id = int_param(request, "id")
    await _check_visible(request, conversation_id)
    last = await request.app[SERVICES].actions.mark_read(conversation_id, principal(request).id)
    return json_response(
        {"conversation_id": conversation_id, "last_read_message_id": last, "unread": 0}
    )


async def retry_message(request: web.Request) -> web.StreamResponse:
    message_id = int_param(request, "id")
    async with request.app[SERVICES].sessions() as session:
        message = await session.get(Message, message_id)
        if message is None:
            raise ApiError(404, f"not found: message {message_id}")
        await load_visible(session, principal(request), message.conversation_id)
    try:
        retried = await request.app[SERVICES].actions.retry_delivery(
            message_id, principal(request).id
        )
    except WindowClosed as exc:
        return await _window_closed(request, message.conversation_id, exc)
    return json_response(message_summary(retried))


ROUTES = [
    ApiRoute(
        "GET",
        "/conversations",
        list_conversations,
        "agent",
        "Conversations the caller may see, with unread counts per view",
        query=("view", "status", "channel", "label", "team", "sort", "limit", "before"),
    ),
    ApiRoute(
        "GET",
        "/conversations/{id}",
        get_conversation,
        "agent",
        "A conversation with its messages, activity and the customer's 360° view",
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
        "Reply to the customer, or add a private note (mentions notify agents)",
        body=ReplyBody,
    ),
    ApiRoute(
        "GET",
        "/conversations/{id}/templates",
        list_templates,
        "agent",
        "The approved templates of the conversation's channel, and its reply window",
    ),
    ApiRoute(
        "POST",
        "/conversations/{id}/templates",
        send_template,
        "agent",
        "Send an approved template (allowed after the reply window closed)",
        body=TemplateBody,
    ),
    ApiRoute(
        "PUT",
        "/conversations/{id}/assignment",
        assign,
        "agent",
        "Assign or transfer to an agent and/or team",
        body=AssignBody,
    ),
    ApiRoute(
        "POST",
        "/conversations/{id}/assignment",
        assign,
        "agent",
        "Same as PUT (kept for older clients)",
        body=AssignBody,
    ),
    ApiRoute(
        "PATCH",
        "/conversations/{id}",
        update_conversation,
        "agent",
        "Set the priority (low, normal, high, urgent)",
        body=ConversationPatchBody,
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
        "PUT",
        "/conversations/{id}/labels",
        set_labels,
        "agent",
        "Add and remove labels",
        body=LabelsBody,
    ),
    ApiRoute(
        "POST",
        "/conversations/{id}/labels",
        set_labels,
        "agent",
        "Same as PUT (kept for older clients)",
        body=LabelsBody,
    ),
    ApiRoute("POST", "/conversations/{id}/read", mark_read, "agent", "Mark read for the caller"),
    ApiRoute(
        "POST", "/messages/{id}/retry", retry_message, "agent", "Retry a failed outbound message"
    ),
]
