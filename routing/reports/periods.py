"""Report periods: whole local days in a time zone, their day or week buckets, and the stretches
of constant UTC offset (daylight saving) the SQL bucket arithmetic needs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Group = Literal["day", "week"]
MAX_DAYS = 400
EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)
"""Dates a period may span: bucket arithmetic counts days after 1970 and stays well inside
what every backend's timestamps hold."""
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY = 86400
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


@dataclass(frozen=True, slots=True)
class Period:
    """Whole local days `start`..`end` (inclusive) in `zone`, grouped by day or by week."""

    start: date
    end: date
    zone: ZoneInfo
    group: Group = "day"
    week_start: int = 5
    """The weekday weeks begin on, Monday = 0 (Saturday, 5, as Iranian calendars do)."""

    def __post_init__(self) -> None:
        if self.start < EARLIEST or self.end > LATEST:
            raise ValueError(f"from, to: dates from {EARLIEST} to {LATEST}")
        if self.start > self.end:
            raise ValueError("from: after to")
        if (self.end - self.start).days + 1 > MAX_DAYS:
            raise ValueError(f"period: at most {MAX_DAYS} days")

    @property
    def since(self) -> datetime:
        return midnight(self.start, self.zone)

    @property
    def until(self) -> datetime:
        """The first instant after the period (exclusive)."""
        return midnight(self.end + timedelta(days=1), self.zone)

    def buckets(self) -> list[date]:
        """The first local day of each bucket that overlaps the period, in order."""
        first = self.bucket_start(self.start)
        step = 7 if self.group == "week" else 1
        count = (self.end - first).days // step + 1
        return [first + timedelta(days=step * i) for i in range(count)]

    def bucket_start(self, day: date) -> date:
        if self.group == "day":
            return day
        return day - timedelta(days=(day.weekday() - self.week_start) % 7)


def midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone).astimezone(UTC)


def offsets(since: datetime, until: datetime, zone: ZoneInfo) -> list[tuple[datetime, int]]:
    """`(from, offset seconds)` for each stretch of constant UTC offset in the period. Looked
    for a day at a time (a zone's offset changes months apart), then to the second."""

    def offset(at: datetime) -> int:
        delta = at.astimezone(zone).utcoffset()
        return int(delta.total_seconds()) if delta else 0

    found = [(since, offset(since))]
    at = since
    while at < until:
        following = min(at + timedelta(days=1), until)
        if offset(following) != found[-1][1]:
            # The change happened in (low, high]: find its second (changes fall on whole ones).
            low, high = int(at.timestamp()), int(following.timestamp())
            while high - low > 1:
                middle = (low + high) // 2
                changed = offset(datetime.fromtimestamp(middle, UTC)) != found[-1][1]
                low, high = (low, middle) if changed else (middle, high)
            change = datetime.fromtimestamp(high, UTC)
            found.append((change, offset(change)))
        at = following
    return found


def pairs(
    offsets: list[tuple[datetime, int]],
) -> Iterable[tuple[tuple[datetime, int], tuple[datetime, int]]]:
    """Each change of offset with the stretch before it."""
    return ((offsets[i], offsets[i - 1]) for i in range(1, len(offsets)))
