"""The servers under test, each a process (group) of its own: `pishkhan serve` and the bare one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
_SERVING = re.compile(r"serving on (http://\S+)")
AGENT_EMAIL = "bench@example.com"
AGENT_PASSWORD = "bench password 1234"


@dataclass
class Server:
    """A started server: its URL and the file its stderr (the log) goes to."""

    process: asyncio.subprocess.Process
    url: str
    log: Path

    async def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if it has not left within 10 s."""
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


async def start(args: list[str], *, log: Path) -> Server:
    """Start `python ARGS` in a new process group; return once it prints its serving line
    (within 30 s)."""
    with log.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    try:
        url = await asyncio.wait_for(_serving_url(process), 30)
    except BaseException:
        server = Server(process, "", log)
        await server.stop()
        raise
    return Server(process, url, log)


async def _serving_url(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    while line := await process.stdout.readline():
        if match := _SERVING.search(line.decode()):
            return match.group(1)
    raise RuntimeError(f"server exited with {await process.wait()} before serving")


async def cli(config: Path, *args: str, stdin: str | None = None) -> str:
    """Run one `pishkhan --config CONFIG ...` command to completion; return its stdout."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "inbox.cli",
        "--config",
        str(config),
        "--log-level",
        "WARNING",
        *args,
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    if process.returncode != 0:
        raise RuntimeError(f"pishkhan {' '.join(args)} failed: {err.decode()}")
    return out.decode()


def write_config(
    workdir: Path, *, synchronous: str = "full", channels: list[dict[str, Any]] | None = None
) -> Path:
    """A config with `channels` (default: one web form) on a fresh SQLite file in `workdir`
    (JSON is YAML)."""
    config = workdir / "config.yaml"
    data = {
        "server": {"host": "127.0.0.1", "port": 0},
        "storage": {
            "url": f"sqlite+aiosqlite:///{workdir / 'pishkhan.db'}",
            "sqlite_synchronous": synchronous,
        },
        "channels": channels or [{"type": "webform", "name": "contact"}],
    }
    config.write_text(json.dumps(data, indent=2))
    return config


async def add_agent(config: Path, *, capacity: int) -> str:
    """Add the benchmark's agent with `capacity` (not online); return its API token."""
    await cli(
        config,
        "agent",
        "add",
        AGENT_EMAIL,
        "--capacity",
        str(capacity),
        "--password-stdin",
        stdin=AGENT_PASSWORD + "\n",
    )
    return (await cli(config, "agent", "token", AGENT_EMAIL)).strip()


async def serve(config: Path, *roles: str, log: str = "pishkhan.log") -> Server:
    """Start `pishkhan serve` (only `roles`, if given) and return once it serves."""
    role_args = [arg for role in roles for arg in ("--role", role)]
    return await start(
        ["-m", "inbox.cli", "--config", str(config), "--log-level", "WARNING", "serve", *role_args],
        log=config.parent / log,
    )


async def start_pishkhan(config: Path, *, capacity: int) -> tuple[Server, str]:
    """Add one agent with `capacity`, start `pishkhan serve`; return it and the agent's token.
    Does *not* put the agent online (the caller does, through the API)."""
    token = await add_agent(config, capacity=capacity)
    return await serve(config), token


async def start_bare(workdir: Path) -> Server:
    return await start(["-m", "bench.bare"], log=workdir / "bare.log")
