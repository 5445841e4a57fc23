"""What every part of an automation rule shares: the triggers, the mark on what rules record,
the bounded words and ids rules hold, and the error that fails one rule alone."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Trigger = Literal[
    "message.created", "conversation.created", "conversation.status_changed", "sla.warning"
]
TRIGGERS: tuple[Trigger, ...] = (
    "message.created",
    "conversation.created",
    "conversation.status_changed",
    "sla.warning",
)
MARK = "rule_id"
"""The data key every event a rule's actions record carries: such events match no rule."""

Status = Literal["open", "pending", "snoozed", "resolved", "bot"]
Priority = Literal["low", "normal", "high", "urgent"]
Metric = Literal["first_response", "next_response", "resolution"]
Word = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Words = Annotated[tuple[Word, ...], Field(max_length=100)]
SomeWords = Annotated[tuple[Word, ...], Field(min_length=1, max_length=100)]
RowId = Annotated[int, Field(ge=1, le=2**62)]


class Part(BaseModel):
    """A condition, an action or a rule: plain, frozen data that refuses unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AutomationError(Exception):
    """An action could not be done now (its agent or team is gone): the rule fails alone."""
