"""The inbox in a real headless Chromium: one browser per session, a real Pishkhan per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from inbox.accounts import create_agent
from storage.config import StorageConfig
from tests.fixtures.services import IN_CI
from tests.fixtures.stack import PASSWORD, Agent, Stack, running_stack

CHROMIUM = Path(os.environ.get("PISHKHAN_CHROMIUM", "/usr/bin/chromium"))
HAVE_CHROMIUM = CHROMIUM.exists()
SCREENSHOTS = Path(__file__).parent / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: .ci/run must install it)")
    pytest.skip(reason)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    """One Chromium for the whole run (Debian's, never a downloaded one)."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[dev]')")
    if not HAVE_CHROMIUM:
        _missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Team:
    """A running Pishkhan with named agents who can log in from a browser."""

    stack: Stack
    base: str

    async def agent(
        self, email: str, name: str, *, role: str = "agent", online: bool = True
    ) -> Agent:
        async with self.stack.sessions.begin() as session:
            await create_agent(session, email=email, name=name, password=PASSWORD, role=role)
        agent = await self.stack.login(email)
        if online:
            status, _ = await agent.send("PUT", "/api/v1/me/presence", {"presence": "online"})
            assert status == 200
        return agent


@pytest_asyncio.fixture(loop_scope="session")
async def pishkhan(tmp_path: Path) -> AsyncIterator[Team]:
    storage = StorageConfig(
        url=f"sqlite+aiosqlite:///{tmp_path / 'pishkhan.db'}", sqlite_synchronous="normal"
    )
    async with running_stack(storage) as stack:
        yield Team(stack=stack, base=stack.base)


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS
