"""The reply window: channels that allow free-form replies only for a while after the
customer's last message (Meta's 24 hours), and the approved templates they may send outside it.

A channel declares both (`channels.base.HasReplyWindow`, `HasTemplates`); this module measures
the window from the conversation's newest customer message and checks a template send."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select

from channels.base import HasReplyWindow, HasTemplates, Template, TemplateMessage
from storage.models import Message

MAX_PARAMETER = 1024
"""Characters in one template parameter (WhatsApp's limit for a body parameter)."""
_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class ReplyRules:
    """What a channel allows: free-form replies for `window` after the customer's last message
    (None: always), and the templates it can send."""

    window: timedelta | None = None
    templates: tuple[Template, ...] = ()

    def template(self, name: str) -> Template | None:
        return next((t for t in self.templates if t.name == name), None)


NO_RULES = ReplyRules()


def rules_of(channel: object | None) -> ReplyRules:
    """The rules a channel object declares; none for an unknown channel."""
    if channel is None:
        return NO_RULES
    window = channel.reply_window if isinstance(channel, HasReplyWindow) else None
    templates = tuple(channel.templates) if isinstance(channel, HasTemplates) else ()
    return ReplyRules(window, templates) if window is not None or templates else NO_RULES


@dataclass(frozen=True, slots=True)
class Window:
    """A conversation's reply window now: when it closes (None: no window, or never opened)."""

    closes_at: datetime | None
    open: bool

    def view(self) -> dict[str, Any]:
        """As the API shows it."""
        return {
            "closes_at": self.closes_at.isoformat() if self.closes_at else None,
            "open": self.open,
        }


def last_customer_message(conversation_id: int) -> Select[tuple[datetime, dict[str, Any]]]:
    """When the conversation's newest customer message was stored, and its metadata."""
    return (
        select(Message.created_at, Message.metadata_)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == "in",
            Message.author_kind == "customer",
        )
        .order_by(Message.id.desc())
        .limit(1)
    )


def wrote_at(created_at: datetime, metadata: Mapping[str, Any] | None) -> datetime:
    """When the customer wrote: the channel's `received_at` if earlier than when we stored it
    (a queue backlog must not stretch the window the provider measures)."""
    raw = metadata.get("received_at") if isinstance(metadata, Mapping) else None
    try:
        received = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        received = None
    if received is None or received.tzinfo is None:
        return created_at
    return min(created_at, received)


def window_at(rules: ReplyRules, last: datetime | None, now: datetime) -> Window:
    """The window given the customer's last message (`last`, None if they never wrote)."""
    if rules.window is None:
        return Window(None, True)
    if last is None:
        return Window(None, False)
    closes_at = last + rules.window
    return Window(closes_at, now < closes_at)


def template_message(
    channel: str, rules: ReplyRules, name: str, parameters: Sequence[str]
) -> tuple[TemplateMessage, Template]:
    """The template to send, checked against the channel's list; `ValueError` says what is
    wrong (unknown name, wrong number of parameters, an empty or unsendable value)."""
    if not rules.templates:
        raise ValueError(f"channel {channel!r} has no templates")
    template = rules.template(name)
    if template is None:
        known = ", ".join(t.name for t in rules.templates)
        raise ValueError(f"name: no template {name!r} on channel {channel!r} (it has: {known})")
    expected = len(template.parameters)
    if len(parameters) != expected:
        names = f" ({', '.join(template.parameters)})" if expected else ""
        raise ValueError(
            f"parameters: template {name!r} takes {expected}{names}, not {len(parameters)}"
        )
    values = tuple(value.strip() for value in parameters)
    for index, value in enumerate(values, start=1):
        if not value:
            raise ValueError(f"parameters[{index}]: empty; every parameter needs a value")
        if len(value) > MAX_PARAMETER:
            raise ValueError(f"parameters[{index}]: at most {MAX_PARAMETER} characters")
        if "\n" in value or "\t" in value or "     " in value:
            raise ValueError(
                f"parameters[{index}]: no line breaks, tabs or runs of spaces (WhatsApp "
                "refuses them)"
            )
    return TemplateMessage(template.name, template.language, values), template


def rendering(template: Template, values: Sequence[str]) -> str:
    """What the agent and the customer history read for a sent template."""
    if template.text:

        def value(match: re.Match[str]) -> str:
            index = int(match.group(1)) - 1
            return values[index] if 0 <= index < len(values) else match.group(0)

        return f"[template: {template.name}] {_PLACEHOLDER.sub(value, template.text)}"
    return f"[template: {template.name}] {' · '.join(values)}".rstrip()


def template_of(metadata: Mapping[str, Any] | None) -> TemplateMessage | None:
    """The template a stored message sends (its `template` metadata), if any."""
    data = metadata.get("template") if isinstance(metadata, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    name, language, values = data.get("name"), data.get("language"), data.get("parameters")
    if not isinstance(name, str) or not isinstance(language, str) or not isinstance(values, list):
        return None
    return TemplateMessage(name, language, tuple(str(v) for v in values))


def template_metadata(message: TemplateMessage) -> dict[str, Any]:
    return {
        "name": message.name,
        "language": message.language,
        "parameters": list(message.parameters),
    }


def template_view(template: Template) -> dict[str, Any]:
    """A template as the API lists it."""
    return {
        "name": template.name,
        "language": template.language,
        "parameters": list(template.parameters),
        "text": template.text,
    }
