"""Every channel type by the name config.yaml's `type:` uses. Adding a channel: one line here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from channels.api import ApiChannel, ApiConfig
from channels.base import Channel
from channels.config import ChannelConfig
from channels.email import EmailChannel, EmailConfig
from channels.messenger import InstagramConfig, MessengerChannel, MessengerConfig
from channels.telegram import TelegramChannel, TelegramConfig
from channels.webchat import WebchatChannel, WebchatConfig
from channels.webform import WebformChannel, WebformConfig
from channels.whatsapp import WhatsAppChannel, WhatsAppConfig

CHANNEL_TYPES: dict[str, tuple[type[ChannelConfig], Callable[[Any], Channel]]] = {
    "webform": (WebformConfig, WebformChannel),
    "api": (ApiConfig, ApiChannel),
    "email": (EmailConfig, EmailChannel),
    "telegram": (TelegramConfig, TelegramChannel),
    "webchat": (WebchatConfig, WebchatChannel),
    "whatsapp": (WhatsAppConfig, WhatsAppChannel),
    "messenger": (MessengerConfig, MessengerChannel),
    "instagram": (InstagramConfig, MessengerChannel),
}

AnyChannelConfig = Annotated[
    WebformConfig
    | ApiConfig
    | EmailConfig
    | TelegramConfig
    | WebchatConfig
    | WhatsAppConfig
    | MessengerConfig
    | InstagramConfig,
    Field(discriminator="type"),
]
"""What config.yaml's `channels:` entries may be; a new channel type adds itself here too."""


def build_channel(config: ChannelConfig) -> Channel:
    _, factory = CHANNEL_TYPES[config.type]  # type: ignore[attr-defined]
    return factory(config)
