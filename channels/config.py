"""What every channel's configuration has in common; each adapter extends it with its own keys."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    """Unique among channels; appears in URLs and as the channel of every message."""
    team: str | None = None
    """The team whose queue this channel's conversations land in, unless a rule says otherwise."""
    bot: Literal["faq"] | None = None
    enabled: bool = True
