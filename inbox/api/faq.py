"""The FAQ bot's knowledge base and review queue: admins edit, import and export entries and
review agents' suggestions; agents read entries, suggest one from a conversation, and take a
conversation over from the bot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field, field_validator, model_validator
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bots import knowledge
from bots.normalize import normalize
from inbox.api.base import (
    ApiError,
    ApiRoute,
    Body,
    error,
    int_param,
    json_response,
    principal,
    read_json,
)
from inbox.api.conversations import load_visible
from inbox.services import SERVICES
from routing import admin_actions
from routing.actions import MAX_FAQ_QUESTION, Conflict, NotFound, faq_suggestion_summary
from routing.events import EventLog, conversation_summary
from storage.models import FaqEntry, FaqSuggestion

MAX_QUESTION = knowledge.MAX_TEXT
MAX_ANSWER = knowledge.MAX_TEXT
MAX_SUGGESTED_QUESTION = min(MAX_FAQ_QUESTION, MAX_QUESTION)
MAX_LIST = 200
Language = Literal["fa", "en"]
Phrase = Annotated[str, Field(min_length=1, max_length=MAX_QUESTION)]
Tag = Annotated[str, Field(min_length=1, max_length=100)]
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")


def _trimmed(value: str | None) -> str | None:
    """Surrounding spaces dropped; text of only spaces refused."""
    if value is None:
        return None
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def _phrases(value: list[str] | None) -> list[str] | None:
    """Trimmed, without blanks and repeats, in the order given."""
    if value is None:
        return None
    return list(dict.fromkeys(item.strip() for item in value if item.strip()))


class EntryBody(Body):
    question: str = Field(min_length=1, max_length=MAX_QUESTION)
    alternatives: list[Phrase] = Field(default_factory=list, max_length=MAX_LIST)
    """Other ways customers ask the same question."""
    answer: str = Field(min_length=1, max_length=MAX_ANSWER)
    language: Language
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_LIST)
    enabled: bool = True

    _text = field_validator("question", "answer")(_trimmed)
    _lists = field_validator("alternatives", "tags")(_phrases)


class EntryPatchBody(Body):
    question: str | None = Field(default=None, min_length=1, max_length=MAX_QUESTION)
    alternatives: list[Phrase] | None = Field(default=None, max_length=MAX_LIST)
    answer: str | None = Field(default=None, min_length=1, max_length=MAX_ANSWER)
    language: Language | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_LIST)
    enabled: bool | None = None

    _text = field_validator("question", "answer")(_trimmed)
    _lists = field_validator("alternatives", "tags")(_phrases)

    @model_validator(mode="after")
    def _no_nulls(self) -> EntryPatchBody:
        for key in self.model_fields_set:
            if getattr(self, key) is None:
                raise ValueError(f"{key} may not be null")
        return self


class SuggestionBody(Body):
    """The language is detected from the question."""

    question: str | None = Field(default=None, min_length=1, max_length=MAX_SUGGESTED_QUESTION)
    """Default: the customer's question the bot handed over."""
    answer: str | None = Field(default=None, min_length=1, max_length=MAX_ANSWER)
    """Default: the caller's latest reply in the conversation."""

    _text = field_validator("question", "answer")(_trimmed)


class ApproveBody(Body):
    """What the admin changed before approving; anything left out is taken as suggested."""

    question: str | None = Field(default=None, min_length=1, max_length=MAX_SUGGESTED_QUESTION)
    answer: str | None = Field(default=None, min_length=1, max_length=MAX_ANSWER)
    language: Language | None = None
    alternatives: list[Phrase] = Field(default_factory=list, max_length=MAX_LIST)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_LIST)

    _text = field_validator("question", "answer")(_trimmed)
    _lists = field_validator("alternatives", "tags")(_phrases)


# ---------------------------------------------------------------- views


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def entry_view(entry: FaqEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "question": entry.question,
        "alternatives": list(entry.alternatives or []),
        "answer": entry.answer,
        "language": entry.language,
        "tags": list(entry.tags or []),
        "enabled": entry.enabled,
        "updated_by": entry.updated_by,
        "created_at": _iso(entry.created_at),
        "updated_at": _iso(entry.updated_at),
    }


