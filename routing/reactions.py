"""The reactions that run inside every unit of work that records events (see
`routing.events.Reaction`), in this order: automation rules first (they may set the team,
priority or labels an SLA policy is chosen by), then SLA clocks, then satisfaction surveys."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from routing.auto_acknowledge import AutoAcknowledge
from routing.automation import automation
from routing.config import RoutingConfig
from routing.csat import Surveys, survey_modes
from routing.events import Reaction
from routing.sla import SlaReaction
from storage.models import utcnow


def build_reactions(
    config: RoutingConfig,
    *,
    clock: Callable[[], datetime] = utcnow,
    channels: Sequence[Any] = (),
    public_url: str = "",
) -> tuple[Reaction, ...]:
    """The reactions for this configuration, in the order they run. `channels`: the channels'
    configs (how each asks for a rating); `public_url`: where survey links in emails point."""
    reactions: list[Reaction] = [automation(config, clock=clock)]  # rules first
    if config.sla.policies:  # then the SLA clocks, on the team and priority rules have set
        reactions.append(SlaReaction(config, clock=clock))
    if config.auto_acknowledge.enabled:
        reactions.append(AutoAcknowledge(config, clock=clock))
    if config.csat.channels:  # satisfaction surveys last: after rules and SLA clocks
        modes = survey_modes(channels, config.csat)
        reactions.append(Surveys(config.csat, modes, public_url=public_url, clock=clock))
    return tuple(reactions)
