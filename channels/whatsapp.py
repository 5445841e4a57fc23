"""The WhatsApp Cloud API channel: one business phone number. Meta posts to
`/channels/meta/<name>/webhook`; replies leave through `/{phone-number-id}/messages`.

Parsing is `channels.whatsapp_events`'s, sending `channels.whatsapp_send`'s, the webhook and
media handling `channels.meta_channel`'s."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from channels.base import Delivery, DeliveryError, Outbound, Template
from channels.meta_channel import MetaChannel, MetaConfig
from channels.meta_events import Draft, MediaRef
from channels.meta_graph import GraphError
from channels.whatsapp_events import parse_entry
from channels.whatsapp_send import WhatsAppSender

logger = logging.getLogger(__name__)


class TemplateConfig(BaseModel):
    """An approved message template, as named in WhatsApp Manager."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: str = Field(default="fa", pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")
    parameters: tuple[str, ...] = ()
    """Names of its body placeholders, in order ({{1}}, {{2}}, …)."""
    text: str = ""
    """Its body with the placeholders, shown to agents as a preview."""


class WhatsAppConfig(MetaConfig):
    type: Literal["whatsapp"] = "whatsapp"
    phone_number_id: str = Field(pattern=r"^[0-9]{1,32}$")
    """The number's id from WhatsApp Manager (not the phone number itself)."""
    templates: tuple[TemplateConfig, ...] = ()


class WhatsAppChannel(MetaChannel):
    platform = "whatsapp"
    object_name = "whatsapp_business_account"
    media_authorized = True

    def __init__(self, config: WhatsAppConfig) -> None:
        super().__init__(config)
        self.whatsapp = config
        self.templates: tuple[Template, ...] = tuple(
            Template(name=t.name, language=t.language, parameters=t.parameters, text=t.text)
            for t in config.templates
        )

    def parse_entry(self, entry: Mapping[str, Any]) -> list[Draft]:
        return parse_entry(
            entry,
            phone_number_id=self.whatsapp.phone_number_id,
            default_country=self.config.default_country,
        )

    async def media_url(self, ref: MediaRef) -> str:
        """WhatsApp's media ids are looked up first: the answer holds a short-lived URL."""
        assert self.graph is not None
        answer = await self.graph.call("GET", ref.media_id, retry=False)
        url = answer.get("url")
        if not isinstance(url, str) or not url:
            raise GraphError("Meta gave no URL for the media", code=None, permanent=False)
        return url

    async def send(self, message: Outbound) -> Delivery:
        """Deliver a reply. Raises `DeliveryError`: permanent when Meta refuses it (outside
        the 24-hour window, blocked, bad token, policy), transient when retrying can help."""
        if self.graph is None or self._cursors is None:
            raise DeliveryError("channel is not running")
        sender = WhatsAppSender(
            self.graph,
            channel=self.name,
            phone_number_id=self.whatsapp.phone_number_id,
            cursors=self._cursors,
            blobs=self._blobs,
        )
        try:
            delivery = await sender.send(message)
        except DeliveryError as exc:
            self.failed(exc.reason)
            raise
        self.sent_now()
        return delivery