def _matches(entry: FaqEntry, words: Sequence[str]) -> bool:
    """Every word of the search, after Persian normalization, somewhere in the entry."""
    haystack = normalize(
        " ".join([entry.question, *(entry.alternatives or []), entry.answer, *(entry.tags or [])])
    )
    return all(word in haystack for word in words)


# ---------------------------------------------------------------- units of work


def _entry(session: Session, entry_id: int) -> FaqEntry:
    entry = session.get(FaqEntry, entry_id)
    if entry is None:
        raise NotFound(f"FAQ entry {entry_id}")
    return entry


def create_entry(
    session: Session, fields: dict[str, Any], actor_agent_id: int
) -> tuple[dict[str, Any], EventLog]:
    log = EventLog(session)
    entry = FaqEntry(**fields, updated_by=actor_agent_id)
    session.add(entry)
    session.flush()
    view = entry_view(entry)
    log.add("faq.entry_created", None, {"entry_id": entry.id}, actor_agent_id=actor_agent_id)
    return view, log


def update_entry(
    session: Session, entry_id: int, changes: dict[str, Any], actor_agent_id: int
) -> tuple[dict[str, Any], EventLog]:
    log = EventLog(session)
    entry = _entry(session, entry_id)
    for key, value in changes.items():
        setattr(entry, key, value)
    entry.updated_by = actor_agent_id  # updated_at follows (the bot rebuilds on a change)
    session.flush()
    log.add(
        "faq.entry_updated",
        None,
        {"entry_id": entry.id, "changed": sorted(changes)},
        actor_agent_id=actor_agent_id,
    )
    return entry_view(entry), log


def delete_entry(session: Session, entry_id: int, actor_agent_id: int) -> tuple[None, EventLog]:
    log = EventLog(session)
    session.delete(_entry(session, entry_id))
    log.add("faq.entry_deleted", None, {"entry_id": entry_id}, actor_agent_id=actor_agent_id)
    return None, log


def import_entries(
    session: Session, text: str, replace: bool, actor_agent_id: int
) -> tuple[Any, EventLog]:
    log = EventLog(session)
    result = knowledge.import_yaml(session, text, replace=replace)
    if result.ids:
        session.execute(
            update(FaqEntry).where(FaqEntry.id.in_(result.ids)).values(updated_by=actor_agent_id)
        )
    counts = {"created": result.created, "updated": result.updated, "deleted": result.deleted}
    log.add("faq.imported", None, {"replace": replace, **counts}, actor_agent_id=actor_agent_id)
    return result, log


def approve(
    session: Session, suggestion_id: int, actor_agent_id: int, now: datetime, body: ApproveBody
) -> tuple[dict[str, Any], EventLog]:
    """`routing.admin_actions.approve_faq_suggestion`, and the language the admin chose."""
    summary, log = admin_actions.approve_faq_suggestion(
        session,
        suggestion_id,
        actor_agent_id,
        now,
        question=body.question,
        answer=body.answer,
        alternatives=body.alternatives,
        tags=body.tags,
    )
    if body.language is not None and body.language != summary["language"]:
        _entry(session, summary["entry_id"]).language = body.language
        suggestion = session.get(FaqSuggestion, suggestion_id)
        assert suggestion is not None
        suggestion.language = summary["language"] = body.language
        session.flush()
    return summary, log


# ---------------------------------------------------------------- handlers


