"""The unified queue: one interface, a database-table backend and a Redis Streams backend."""

from storage.queue.base import Handled, Handler, Item, Queue, QueueStats

__all__ = ["Handled", "Handler", "Item", "Queue", "QueueStats"]
