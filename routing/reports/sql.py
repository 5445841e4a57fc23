"""SQL expressions that differ between SQLite and PostgreSQL (epoch seconds, JSON values,
local day, week and hour buckets), and medians and 90th percentiles like `percentile_cont`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, String, Subquery, case, cast, func, text, tuple_
from sqlalchemy import Integer as SqlInteger
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncSession

from routing.reports.periods import DAY, EPOCH_WEEKDAY, Period, offsets, pairs
from storage.models import RESOLUTIONS_INDEX, RESOLVED_EVENTS, Conversation, Event


class Sql:
    """Expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, dialect: str, period: Period) -> None:
        self.sqlite = dialect == "sqlite"
        self.period = period
        self.offsets = offsets(period.since, period.until, period.zone)

    def epoch(self, column: Any) -> ColumnElement[Any]:
        if self.sqlite:
            return (func.julianday(column) - 2440587.5) * 86400.0
        # date_part is double precision (microseconds kept); extract's numeric was slower.
        return func.date_part("epoch", column)

    def resolutions(self) -> Subquery:
        """The events that resolved a conversation (`created_at`, `conversation_id`), read
        from the partial index `RESOLUTIONS_INDEX` alone: the WHERE is the index's own text (a
        bound parameter would not match it), and SQLite is told the index by name, since its
        planner otherwise takes the wider `(type, created_at)` and reads every event row."""
        hint = f" INDEXED BY {RESOLUTIONS_INDEX}" if self.sqlite else ""
        where = RESOLVED_EVENTS["sqlite" if self.sqlite else "postgresql"]
        return (
            text(f"SELECT created_at, conversation_id FROM events{hint} WHERE {where}")
            .columns(Event.created_at, Event.conversation_id)
            .subquery("resolutions")
        )

    def bot_flag(self) -> ColumnElement[bool]:
        """Whether the bot took a turn in the conversation: every bot turn keeps its state in
        `metadata["bot"]` (routing/bot_turns.py), so the flag costs no look-up elsewhere."""
        if self.sqlite:
            return func.json_type(Conversation.metadata_, "$.bot").is_not(None)
        return Conversation.metadata_.op("->")("bot").is_not(None)

    def unindexed(self, column: Any) -> Any:
        """`column` as an expression SQLite cannot read from an index: grouping by a plain
        column that leads an index, it scans the whole table in that index's order instead of
        the period's range (a month's agents table took 300 ms instead of 5)."""
        if not self.sqlite:
            return column
        return column.concat("") if isinstance(column.type, String) else column + 0

    def seconds(self, end: Any, start: Any) -> ColumnElement[Any]:
        return self.epoch(end) - self.epoch(start)

    def _floor(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        # Values are positive (after 1970): a cast truncates on SQLite; PostgreSQL's rounds.
        return cast(value if self.sqlite else func.floor(value), SqlInteger)

    def local(self, column: Any) -> ColumnElement[Any]:
        """Local epoch seconds: UTC epoch plus the offset in force at that instant."""
        offset: ColumnElement[Any] | int
        if len(self.offsets) == 1:
            offset = self.offsets[0][1]
        else:
            offset = case(
                *((column < start, previous) for (start, _), (_, previous) in pairs(self.offsets)),
                else_=self.offsets[-1][1],
            )
        return self.epoch(column) + offset

    def day(self, column: Any) -> ColumnElement[Any]:
        """Days since 1970-01-01 in the report's zone."""
        return self._floor(self.local(column) / DAY)

    def bucket(self, column: Any) -> ColumnElement[Any]:
        """The day number of the bucket's first day."""
        day = self.day(column)
        if self.period.group == "day":
            return day
        shift = (EPOCH_WEEKDAY - self.period.week_start) % 7
        return ((day + shift) // 7) * 7 - shift

    def hour(self, column: Any) -> ColumnElement[Any]:
        return self._floor(self.local(column) / 3600) % 24

    def weekday(self, column: Any) -> ColumnElement[Any]:
        return (self.day(column) + EPOCH_WEEKDAY) % 7


_PERCENTILES = {"median": 0.5, "p90": 0.9}


async def percentiles(
    session: AsyncSession,
    sql: Sql,
    keys: Sequence[Any],
    seconds: ColumnElement[Any],
    query: Select[Any],
    *counts: ColumnElement[Any],
) -> tuple[list[dict[Any, dict[str, Any]]], dict[str, Any]]:
    """Count, median and p90 of `seconds` (its NULLs left out) per value of each of `keys`
    and over all rows of `query` (a select giving the rows' FROM and WHERE), interpolated
    like PostgreSQL's `percentile_cont`; `counts` are further additive aggregates (counts,
    sums) of the same rows, returned as `"counts"`, so one scan serves them too.

    PostgreSQL computes them (grouping sets give every key and the totals in the same scan).
    SQLite has no such aggregate: the values of each combination of keys come back as one
    `group_concat` text of milliseconds and are merged and sorted here. Row by row, 100k
    values took longer to fetch than the whole rest of a year's report; ranking them with
    window functions in SQLite took longer still."""
    by_keys: list[dict[Any, dict[str, Any]]] = [{} for _ in keys]
    if not sql.sqlite:
        marks = func.percentile_cont(array(list(_PERCENTILES.values()))).within_group(seconds)
        rows = await session.execute(
            query.add_columns(
                *(func.grouping(key) for key in keys),
                *keys,
                func.count(seconds),
                marks,
                *counts,
            ).group_by(func.grouping_sets(*(tuple_(key) for key in keys), tuple_()))
        )
        total: dict[str, Any] = {
            "n": 0,
            **dict.fromkeys(_PERCENTILES),
            "counts": [0] * len(counts),
        }
        width = len(keys)
        for row in rows:
            grouped, keyed = row[:width], row[width : 2 * width]
            n, marked, *summed = row[2 * width :]  # one sort gives both percentiles
            found = {
                "n": int(n),
                **{
                    name: _number(v)
                    for name, v in zip(_PERCENTILES, marked or [None, None], strict=True)
                },
                "counts": [int(v or 0) for v in summed],
            }
            if all(grouped):
                total = found
            else:
                at = grouped.index(0)
                by_keys[at][keyed[at]] = found
        return by_keys, total
    # Whole milliseconds, all SQLite's date functions keep: integers join and parse faster.
    milliseconds = cast(func.round(seconds * 1000), SqlInteger)
    found_rows = await session.execute(
        query.add_columns(*keys, func.group_concat(milliseconds), *counts).group_by(*keys)
    )
    lists: list[dict[Any, list[int]]] = [defaultdict(list) for _ in keys]
    sums: list[dict[Any, list[int]]] = [defaultdict(lambda: [0] * len(counts)) for _ in keys]
    every: list[int] = []
    for row in found_rows:
        joined, summed = row[len(keys)], [int(v or 0) for v in row[len(keys) + 1 :]]
        values = [int(v) for v in joined.split(",")] if joined else []
        every.extend(values)
        for i, k in enumerate(row[: len(keys)]):
            lists[i][k].extend(values)
            sums[i][k] = [a + b for a, b in zip(sums[i][k], summed, strict=True)]
    for i in range(len(keys)):
        for k, values in lists[i].items():
            by_keys[i][k] = {**_interpolate(values, 1000), "counts": sums[i][k]}
    overall = [sum(column) for column in zip(*sums[0].values(), strict=True)] if keys else []
    return by_keys, {**_interpolate(every, 1000), "counts": overall or [0] * len(counts)}


async def sums(
    session: AsyncSession, keys: Sequence[Any], query: Select[Any], *counts: ColumnElement[Any]
) -> tuple[list[dict[Any, list[int]]], list[int]]:
    """Additive aggregates (counts, sums) of `query`'s rows per value of each of `keys`, and
    over all of them: one `GROUP BY` of every combination, added up here."""
    by_keys: list[dict[Any, list[int]]] = [defaultdict(lambda: [0] * len(counts)) for _ in keys]
    total = [0] * len(counts)
    for row in await session.execute(query.add_columns(*keys, *counts).group_by(*keys)):
        summed = [int(v or 0) for v in row[len(keys) :]]
        total = [a + b for a, b in zip(total, summed, strict=True)]
        for i, k in enumerate(row[: len(keys)]):
            by_keys[i][k] = [a + b for a, b in zip(by_keys[i][k], summed, strict=True)]
    return [dict(found) for found in by_keys], total


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _interpolate(values: list[int], per_second: int) -> dict[str, Any]:
    """`{"n", "median", "p90"}` in seconds of `values` (`per_second` to a second), as
    `percentile_cont` gives them."""
    values.sort()
    n = len(values)
    result: dict[str, Any] = {"n": n}
    for name, p in _PERCENTILES.items():
        if n == 0:
            result[name] = None
            continue
        position = (n - 1) * p
        low = int(position)
        above = values[min(low + 1, n - 1)]
        result[name] = (values[low] + (above - values[low]) * (position - low)) / per_second
    return result
