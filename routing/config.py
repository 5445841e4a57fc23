"""Teams, routing rules, assignment defaults and business hours, as config.yaml gives them."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jdatetime  # type: ignore[import-untyped]
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

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
    business_hours: str | None = None
    """The name of this team's own hours in `routing.calendars` (default: `business_hours`)."""


class RuleConfig(_Frozen):
    """The first rule whose conditions all hold picks the team. Empty conditions always hold."""

    team: str
    channels: tuple[str, ...] = ()
    language: Literal["fa", "en"] | None = None
    keywords: tuple[str, ...] = ()
    """Any one of these, matched after Persian normalization, in the subject or text."""
    customer_labels: tuple[str, ...] = ()


_HOLIDAY = re.compile(r"^(?:(\d{4})-)?(\d{1,2})-(\d{1,2})$")
_JALALI_MONTH_DAYS = (31, 31, 31, 31, 31, 31, 30, 30, 30, 30, 30, 30)


class HolidayConfig(_Frozen):
    """A closed day, or `days` closed days from it. `date` is `YYYY-MM-DD` (that year only) or
    `MM-DD` (every year), in the Gregorian or the Jalali (Solar Hijri) calendar. Shorthands:
    a plain date (`2026-03-20`), or `{jalali: 01-01}` / `{gregorian: 12-25}` with the rest."""

    date: str
    calendar: Literal["gregorian", "jalali"] = "gregorian"
    days: int = Field(default=1, ge=1, le=31)
    name: str = Field(default="", max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str | date):
            return {"date": str(value)}
        if isinstance(value, dict):
            value = dict(value)
            for calendar in ("jalali", "gregorian"):
                if calendar in value and "date" not in value:
                    value["date"], value["calendar"] = value.pop(calendar), calendar
            if isinstance(value.get("date"), date):  # YAML reads an unquoted date as one
                value["date"] = value["date"].isoformat()
        return value

    @model_validator(mode="after")
    def _real_day(self) -> HolidayConfig:
        found = _HOLIDAY.match(self.date)
        if found is None:
            raise ValueError(f"date: {self.date!r} is not YYYY-MM-DD or MM-DD")
        year, month, day = (int(part) if part else None for part in found.groups())
        assert month is not None and day is not None
        try:
            if self.calendar == "jalali":
                if year is not None:
                    jdatetime.date(year, month, day)
                elif not (1 <= month <= 12 and 1 <= day <= _JALALI_MONTH_DAYS[month - 1]):
                    raise ValueError
            else:
                date(year or 2024, month, day)  # 2024: a leap year, so 02-29 is a day
        except ValueError:
            raise ValueError(
                f"date: {self.date!r} is no day of the {self.calendar} calendar"
            ) from None
        return self

    @property
    def parts(self) -> tuple[int | None, int, int]:
        """(year or None for every year, month, day)."""
        found = _HOLIDAY.match(self.date)
        assert found is not None
        year, month, day = found.groups()
        return (int(year) if year else None, int(month), int(day))


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?:in)?)?$")


def _minutes(value: Any) -> Any:
    """`90`, `"90m"`, `"1.5h"` or `"1h30m"` → 90.0 (minutes of business time)."""
    if isinstance(value, str):
        found = _DURATION.match(value.replace(" ", "").lower())
        if not value.strip() or found is None or not any(found.groups()):
            raise ValueError(f"{value!r} is not a duration like 30m, 4h or 1h30m")
        hours, minutes = found.groups()
        return float(hours or 0) * 60 + float(minutes or 0)
    return value


Minutes = Annotated[float, BeforeValidator(_minutes), Field(gt=0, le=60 * 24 * 366)]


