"""Teams, routing rules, assignment defaults and business hours, as config.yaml gives them."""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SPAN = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_IRAN_WEEK: dict[Weekday, tuple[str, ...]] = {
    "sat": ("09:00-17:00",),
    "sun": ("09:00-17:00",),
    "mon": ("09:00-17:00",),
    "tue": ("09:00-17:00",),
    "wed": ("09:00-17:00",),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TeamConfig(_Frozen):
    name: str = Field(min_length=1, max_length=100)
    members: tuple[str, ...] = ()
    """Agents' emails; agents themselves are added with `pishkhan agent add`."""
    leads: tuple[str, ...] = ()


class RuleConfig(_Frozen):
    """The first rule whose conditions all hold picks the team. Empty conditions always hold."""

    team: str
    channels: tuple[str, ...] = ()
    language: Literal["fa", "en"] | None = None
    keywords: tuple[str, ...] = ()
    """Any one of these, matched after Persian normalization, in the subject or text."""
    customer_labels: tuple[str, ...] = ()


class BusinessHoursConfig(_Frozen):
    timezone: str = "Asia/Tehran"
    week: dict[Weekday, tuple[str, ...]] = Field(default_factory=lambda: dict(_IRAN_WEEK))
    """Opening spans per weekday (`HH:MM-HH:MM`); days not listed are closed."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("week")
    @classmethod
    def _spans(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for day, spans in value.items():
            for span in spans:
                if not _SPAN.match(span) or span[:5] >= span[6:]:
                    raise ValueError(f"{day}: {span!r} is not a span like 09:00-17:00")
        return value


class BotNames(_Frozen):
    fa: str = Field(default="دستیار پیشخوان", min_length=1, max_length=100)
    en: str = Field(default="Pishkhan assistant", min_length=1, max_length=100)


class BotConfig(_Frozen):
    """The FAQ bot that takes the first turns on channels configured with `bot: faq`."""

    answer_at: float | None = Field(default=None, ge=0, le=1)
    """Confidence at which the bot answers; None: the matcher's calibrated default."""
    suggest_at: float | None = Field(default=None, ge=0, le=1)
    """Confidence at which it offers the closest questions as choices; None: the default."""
    max_misses: int = Field(default=2, ge=1, le=10)
    """Turns without an answer (choices offered) after which it hands over by itself."""
    knowledge_base: str = "faq.yaml"
    """A YAML knowledge base loaded at start-up into a database that has no FAQ entries yet."""
    name: BotNames = BotNames()
    """The name replies carry (per customer language) where the channel shows an author."""

    @model_validator(mode="after")
    def _ordered(self) -> BotConfig:
        if (
            self.answer_at is not None
            and self.suggest_at is not None
            and self.suggest_at > self.answer_at
        ):
            raise ValueError("suggest_at: must not be above answer_at")
        return self


class RoutingConfig(_Frozen):
    teams: tuple[TeamConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()
    default_team: str | None = None
    default_capacity: int = Field(default=10, ge=1, le=1000)
    """How many open conversations an agent takes before the router passes them over."""
    reopen_window_hours: float = Field(default=72.0, ge=0)
    """A reply within this time after resolution reopens the conversation; later, a new one."""
    business_hours: BusinessHoursConfig = BusinessHoursConfig()
    bot: BotConfig = BotConfig()

    @model_validator(mode="after")
    def _teams_exist(self) -> RoutingConfig:
        names = {team.name for team in self.teams}
        for index, rule in enumerate(self.rules):
            if rule.team not in names:
                raise ValueError(f"rules[{index}].team: no team named {rule.team!r}")
        if self.default_team is not None and self.default_team not in names:
            raise ValueError(f"default_team: no team named {self.default_team!r}")
        return self
