"""Search: conversations and customers matching what an agent typed, within what they may see."""

from __future__ import annotations

from functools import partial

from aiohttp import web
from sqlalchemy import select

from inbox.api.base import ApiError, ApiRoute, json_response, principal
from inbox.api.conversations import visible
from inbox.services import SERVICES
from routing.events import conversation_summary
from storage.models import Conversation, Customer
from storage.search import search as run_search

MAX_QUERY = 200
MAX_LIMIT = 50


async def search(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    query = request.query.get("q", "").strip()
    if not query:
        raise ApiError(400, "q: what to search for")
    if len(query) > MAX_QUERY:
        raise ApiError(400, f"q: at most {MAX_QUERY} characters")
    raw_limit = request.query.get("limit", "20")
    if not (raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_LIMIT):
        raise ApiError(400, f"limit: a number from 1 to {MAX_LIMIT}")
    scope = None if who.is_admin else partial(visible, who=who)
    async with request.app[SERVICES].sessions() as session:
        results = await run_search(session, query, scope=scope, limit=int(raw_limit))
        ids = [hit.conversation_id for hit in results.conversations]
        rows = (
            await session.execute(
                select(Conversation, Customer.name)
                .join(Customer, Customer.id == Conversation.customer_id)
                .where(Conversation.id.in_(ids))
            )
        ).all()
    found = {conversation.id: (conversation, name) for conversation, name in rows}
    conversations = []
    for hit in results.conversations:
        if hit.conversation_id not in found:
            continue  # deleted or merged away between the two reads
        conversation, name = found[hit.conversation_id]
        conversations.append(
            {
                **conversation_summary(conversation),
                "created_at": conversation.created_at.isoformat(),
                "customer": {"id": conversation.customer_id, "name": name},
                "preview": hit.snippet,
                "message_id": hit.message_id,
                "snippet": hit.snippet,
            }
        )
    customers = [
        {
            "id": hit.customer_id,
            "name": hit.name,
            "contact_points": [
                {"kind": kind, "value": value} for kind, value in hit.contact_points
            ],
        }
        for hit in results.customers
    ]
    return json_response({"conversations": conversations, "customers": customers})


ROUTES = [
    ApiRoute(
        "GET",
        "/search",
        search,
        "agent",
        "Conversations (newest matching message first) and customers matching the query; "
        "Persian letters, digits and ZWNJ are normalized on both sides",
        query=("q", "limit"),
    ),
]
