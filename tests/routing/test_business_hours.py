"""Business-hour arithmetic: nights, weekends, Gregorian and Jalali holidays, time zones and
daylight-saving changes; teams' own calendars; config errors that name the key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from inbox.config import ConfigError, parse_config
from routing.business_hours import BusinessCalendar, calendar_for
from routing.config import BusinessHoursConfig, RoutingConfig

TEHRAN = ZoneInfo("Asia/Tehran")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
IRAN_WEEK = {d: ["09:00-17:00"] for d in ("sat", "sun", "mon", "tue", "wed")} | {
    "thu": ["09:00-13:00"]
}
EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOUR = 3600.0


def calendar(**hours: Any) -> BusinessCalendar:
    return BusinessCalendar(BusinessHoursConfig.model_validate({"week": IRAN_WEEK, **hours}))


def tehran(*args: int) -> datetime:
    return datetime(*args, tzinfo=TEHRAN)  # type: ignore[misc]


def test_a_night_and_the_weekend_are_not_counted() -> None:
    desk = calendar()
    # Monday 16:00 → Tuesday 10:00 in Tehran: one hour on Monday, one on Tuesday.
    assert desk.business_seconds(tehran(2026, 11, 23, 16), tehran(2026, 11, 24, 10)) == 2 * HOUR
    # Thursday closes at 13:00 and Friday is closed: Thu 12:00 + 3h is Saturday 11:00.
    due = desk.add_business_seconds(tehran(2026, 11, 26, 12), 3 * HOUR)
    assert due == tehran(2026, 11, 28, 11)
    assert desk.business_seconds(tehran(2026, 11, 26, 12), due) == 3 * HOUR
    assert not desk.is_open(tehran(2026, 11, 27, 12))  # Friday
    assert desk.is_open(tehran(2026, 11, 28, 9)) and not desk.is_open(tehran(2026, 11, 28, 17))
    opening = desk.next_opening(tehran(2026, 11, 26, 13, 30))
    assert opening is not None and opening.isoformat() == "2026-11-28T09:00:00+03:30"
    assert desk.next_opening(tehran(2026, 11, 28, 10)) == tehran(2026, 11, 28, 10)  # open now
    # A whole week: five 8-hour days and a 4-hour Thursday.
    week = desk.business_seconds(tehran(2026, 11, 21), tehran(2026, 11, 28))
    assert week == 44 * HOUR


def test_a_gregorian_holiday_once_and_every_year() -> None:
    desk = calendar(holidays=["2026-11-24", {"date": "12-01", "name": "once a year"}])
    assert not desk.is_open(tehran(2026, 11, 24, 10))  # a Tuesday, closed this year only
    assert desk.is_open(tehran(2027, 11, 23, 10))
    # Monday 16:00 + 2h skips the holiday Tuesday: Wednesday 10:00.
    assert desk.add_business_seconds(tehran(2026, 11, 23, 16), 2 * HOUR) == tehran(2026, 11, 25, 10)
    assert not desk.is_open(tehran(2026, 12, 1, 10)) and not desk.is_open(tehran(2027, 12, 1, 10))


def test_a_yearly_jalali_holiday_moves_in_the_gregorian_calendar() -> None:
    # Nowruz, 1-4 Farvardin: 20 March in 2024 (1403), 21 March in 2025 (1404).
    week = {d: ["09:00-17:00"] for d in EVERY_DAY}
    desk = calendar(week=week, holidays=[{"jalali": "01-01", "days": 4, "name": "نوروز"}])
    assert not desk.is_open(tehran(2024, 3, 20, 10)) and desk.is_open(tehran(2024, 3, 24, 10))
    assert desk.is_open(tehran(2025, 3, 20, 10)) and not desk.is_open(tehran(2025, 3, 21, 10))
    assert not desk.is_open(tehran(2025, 3, 24, 10)) and desk.is_open(tehran(2025, 3, 25, 10))
    opening = desk.next_opening(tehran(2025, 3, 20, 18))
    assert opening == tehran(2025, 3, 25, 9)
    # 29 Esfand and Nowruz run together across the Jalali new year (and the Gregorian date).
    bridge = calendar(week=week, holidays=[{"jalali": "12-29", "days": 6}])
    assert not bridge.is_open(tehran(2026, 3, 20, 10)) and not bridge.is_open(
        tehran(2026, 3, 25, 10)
    )
    assert bridge.is_open(tehran(2026, 3, 26, 10))


def test_a_jalali_date_of_one_year_and_its_shorthands() -> None:
    week = {d: ["09:00-17:00"] for d in EVERY_DAY}
    desk = calendar(
        week=week,
        holidays=[
            {"date": "1405-03-14", "calendar": "jalali"},  # 4 June 2026
            {"jalali": "1405-11-22"},  # 11 February 2027
        ],
    )
    assert not desk.is_open(tehran(2026, 6, 4, 10)) and desk.is_open(tehran(2027, 6, 4, 10))
    assert not desk.is_open(tehran(2027, 2, 11, 10)) and desk.is_open(tehran(2028, 2, 11, 10))


def test_the_default_iranian_holidays_in_config_yaml() -> None:
    from pathlib import Path

    import yaml

    data = yaml.safe_load(Path(__file__).parents[2].joinpath("config.yaml").read_text("utf-8"))
    config = parse_config(data).routing
    desk = calendar_for(config, None)
    for day in ((2026, 3, 21), (2026, 4, 1), (2026, 6, 4), (2027, 2, 11), (2027, 3, 20)):
        assert desk.is_holiday(tehran(*day).date()), day
    assert not desk.is_holiday(tehran(2026, 11, 23).date())


def test_the_same_moment_in_different_zones() -> None:
    moment = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 10:30 in Tehran, 02:00 in New York
    assert calendar().is_open(moment)
    new_york = calendar(timezone="America/New_York", week={"mon": ["09:00-17:00"]})
    assert not new_york.is_open(moment)
    opening = new_york.next_opening(moment)
    assert opening is not None and opening.isoformat() == "2026-11-23T09:00:00-05:00"
    assert new_york.business_seconds(moment, moment + timedelta(days=1)) == 8 * HOUR


def test_daylight_saving_changes_count_wall_clock_hours() -> None:
    all_day = {d: ["00:00-24:00"] for d in EVERY_DAY}
    berlin = calendar(timezone="Europe/Berlin", week=all_day)
    spring = datetime(2026, 3, 29, tzinfo=BERLIN)  # clocks go 02:00 → 03:00
    assert berlin.business_seconds(spring, spring + timedelta(days=1)) == 23 * HOUR
    assert berlin.is_open(datetime(2026, 3, 29, 23, 59, 59, tzinfo=BERLIN))
    new_york = calendar(timezone="America/New_York", week=all_day)
    autumn = datetime(2026, 11, 1, tzinfo=NEW_YORK)  # clocks go 02:00 → 01:00
    assert new_york.business_seconds(autumn, autumn.replace(day=2)) == 25 * HOUR
    # A working day keeps its eight hours across the change; the deadline is wall-clock 10:00.
    office = calendar(timezone="Europe/Berlin", week={d: ["09:00-17:00"] for d in EVERY_DAY})
    saturday = datetime(2026, 3, 28, 16, 0, tzinfo=BERLIN)
    due = office.add_business_seconds(saturday, 2 * HOUR)
    assert due == datetime(2026, 3, 29, 10, 0, tzinfo=BERLIN)
    assert due.astimezone(UTC) == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)
    assert office.business_seconds(saturday, due) == 2 * HOUR


def test_the_bot_handover_skips_holidays() -> None:
    from routing.bot_turns import next_opening

    hours = BusinessHoursConfig.model_validate(
        {"week": IRAN_WEEK, "holidays": [{"jalali": "1405-09-07", "name": "تعطیل"}]}
    )  # 7 Azar 1405 is Saturday 28 November 2026
    opening = next_opening(hours, tehran(2026, 11, 27, 12))
    assert opening is not None and opening.isoformat() == "2026-11-29T09:00:00+03:30"
    assert next_opening(hours, tehran(2026, 11, 29, 10)) is None  # open now


def test_a_calendar_that_never_opens() -> None:
    closed = calendar(week={})
    assert closed.next_opening(tehran(2026, 11, 23, 10)) is None
    assert closed.business_seconds(tehran(2026, 11, 23), tehran(2026, 12, 23)) == 0
    with pytest.raises(ValueError, match="no opening hours"):
        closed.add_business_seconds(tehran(2026, 11, 23), HOUR)


def test_a_team_follows_its_own_calendar() -> None:
    config = RoutingConfig.model_validate(
        {
            "teams": [{"name": "شب", "business_hours": "nights"}, {"name": "فروش"}],
            "calendars": {
                "nights": {
                    "timezone": "Asia/Tehran",
                    "week": {d: ["00:00-08:00", "20:00-24:00"] for d in EVERY_DAY},
                }
            },
            "business_hours": {"week": IRAN_WEEK},
        }
    )
    night = tehran(2026, 11, 23, 23)
    assert calendar_for(config, "شب").is_open(night)
    assert not calendar_for(config, "فروش").is_open(night)
    assert not calendar_for(config, None).is_open(night)
    assert calendar_for(config, "شب") is calendar_for(config, "شب")  # built once
    # A night shift is two spans: 23:00 + 2h is 01:00 the next day.
    assert calendar_for(config, "شب").add_business_seconds(night, 2 * HOUR) == tehran(
        2026, 11, 24, 1
    )


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        (
            {"business_hours": {"holidays": [{"jalali": "1404-12-30"}]}},
            "routing.business_hours.holidays[0]: Value error, date: '1404-12-30' is no day",
        ),
        (
            {"business_hours": {"holidays": [{"date": "02-30"}]}},
            "routing.business_hours.holidays[0]",
        ),
        ({"business_hours": {"holidays": ["Nowruz"]}}, "is not YYYY-MM-DD or MM-DD"),
        (
            {"teams": [{"name": "a", "business_hours": "nights"}]},
            "teams[0].business_hours: no calendar named 'nights'",
        ),
        (
            {"calendars": {"nights": {"timezone": "Mars/Olympus"}}},
            "routing.calendars.nights.timezone",
        ),
        (
            {"sla": {"policies": [{"name": "vip", "first_response": "4x"}]}},
            "routing.sla.policies[0].first_response",
        ),
        (
            {"sla": {"policies": [{"name": "vip", "resolution": "8h", "warn_before": "120%"}]}},
            "routing.sla.policies[0].warn_before",
        ),
        ({"sla": {"policies": [{"name": "vip"}]}}, "routing.sla.policies[0]: Value error, give"),
        (
            {"sla": {"policies": [{"name": "vip", "resolution": 60, "teams": ["ghosts"]}]}},
            "sla.policies[0].teams: no team named 'ghosts'",
        ),
        (
            {"auto_acknowledge": {"closed": {"fa": "از {زمان}", "en": "from {opening}"}}},
            "routing.auto_acknowledge.closed.fa",
        ),
    ],
)
def test_config_errors_name_the_key(routing: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"routing": routing})
    assert message in str(error.value)
