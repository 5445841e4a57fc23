"""A rule's conditions (all must hold): what admins write, and whether each holds for the
conversation and the event that triggered the rule. Conditions only read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from bots.normalize import normalize
from routing.actions import conversation_labels
from routing.automation.base import (
    Metric,
    Part,
    Priority,
    RowId,
    SomeWords,
    Status,
    Trigger,
    Word,
    Words,
)
from routing.automation.run import Run
from routing.business_hours import team_calendar
from routing.events import Happened
from storage.models import Conversation


class ChannelIs(Part):
    type: Literal["channel"]
    values: SomeWords
    """Channel names (config.yaml's `channels[].name`)."""


class TextHas(Part):
    """Any of the words, compared after Persian normalization, in the message's subject or text
    (the same matching as routing rules' keywords)."""

    type: Literal["text"]
    words: SomeWords


class LabelsAre(Part):
    """`include`: the conversation (or customer) has at least one of them; `exclude`: none."""

    type: Literal["labels", "customer_labels"]
    include: Words = ()
    exclude: Words = ()

    @model_validator(mode="after")
    def _something(self) -> LabelsAre:
        if not self.include and not self.exclude:
            raise ValueError("give labels to include or exclude")
        return self


class AttributeIs(Part):
    """A customer attribute (`Customer.attributes[key]`) equals, or contains, the value;
    compared as normalized text (a list attribute contains a value it holds)."""

    type: Literal["attribute"]
    key: Word
    op: Literal["equals", "contains"] = "equals"
    value: Annotated[str, StringConstraints(max_length=500)]


class PriorityIs(Part):
    type: Literal["priority"]
    values: Annotated[tuple[Priority, ...], Field(min_length=1, max_length=4)]


class StatusIs(Part):
    """`status`: the conversation's status now; `status_from` / `status_to`: the change that
    triggered a `conversation.status_changed` rule."""

    type: Literal["status", "status_from", "status_to"]
    values: Annotated[tuple[Status, ...], Field(min_length=1, max_length=5)]


class TeamIs(Part):
    type: Literal["team"]
    team_ids: Annotated[tuple[RowId, ...], Field(min_length=1, max_length=100)]


class BusinessHours(Part):
    """`open: true`: within the conversation's team's business hours; `false`: outside them."""

    type: Literal["business_hours"]
    open: bool


class SlaMetricIs(Part):
    type: Literal["sla_metric"]
    values: Annotated[tuple[Metric, ...], Field(min_length=1, max_length=3)]


Condition = Annotated[
    ChannelIs
    | TextHas
    | LabelsAre
    | AttributeIs
    | PriorityIs
    | StatusIs
    | TeamIs
    | BusinessHours
    | SlaMetricIs,
    Field(discriminator="type"),
]

ONLY_FOR: dict[str, tuple[Trigger, ...]] = {
    "text": ("message.created", "conversation.created"),
    "status_from": ("conversation.status_changed",),
    "status_to": ("conversation.status_changed",),
    "sla_metric": ("sla.warning",),
}
"""The conditions that apply only to some triggers (the others apply to every trigger)."""


def holds(run: Run, condition: Any, conversation: Conversation, event: Happened) -> bool:
    """Whether the condition holds for the conversation and the event that triggered the rule."""
    match condition:
        case ChannelIs(values=values):
            return conversation.channel in values
        case TextHas(words=words):
            text = normalize(message_text(run, conversation, event))
            return any(normalize(word) in text for word in words)
        case LabelsAre(type="labels", include=include, exclude=exclude):
            return _labels_hold(conversation_labels(run.session, conversation.id), include, exclude)
        case LabelsAre(include=include, exclude=exclude):
            _, labels = run.customer(conversation.customer_id)
            return _labels_hold(labels, include, exclude)
        case AttributeIs(key=key, op=op, value=value):
            customer, _ = run.customer(conversation.customer_id)
            attributes = customer.attributes if customer is not None else {}
            return _attribute_holds(
                attributes.get(key) if isinstance(attributes, dict) else None, op, value
            )
        case PriorityIs(values=values):
            return conversation.priority in values
        case StatusIs(type="status", values=values):
            return conversation.status in values
        case StatusIs(type="status_from", values=values):
            return event.data.get("from") in values
        case StatusIs(type="status_to", values=values):
            return event.data.get("to") in values
        case TeamIs(team_ids=team_ids):
            return conversation.team_id in team_ids
        case BusinessHours(open=open_):
            calendar = team_calendar(run.session, run.config, conversation.team_id)
            return calendar.is_open(run.now) == open_
        case SlaMetricIs(values=values):
            return event.data.get("metric") in values
    raise AssertionError(f"unknown condition {condition!r}")


def message_text(run: Run, conversation: Conversation, event: Happened) -> str:
    """The triggering message's subject and text; for a new conversation, its first message
    (recorded in the same unit of work), else its subject."""
    message = event.data.get("message")
    if event.type != "message.created":
        message = next(
            (
                e.data.get("message")
                for e in run.events
                if e.type == "message.created" and e.conversation_id == conversation.id
            ),
            None,
        )
    if isinstance(message, dict):
        return f"{message.get('subject') or ''}\n{message.get('text') or ''}"
    return conversation.subject


def _labels_hold(have: Sequence[str], include: Sequence[str], exclude: Sequence[str]) -> bool:
    held = set(have)
    return (not include or bool(held.intersection(include))) and not held.intersection(exclude)


def _attribute_holds(found: Any, op: str, value: str) -> bool:
    if found is None:
        return False
    wanted = normalize(value)
    if isinstance(found, list):
        items = [normalize(str(item)) for item in found]
        return wanted in items if op == "equals" else any(wanted in item for item in items)
    text = normalize(str(found).lower() if isinstance(found, bool) else str(found))
    return text == wanted if op == "equals" else wanted in text