class SlaPolicyConfig(_Frozen):
    """Targets for conversations that match every condition given (empty: any). Targets are
    business time of the conversation's team calendar; a target left out is not measured."""

    name: str = Field(min_length=1, max_length=100)
    first_response: Minutes | None = None
    next_response: Minutes | None = None
    resolution: Minutes | None = None
    warn_before: str = "15m"
    """How long before a deadline the assignee and team leads are warned: `15m`, `1h` or a
    share of the target such as `20%`."""
    channels: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    customer_labels: tuple[str, ...] = ()
    """Any one of these on the customer (e.g. VIP)."""
    priorities: tuple[str, ...] = ()

    @field_validator("warn_before")
    @classmethod
    def _warning(cls, value: str) -> str:
        text = str(value).strip()
        if text.endswith("%"):
            try:
                share = float(text[:-1])
            except ValueError:
                share = -1
            if not 0 < share < 100:
                raise ValueError(f"{value!r} is not a share like 20%")
            return text
        _minutes(text)
        return text

    @model_validator(mode="after")
    def _some_target(self) -> SlaPolicyConfig:
        if self.first_response is None and self.next_response is None and self.resolution is None:
            raise ValueError("give at least one of first_response, next_response, resolution")
        return self

    def warning_seconds(self, target_seconds: float) -> float:
        """How many seconds before a deadline of a `target_seconds` clock to warn."""
        if self.warn_before.endswith("%"):
            return target_seconds * float(self.warn_before[:-1]) / 100
        return min(float(_minutes(self.warn_before)) * 60, target_seconds)


class SlaConfig(_Frozen):
    policies: tuple[SlaPolicyConfig, ...] = ()
    """The first policy whose conditions hold runs its clocks on a conversation."""

    @field_validator("policies")
    @classmethod
    def _unique(cls, value: tuple[SlaPolicyConfig, ...]) -> tuple[SlaPolicyConfig, ...]:
        names = [policy.name for policy in value]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"[{index}].name: the name {name!r} is used twice")
        return value


def _opening_placeholder(value: str) -> str:
    try:
        value.format(opening="")
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"{value!r}: the only placeholder is {{opening}}") from None
    return value


AckText = Annotated[str, Field(min_length=1, max_length=2000), BeforeValidator(str)]


class AcknowledgeTexts(_Frozen):
    fa: AckText
    en: AckText

    @field_validator("fa", "en")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return _opening_placeholder(value)


class AutoAcknowledgeConfig(_Frozen):
    """A message sent when a customer opens a conversation, saying when a human will answer."""

    enabled: bool = False
    channels: tuple[str, ...] = ()
    """Only on these channels (empty: every channel)."""
    when: Literal["outside_hours", "always"] = "outside_hours"
    closed: AcknowledgeTexts = AcknowledgeTexts(
        fa="پیامتان رسید. الان خارج از ساعت کاری هستیم؛ از {opening} پاسخ می‌دهیم.",
        en="We have your message. We're closed now and will answer from {opening}.",
    )
    """Outside business hours; `{opening}` is when the desk opens again."""
    open: AcknowledgeTexts = AcknowledgeTexts(
        fa="پیامتان رسید؛ به‌زودی یکی از همکاران ما همین‌جا پاسخ می‌دهد.",
        en="We have your message; someone from our team will answer you here shortly.",
    )
    """Within business hours (only with `when: always`)."""


class BusinessHoursConfig(_Frozen):
    timezone: str = "Asia/Tehran"
    week: dict[Weekday, tuple[str, ...]] = Field(default_factory=lambda: dict(_IRAN_WEEK))
    """Opening spans per weekday (`HH:MM-HH:MM`, `00:00-24:00` all day; a span ends by
    midnight: a night shift is two spans); days not listed are closed."""
    holidays: tuple[HolidayConfig, ...] = ()

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


class CsatText(_Frozen):
    """What a satisfaction survey says in one language."""

    question: str = Field(min_length=1, max_length=1000)
    link_intro: str = Field(min_length=1, max_length=1000)
    """Above the five links of a survey sent by email (channels without buttons)."""
    ratings: tuple[str, str, str, str, str]
    """The buttons' labels for ratings 1 to 5 (shown best first)."""
    ask_comment: str = Field(min_length=1, max_length=1000)
    thanks: str = Field(min_length=1, max_length=1000)


