"""The in-memory plan of an exclusive SQL queue: which entry of which key may run next.

When one process owns the queue (the embedded SQLite default), the table only has to be the
durable log; deciding what runs next needs no query. Entries are kept per key in id order; a key
is offered when its head is due and not already running, so one key's entries run one at a time,
in publish order, while different keys run side by side.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class Entry:
    id: int
    key: str
    payload: bytes
    attempts: int = 0
    available_at: float = 0.0
    """Epoch seconds before which the entry waits (its retry backoff)."""


class Schedule:
    def __init__(self) -> None:
        self._lanes: dict[str, deque[Entry]] = {}
        self._ready: list[tuple[int, str]] = []
        """Heap of (head id, key) for keys whose head is due; stale rows are skipped."""
        self._later: list[tuple[float, int, str]] = []
        """Heap of (available_at, head id, key) for keys whose head waits for its retry."""
        self._busy: set[str] = set()
        self._known: set[int] = set()

    def __len__(self) -> int:
        return len(self._known)

    @property
    def running(self) -> int:
        """Entries taken and not yet finished or postponed."""
        return len(self._busy)

    def add(self, entry: Entry) -> None:
        """Take an entry in; one already known (stored and loaded twice) is ignored."""
        if entry.id in self._known:
            return
        self._known.add(entry.id)
        lane = self._lanes.get(entry.key)
        if lane is None:
            self._lanes[entry.key] = deque([entry])
            self._offer(entry.key)
        elif entry.id > lane[-1].id:
            lane.append(entry)
        else:  # loaded after a later entry of its key was published: it goes first
            bisect.insort(lane, entry, key=lambda e: e.id)
            if lane[0] is entry and entry.key not in self._busy:
                self._offer(entry.key)

    def idle(self, key: str) -> bool:
        """No entry of `key` waits, runs or retries: a new one may be handled at once."""
        return key not in self._lanes

    def take(self, limit: int, now: float) -> list[Entry]:
        """Up to `limit` due entries, at most one per key, oldest first; their keys are busy
        until `finish` or `postpone`."""
        while self._later and self._later[0][0] <= now:
            _, entry_id, key = heapq.heappop(self._later)
            if self._is_head(key, entry_id):
                heapq.heappush(self._ready, (entry_id, key))
        taken: list[Entry] = []
        while self._ready and len(taken) < limit:
            entry_id, key = heapq.heappop(self._ready)
            if not self._is_head(key, entry_id):
                continue
            head = self._lanes[key][0]
            if head.available_at > now:
                heapq.heappush(self._later, (head.available_at, head.id, key))
                continue
            self._busy.add(key)
            taken.append(head)
        return taken

    def finish(self, entry: Entry) -> None:
        """The entry is done (handled or dead-lettered): its key's next entry may run."""
        lane = self._lanes[entry.key]
        assert lane[0] is entry, "only a key's head runs"
        lane.popleft()
        self._known.discard(entry.id)
        self._busy.discard(entry.key)
        if lane:
            self._offer(entry.key)
        else:
            del self._lanes[entry.key]

    def postpone(self, entry: Entry, *, attempts: int, available_at: float) -> None:
        """The entry failed and waits for its retry; its key waits behind it."""
        entry.attempts, entry.available_at = attempts, available_at
        self._busy.discard(entry.key)
        self._offer(entry.key)

    def next_due(self) -> float | None:
        """When the earliest waiting retry is due (possibly stale: an early wake is harmless)."""
        return self._later[0][0] if self._later else None

    def _is_head(self, key: str, entry_id: int) -> bool:
        lane = self._lanes.get(key)  # a lane is deleted when it empties
        return lane is not None and lane[0].id == entry_id and key not in self._busy

    def _offer(self, key: str) -> None:
        head = self._lanes[key][0]
        if head.available_at > 0.0:
            heapq.heappush(self._later, (head.available_at, head.id, key))
        else:
            heapq.heappush(self._ready, (head.id, key))
