"""One round of the automation reaction: what its conditions and actions read and write, with
each conversation and customer read once per round."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from routing.actions import customer_labels
from routing.config import RoutingConfig
from routing.events import EventLog, Happened
from storage.models import Conversation, Customer


@dataclass
class Run:
    """One round of the reaction: the rules applied to the events that triggered them."""

    session: Session
    log: EventLog
    config: RoutingConfig
    now: datetime
    events: Sequence[Happened]
    _conversations: dict[int, Conversation | None] = field(default_factory=dict)
    _customers: dict[int, tuple[Customer | None, list[str]]] = field(default_factory=dict)

    def conversation(self, conversation_id: int) -> Conversation | None:
        if conversation_id not in self._conversations:
            self._conversations[conversation_id] = self.session.get(
                Conversation, conversation_id, populate_existing=True
            )
        return self._conversations[conversation_id]

    def customer(self, customer_id: int) -> tuple[Customer | None, list[str]]:
        """The customer and their labels."""
        if customer_id not in self._customers:
            self._customers[customer_id] = (
                self.session.get(Customer, customer_id),
                customer_labels(self.session, customer_id),
            )
        return self._customers[customer_id]

    def forget_conversations(self) -> None:
        """After a rollback: the conversations read so far are read again."""
        self._conversations.clear()