def _flag(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise ApiError(400, f"{name}: true or false")


def _count(request: web.Request, name: str, default: int, ceiling: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise ApiError(400, f"{name}: a whole number")
    return min(int(raw), ceiling)


async def list_entries(request: web.Request) -> web.StreamResponse:
    language = request.query.get("language") or None
    if language not in (None, "fa", "en"):
        raise ApiError(400, "language: fa or en")
    enabled = _flag(request, "enabled")
    limit = max(1, _count(request, "limit", 100, 500))
    offset = _count(request, "offset", 0, 2**31)
    words = normalize(request.query.get("q", "")[:MAX_QUESTION]).split()
    query = select(FaqEntry).order_by(FaqEntry.id)
    if language is not None:
        query = query.where(FaqEntry.language == language)
    if enabled is not None:
        query = query.where(FaqEntry.enabled.is_(enabled))
    async with request.app[SERVICES].sessions() as session:
        entries = [e for e in (await session.scalars(query)).all() if _matches(e, words)]
    return json_response(
        {
            "entries": [entry_view(e) for e in entries[offset : offset + limit]],
            "total": len(entries),
        }
    )


async def get_entry(request: web.Request) -> web.StreamResponse:
    entry_id = int_param(request, "id")
    async with request.app[SERVICES].sessions() as session:
        entry = await session.get(FaqEntry, entry_id)
    if entry is None:
        raise ApiError(404, f"not found: FAQ entry {entry_id}")
    return json_response(entry_view(entry))


async def add_entry(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, EntryBody)
    services = request.app[SERVICES]
    entry = await services.actions.run(create_entry, body.model_dump(), principal(request).id)
    return json_response(entry, status=201)


async def change_entry(request: web.Request) -> web.StreamResponse:
    entry_id = int_param(request, "id")
    body = await read_json(request, EntryPatchBody)
    changes = {key: getattr(body, key) for key in body.model_fields_set}
    services = request.app[SERVICES]
    entry = await services.actions.run(update_entry, entry_id, changes, principal(request).id)
    return json_response(entry)


async def remove_entry(request: web.Request) -> web.StreamResponse:
    entry_id = int_param(request, "id")
    await request.app[SERVICES].actions.run(delete_entry, entry_id, principal(request).id)
    return json_response({"deleted": entry_id})


async def _yaml_text(request: web.Request) -> str:
    """The uploaded file: a `file` part of a form, or the raw body as YAML; UTF-8 only."""
    limit = request.app[SERVICES].config.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"body larger than {limit} bytes")
    try:
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = form.get("file")
            if part is None or isinstance(part, str | bytes | bytearray):
                raise ApiError(422, "file: attach the YAML file as the `file` part")
            raw = part.file.read()
        elif request.content_type in YAML_TYPES:
            raw = await request.read()
        else:
            raise ApiError(415, "send the YAML file (application/yaml) or a form with `file`")
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"body larger than {limit} bytes") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "the file is not UTF-8 text") from None
    if not text.strip():
        raise ApiError(422, "the file is empty")
    if "\x00" in text:
        raise ApiError(422, "the file must not contain NUL characters")
    return text


async def import_faq(request: web.Request) -> web.StreamResponse:
    replace = bool(_flag(request, "replace"))
    text = await _yaml_text(request)
    services = request.app[SERVICES]
    try:
        result = await services.actions.run(import_entries, text, replace, principal(request).id)
    except knowledge.KnowledgeError as exc:
        return error(422, f"nothing imported: {exc}", problems=exc.problems[:100])
    return json_response({"replace": replace, **asdict(result)})


async def export_faq(request: web.Request) -> web.StreamResponse:
    async with request.app[SERVICES].sessions() as session:
        text = await session.run_sync(knowledge.export_yaml)
    return web.Response(
        text=text,
        content_type="application/yaml",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="faq.yaml"'},
    )


async def list_suggestions(request: web.Request) -> web.StreamResponse:
    status = request.query.get("status") or "pending"
    if status not in ("pending", "approved", "rejected"):
        raise ApiError(400, "status: pending, approved or rejected")
    limit = max(1, _count(request, "limit", 100, 500))
    async with request.app[SERVICES].sessions() as session:
        rows = (
            await session.scalars(
                select(FaqSuggestion)
                .where(FaqSuggestion.status == status)
                .order_by(FaqSuggestion.id.desc() if status != "pending" else FaqSuggestion.id)
                .limit(limit)
            )
        ).all()
        pending = await session.scalar(
            select(func.count()).where(FaqSuggestion.status == "pending")
        )
    return json_response(
        {"suggestions": [faq_suggestion_summary(s) for s in rows], "pending": int(pending or 0)}
    )


