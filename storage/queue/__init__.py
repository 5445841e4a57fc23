"""The unified queue: one interface, a database-table backend and a Redis Streams backend."""

from storage.queue.base import Handler, Item, Queue, QueueStats

__all__ = ["Handler", "Item", "Queue", "QueueStats"]
