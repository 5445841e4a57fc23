"""The `pishkhan` command as an operator runs it: migrate, agent add, token, config errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pishkhan(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "inbox.cli",
            "--log-level",
            "WARNING",
            "--config",
            str(config),
            *args,
        ],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f'storage: {{url: "sqlite+aiosqlite:///{tmp_path}/p.db"}}\n', encoding="utf-8")
    return path


def test_migrate_then_add_agents_with_given_and_generated_passwords(config: Path) -> None:
    assert pishkhan(config, "migrate").stdout.strip() == "Database is up to date."
    given = pishkhan(
        config,
        "agent",
        "add",
        "Sara@Example.com",
        "--name",
        "سارا",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long password here\n",
    )
    assert given.returncode == 0, given.stderr
    assert "Added admin sara@example.com" in given.stdout
    assert "Password" not in given.stdout
    generated = pishkhan(config, "agent", "add", "ali@example.com")
    assert generated.returncode == 0
    assert "Password: " in generated.stdout
    again = pishkhan(config, "agent", "add", "ali@example.com")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    short = pishkhan(config, "agent", "add", "x@example.com", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    token = pishkhan(config, "agent", "token", "sara@example.com")
    assert token.stdout.startswith("pk_")


def test_a_bad_config_exits_with_the_key_named(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("server:\n  port: -1\nchannels:\n  - {type: webform}\n", encoding="utf-8")
    result = pishkhan(path, "migrate")
    assert result.returncode == 2
    assert "server.port" in result.stderr
    assert "channels[0].name: Field required" in result.stderr
