"""Configuration: the committed file is valid, errors name the key, secrets come from ${ENV}."""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_config_is_the_working_embedded_default() -> None:
    config = load_config(ROOT / "config.yaml")
    assert config.storage.url.startswith("sqlite+aiosqlite:///")
    assert config.queue.url == "sql"
    assert config.server.port == 8080
    assert [(c.type, c.name) for c in config.channels] == [
        ("webform", "contact"),
        ("webchat", "site"),
    ]
    # The bot sits where its answers reach the customer: the chat, not the reply-less form.
    assert [c.name for c in config.channels if c.bot == "faq"] == ["site"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"server": {"port": "eighty"}}, "server.port: Input should be a valid integer"),
        ({"channels": [{"type": "webform"}]}, "channels[0].name: Field required"),
        ({"channels": [{"type": "fax", "name": "x"}]}, "channels[0]"),
        (
            {"channels": [{"type": "api", "name": "crm", "secret": "${SHORT_SECRET}"}]},
            "channels[0].secret: Value should have at least 16",
        ),
        (
            {"channels": [{"type": "api", "name": "crm", "secret": "written-into-the-file"}]},
            "channels[0].secret: a secret; write it as ${ENV_NAME}",
        ),
        ({"storage": {"ulr": "x"}}, "storage.ulr: Extra inputs are not permitted"),
        ({"routing": {"rules": [{"team": "ghosts"}]}}, "rules[0].team: no team named 'ghosts'"),
        (
            {"channels": [{"type": "webform", "name": "a"}, {"type": "webform", "name": "a"}]},
            "the name 'a' is used twice",
        ),
        ({"routing": {"business_hours": {"timezone": "Mars/Olympus"}}}, "unknown time zone"),
        ({"routing": {"business_hours": {"week": {"sat": ["17:00-09:00"]}}}}, "sat"),
    ],
)
def test_errors_name_the_key_and_the_problem(
    data: dict, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHORT_SECRET", "short")
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert message in str(error.value)


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"channels": [{"type": "api", "name": "crm", "secret": "${CRM_SECRET}"}]}
    with pytest.raises(
        ConfigError,
        match=r"channels\[0\].secret: environment variable "
        r"CRM_SECRET is not set",
    ):
        parse_config(data)
    monkeypatch.setenv("CRM_SECRET", "s3cret-from-the-environment")
    channel = parse_config(data).channels[0]
    assert channel.secret.get_secret_value() == "s3cret-from-the-environment"  # type: ignore[union-attr]
    assert "s3cret" not in repr(channel)


def test_unreadable_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