class CsatTexts(_Frozen):
    fa: CsatText = CsatText(
        question="از پاسخگویی ما در این گفتگو چقدر راضی بودید؟ لطفاً از ۱ تا ۵ امتیاز بدهید.",
        link_intro="برای امتیاز دادن کافی است روی یکی از پیوندهای زیر بزنید:",
        ratings=("۱ خیلی بد", "۲ ضعیف", "۳ متوسط", "۴ خوب", "۵ ⭐ عالی"),
        ask_comment="سپاس از امتیاز شما! اگر نکته‌ای دارید که بخواهید اضافه کنید، همین‌جا بنویسید.",
        thanks="از شما سپاسگزاریم؛ نظرتان ثبت شد.",
    )
    en: CsatText = CsatText(
        question="How satisfied were you with our help in this conversation? Please rate us "
        "from 1 to 5.",
        link_intro="To rate us, just click one of these links:",
        ratings=("1 Very poor", "2 Poor", "3 Okay", "4 Good", "5 ⭐ Excellent"),
        ask_comment="Thank you for your rating! If there is anything you would like to add, "
        "just write it here.",
        thanks="Thank you, your feedback has been recorded.",
    )


class CsatConfig(_Frozen):
    """Satisfaction surveys sent when a conversation is resolved (see docs/csat.md)."""

    channels: tuple[str, ...] = ()
    """Names of the channels whose customers are asked; empty: no surveys at all."""
    quiet_hours: float = Field(default=24.0, ge=0)
    """A customer asked within this time is not asked again."""
    expires_hours: float = Field(default=72.0, gt=0)
    """How long the buttons and the email links take an answer."""
    low_score: int = Field(default=2, ge=0, le=4)
    """A rating at or below this notifies the team's leads and the assignee."""
    ask_comment: bool = True
    """After a rating in a chat, ask for an optional comment (the next message within
    `comment_minutes` becomes it)."""
    comment_minutes: float = Field(default=10.0, gt=0, le=1440)
    texts: CsatTexts = CsatTexts()


class RoutingConfig(_Frozen):
    teams: tuple[TeamConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()
    default_team: str | None = None
    default_capacity: int = Field(default=10, ge=1, le=1000)
    """How many open conversations an agent takes before the router passes them over."""
    reopen_window_hours: float = Field(default=72.0, ge=0)
    """A reply within this time after resolution reopens the conversation; later, a new one."""
    business_hours: BusinessHoursConfig = BusinessHoursConfig()
    calendars: dict[str, BusinessHoursConfig] = Field(default_factory=dict)
    """Named hours a team follows instead of `business_hours` (`teams[].business_hours`)."""
    sla: SlaConfig = SlaConfig()
    auto_acknowledge: AutoAcknowledgeConfig = AutoAcknowledgeConfig()
    bot: BotConfig = BotConfig()
    csat: CsatConfig = CsatConfig()

    @model_validator(mode="after")
    def _teams_exist(self) -> RoutingConfig:
        names = {team.name for team in self.teams}
        for index, rule in enumerate(self.rules):
            if rule.team not in names:
                raise ValueError(f"rules[{index}].team: no team named {rule.team!r}")
        if self.default_team is not None and self.default_team not in names:
            raise ValueError(f"default_team: no team named {self.default_team!r}")
        for index, team in enumerate(self.teams):
            if team.business_hours is not None and team.business_hours not in self.calendars:
                raise ValueError(
                    f"teams[{index}].business_hours: no calendar named "
                    f"{team.business_hours!r} in routing.calendars"
                )
        for index, policy in enumerate(self.sla.policies):
            for team_name in policy.teams:
                if team_name not in names:
                    raise ValueError(f"sla.policies[{index}].teams: no team named {team_name!r}")
        return self
