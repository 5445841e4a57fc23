"""Reading the pipeline's SQLite file from the bench process (read-only, short transactions)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

ROUTED = """
    SELECT count(*) FROM messages JOIN conversations ON conversations.id = messages.conversation_id
    WHERE conversations.assignee_id IS NOT NULL
"""


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _one(self, sql: str) -> int:
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
            return int(db.execute(sql).fetchone()[0])

    def routed(self) -> int:
        """Messages stored in an assigned conversation."""
        return self._one(ROUTED)

    def counts(self) -> dict[str, int]:
        return {
            "messages": self._one("SELECT count(*) FROM messages"),
            "routed": self.routed(),
            "events": self._one("SELECT count(*) FROM events"),
            "queued": self._one("SELECT count(*) FROM queue_entries"),
            "dead_letters": self._one("SELECT count(*) FROM dead_letters"),
        }

    async def wait_routed(self, count: int, *, interval: float = 0.02) -> float:
        """Poll until `count` messages are stored and assigned; return `perf_counter()` of the
        poll that saw it (so the end time is late by at most `interval` plus one query).
        Callers bound the wait with `asyncio.timeout`."""
        # Another process writes the file, so there is nothing to wait on but the file itself.
        while True:
            if self.routed() >= count:
                return time.perf_counter()
            await asyncio.sleep(interval)
