"""Business-hour arithmetic: when the desk is open, when it opens next, and how much open time
lies between two moments, in the calendar's own time zone, with its holidays (Gregorian or
Jalali, once or every year), across nights, weekends and daylight-saving changes.

Opening spans are wall-clock times: a 09:00-17:00 day is eight hours whatever the UTC offset,
and a 00:00-24:00 day on which the clocks go forward has 23 hours."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import jdatetime  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.config import BusinessHoursConfig, HolidayConfig, RoutingConfig
from storage.models import Team

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEARCH_DAYS = 800
"""How far ahead to look for open time before deciding the calendar never opens (holidays
cannot close more than a year, so two years of closed days mean closed for good)."""


def _spans(hours: BusinessHoursConfig) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Per weekday (Monday first): the opening spans as (start, end) minutes after midnight."""
    week: list[tuple[tuple[int, int], ...]] = []
    for day in _DAYS:
        spans = []
        for span in hours.week.get(day, ()):  # type: ignore[call-overload]
            start = int(span[:2]) * 60 + int(span[3:5])
            end = int(span[6:8]) * 60 + int(span[9:11])
            spans.append((start, end))
        week.append(tuple(sorted(spans)))
    return tuple(week)


def _wall(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """The UTC moment of the wall-clock time `minutes` after `day`'s midnight (24:00 is the next
    midnight). A time the clocks skip reads with the offset before the change."""
    day += timedelta(days=minutes // (24 * 60))
    minutes %= 24 * 60
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone)
    return local.astimezone(UTC)


class BusinessCalendar:
    """Opening hours and holidays of one calendar. Immutable once built; the holidays of each
    year are worked out once and remembered."""

    __slots__ = ("_holidays", "_week", "_years", "_zone", "opens")

    def __init__(self, hours: BusinessHoursConfig) -> None:
        self._zone = ZoneInfo(hours.timezone)
        self._week = _spans(hours)
        self._holidays: tuple[HolidayConfig, ...] = hours.holidays
        self._years: dict[int, frozenset[date]] = {}
        self.opens = any(self._week)
        """False when no weekday has opening hours: nothing ever opens."""

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def is_holiday(self, day: date) -> bool:
        """Whether the local date `day` is one of the holidays."""
        return day in self._holidays_of(day.year)

    def _holidays_of(self, year: int) -> frozenset[date]:
        known = self._years.get(year)
        if known is None:
            days: set[date] = set()
            for holiday in self._holidays:
                for first in _first_days(holiday, year):
                    days.update(first + timedelta(days=n) for n in range(holiday.days))
            # A holiday of several days may start in the year before (29 Esfand + 2 days).
            for holiday in self._holidays:
                if holiday.days > 1:
                    for first in _first_days(holiday, year - 1):
                        days.update(first + timedelta(days=n) for n in range(holiday.days))
            known = self._years[year] = frozenset(d for d in days if d.year == year)
        return known

    def intervals(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """The open intervals (UTC) of the local date `day`; none on a holiday."""
        if self.is_holiday(day):
            return
        for start, end in self._week[day.weekday()]:
            yield _wall(day, start, self._zone), _wall(day, end, self._zone)

    def _from(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals that end after `at`, clipped to start no earlier, in order."""
        day = at.astimezone(self._zone).date() - timedelta(days=1)
        for offset in range(SEARCH_DAYS):
            for start, end in self.intervals(day + timedelta(days=offset)):
                if end > at:
                    yield max(start, at), end

    def is_open(self, at: datetime) -> bool:
        local_day = at.astimezone(self._zone).date()
        return any(start <= at < end for start, end in self.intervals(local_day))

    def next_opening(self, at: datetime) -> datetime | None:
        """The first open moment at or after `at` (`at` itself when open), in the calendar's
        time zone; None when the calendar never opens."""
        if not self.opens:
            return None
        for start, _ in self._from(at):
            return start.astimezone(self._zone)
        return None

    def business_seconds(self, start: datetime, end: datetime) -> float:
        """Open seconds in [start, end); 0 when end is not after start."""
        if end <= start or not self.opens:
            return 0.0
        total = 0.0
        day = start.astimezone(self._zone).date() - timedelta(days=1)
        last = end.astimezone(self._zone).date()
        while day <= last:
            for open_at, close_at in self.intervals(day):
                overlap = (min(close_at, end) - max(open_at, start)).total_seconds()
                if overlap > 0:
                    total += overlap
            day += timedelta(days=1)
        return total

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """The moment at which `seconds` of open time have passed since `start` (UTC). Raises
        `ValueError` when the calendar never opens."""
        left = max(seconds, 0.0)
        if not self.opens:
            raise ValueError("the calendar has no opening hours")
        for open_at, close_at in self._from(start):
            length = (close_at - open_at).total_seconds()
            if left <= length:
                return open_at + timedelta(seconds=left)
            left -= length
        raise ValueError(f"the calendar has no open time in {SEARCH_DAYS} days")


def _first_days(holiday: HolidayConfig, year: int) -> list[date]:
    """The Gregorian first days of `holiday` that fall in Gregorian `year` or bound it."""
    fixed, month, day = holiday.parts
    if holiday.calendar == "gregorian":
        if fixed is not None:
            return [date(fixed, month, day)]
        try:
            return [date(year, month, day)]
        except ValueError:  # 02-29 outside a leap year
            return []
    if fixed is not None:
        return [jdatetime.date(fixed, month, day).togregorian()]
    found = []
    for jalali_year in (year - 622, year - 621):  # the Jalali years overlapping `year`
        try:
            found.append(jdatetime.date(jalali_year, month, day).togregorian())
        except ValueError:  # 30 Esfand outside a leap year
            continue
    return found


_CACHE: dict[int, tuple[RoutingConfig, dict[str | None, BusinessCalendar]]] = {}
_CACHE_SIZE = 32


def calendar_for(config: RoutingConfig, team: str | None) -> BusinessCalendar:
    """The calendar of the team named `team` (its own hours, if it has them), else the default
    `routing.business_hours`. Built once per configuration and team."""
    cached = _CACHE.get(id(config))
    if cached is None or cached[0] is not config:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        cached = _CACHE[id(config)] = (config, {})
    calendars = cached[1]
    calendar = calendars.get(team)
    if calendar is None:
        hours = config.business_hours
        for team_config in config.teams:
            if team_config.name == team and team_config.business_hours is not None:
                hours = config.calendars[team_config.business_hours]
        calendar = calendars[team] = BusinessCalendar(hours)
    return calendar


def team_calendar(session: Session, config: RoutingConfig, team_id: int | None) -> BusinessCalendar:
    """`calendar_for` a conversation's team by id; reads the team's name only when some team
    has hours of its own (otherwise every team follows the default, with no query)."""
    name = None
    if team_id is not None and any(team.business_hours for team in config.teams):
        name = session.scalar(select(Team.name).where(Team.id == team_id))
    return calendar_for(config, name)
