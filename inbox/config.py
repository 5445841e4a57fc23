"""The one configuration loader: YAML, then `${ENV}` expansion, then frozen typed models."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from channels.registry import CHANNEL_TYPES, AnyChannelConfig
from inbox.uploads import UploadsConfig
from routing.config import RoutingConfig
from storage.config import QueueConfig, StorageConfig

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_ONLY = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and what is wrong."""


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    secure_cookies: bool = False
    """Mark the session cookie Secure; turn on whenever the inbox is served over HTTPS."""
    session_hours: float = Field(default=12.0, gt=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    uploads: UploadsConfig = UploadsConfig()
    """Files agents attach to replies (their own limits; `max_body_bytes` is for JSON)."""


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    queue: QueueConfig = QueueConfig()
    routing: RoutingConfig = RoutingConfig()
    channels: tuple[AnyChannelConfig, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        names = [channel.name for channel in self.channels]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"channels: the name {name!r} is used twice")
        teams = {team.name for team in self.routing.teams}
        for index, channel in enumerate(self.channels):
            if channel.team is not None and channel.team not in teams:
                raise ValueError(f"channels[{index}].team: no team named {channel.team!r}")
        by_name = {channel.name: channel for channel in self.channels}
        # Web forms answer by email (`reply_channel`); chats follow up by email when the
        # visitor has left (`away_reply_channel`).
        for index, channel in enumerate(self.channels):
            for key in ("reply_channel", "away_reply_channel"):
                target = getattr(channel, key, None)
                if target is None:
                    continue
                where = f"channels[{index}].{key}: {channel.name!r} replies through {target!r}"
                other = by_name.get(target)
                if other is None:
                    raise ValueError(f"{where}, but no channel is named {target!r}")
                if other.type != "email":
                    raise ValueError(
                        f"{where}, a {other.type} channel; it must be an email channel"
                    )
                if channel.enabled and not other.enabled:
                    raise ValueError(f"{where}, which is disabled (enabled: false)")
        for index, name in enumerate(self.routing.csat.channels):
            if name not in by_name:
                raise ValueError(f"routing.csat.channels[{index}]: no channel is named {name!r}")
        return self


def expand_env(value: Any, path: str = "") -> Any:
    """Replace `${NAME}` in every string with the environment variable's value."""
    if isinstance(value, dict):
        return {k: expand_env(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"{path}: environment variable {name} is not set")
            return os.environ[name]

        return _ENV.sub(lookup, value)
    return value


def _where(location: tuple[int | str, ...]) -> str:
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in CHANNEL_TYPES or str(part).startswith("function-"):
            continue  # the discriminated-union branch, not a key the user wrote
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _secrets_from_env(data: dict[str, Any]) -> None:
    """A secret written into the file ends up in backups and version control: refuse it."""
    channels = data.get("channels")
    for index, channel in enumerate(channels if isinstance(channels, list) else []):
        if not isinstance(channel, dict) or channel.get("type") not in CHANNEL_TYPES:
            continue
        model = CHANNEL_TYPES[channel["type"]][0]
        for name, field in model.model_fields.items():
            value = channel.get(name)
            is_secret = field.annotation in (SecretStr, SecretStr | None)
            if is_secret and isinstance(value, str) and not _ENV_ONLY.fullmatch(value):
                raise ConfigError(
                    f"channels[{index}].{name}: a secret; write it as ${{ENV_NAME}} and set "
                    "that environment variable, never the value itself"
                )


def parse_config(data: Any) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("(top level): expected a mapping of keys")
    _secrets_from_env(data)
    try:
        return Config.model_validate(expand_env(data))
    except ValidationError as exc:
        lines = [f"{_where(error['loc'])}: {error['msg']}" for error in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | Path) -> Config:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(data)
