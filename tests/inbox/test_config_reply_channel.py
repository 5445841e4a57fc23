"""A web form's `reply_channel` must name an email channel of the same config: checked when the
config loads, with a message naming both channels, not when the first reply fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from inbox.config import ConfigError, parse_config

ENV = "PISHKHAN_TEST_MAIL_PASSWORD"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(ENV, "secret")
    yield


def email(name: str = "support", **extra: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "name": name,
        "address": f"{name}@example.com",
        "imap_host": "imap.example.com",
        "imap_username": name,
        "imap_password": f"${{{ENV}}}",
        "smtp_host": "smtp.example.com",
        **extra,
    }


def form(reply_channel: str | None, **extra: Any) -> dict[str, Any]:
    return {"type": "webform", "name": "contact", "reply_channel": reply_channel, **extra}


def error(channels: list[dict[str, Any]]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config({"channels": channels})
    return str(caught.value)


def test_a_form_replying_through_an_email_channel_loads() -> None:
    config = parse_config({"channels": [form("support"), email("support")]})
    assert [c.name for c in config.channels] == ["contact", "support"]
    assert parse_config({"channels": [form(None)]}).channels[0].reply_channel is None  # type: ignore[union-attr]


def test_a_missing_reply_channel_is_named_with_the_form() -> None:
    message = error([form("suport"), email("support")])
    assert "channels[0].reply_channel" in message
    assert "'contact'" in message and "'suport'" in message
    assert "no channel is named 'suport'" in message


def test_a_reply_channel_that_is_not_email_is_refused() -> None:
    message = error([form("other"), {"type": "webform", "name": "other"}])
    assert "channels[0].reply_channel" in message
    assert "'contact'" in message and "'other'" in message
    assert "a webform channel; it must be an email channel" in message
    message = error([form("contact")])  # itself
    assert "it must be an email channel" in message


def test_a_disabled_reply_channel_is_refused_for_an_enabled_form() -> None:
    message = error([form("support"), email("support", enabled=False)])
    assert "channels[0].reply_channel" in message and "disabled" in message
    # Both off: nothing will ever be sent through it, nothing to refuse.
    parse_config({"channels": [form("support", enabled=False), email("support", enabled=False)]})