async def approve_suggestion(request: web.Request) -> web.StreamResponse:
    suggestion_id = int_param(request, "id")
    body = await read_json(request, ApproveBody)
    services = request.app[SERVICES]
    try:
        result = await services.actions.run(
            approve, suggestion_id, principal(request).id, services.actions.now(), body
        )
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return json_response(result)


async def reject_suggestion(request: web.Request) -> web.StreamResponse:
    suggestion_id = int_param(request, "id")
    services = request.app[SERVICES]
    try:
        result = await services.actions.run(
            admin_actions.reject_faq_suggestion,
            suggestion_id,
            principal(request).id,
            services.actions.now(),
        )
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return json_response(result)


async def suggest(request: web.Request) -> web.StreamResponse:
    conversation_id = int_param(request, "id")
    body = await read_json(request, SuggestionBody)
    services = request.app[SERVICES]
    async with services.sessions() as session:
        await load_visible(session, principal(request), conversation_id)
    suggestion = await services.actions.suggest_faq(
        conversation_id, principal(request).id, body.question, body.answer
    )
    return json_response(faq_suggestion_summary(suggestion), status=201)


async def take_over(request: web.Request) -> web.StreamResponse:
    conversation_id = int_param(request, "id")
    services = request.app[SERVICES]
    async with services.sessions() as session:
        await load_visible(session, principal(request), conversation_id)
    conversation = await services.actions.take_over(conversation_id, principal(request).id)
    return json_response(conversation_summary(conversation))


ROUTES = [
    ApiRoute(
        "GET",
        "/faq/entries",
        list_entries,
        "agent",
        "FAQ entries, searched (`q`, Persian-normalized) and filtered by language and state",
        query=("q", "language", "enabled", "limit", "offset"),
    ),
    ApiRoute("POST", "/faq/entries", add_entry, "admin", "Add an FAQ entry", body=EntryBody),
    ApiRoute("GET", "/faq/entries/{id}", get_entry, "agent", "One FAQ entry"),
    ApiRoute(
        "PATCH",
        "/faq/entries/{id}",
        change_entry,
        "admin",
        "Edit an FAQ entry, or enable or disable it",
        body=EntryPatchBody,
    ),
    ApiRoute("DELETE", "/faq/entries/{id}", remove_entry, "admin", "Delete an FAQ entry"),
    ApiRoute(
        "POST",
        "/faq/import",
        import_faq,
        "admin",
        "Import a YAML knowledge base (`replace=true`: it replaces every entry); all or nothing",
        query=("replace",),
    ),
    ApiRoute("GET", "/faq/export", export_faq, "admin", "The knowledge base as a YAML file"),
    ApiRoute(
        "GET",
        "/faq/suggestions",
        list_suggestions,
        "admin",
        "The review queue: suggested entries (`status`, default pending)",
        query=("status", "limit"),
    ),
    ApiRoute(
        "POST",
        "/faq/suggestions/{id}/approve",
        approve_suggestion,
        "admin",
        "Approve a suggestion, optionally edited: it becomes an FAQ entry",
        body=ApproveBody,
    ),
    ApiRoute(
        "POST",
        "/faq/suggestions/{id}/reject",
        reject_suggestion,
        "admin",
        "Reject a suggestion",
    ),
    ApiRoute(
        "POST",
        "/conversations/{id}/faq-suggestion",
        suggest,
        "agent",
        "Suggest an FAQ entry from a conversation: the customer's question and the answer given",
        body=SuggestionBody,
    ),
    ApiRoute(
        "POST",
        "/conversations/{id}/take-over",
        take_over,
        "agent",
        "Take a conversation over from the bot: assigned to the caller, the bot silenced",
    ),
]
