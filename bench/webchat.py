"""The website chat under load: many visitors connected at once to `pishkhan serve`, messages
visitor → agent (until the agent's `/api/v1/events` WebSocket shows them) and agent → visitor
(from the reply POST until the visitor's socket has it), against a bare aiohttp WebSocket echo
server driven the same way in the same run (the ceiling).

The echo server is this module too: `python -m bench.webchat --echo` prints its serving line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import procs
from bench.load import percentile
from bench.settings import Settings

ORIGIN = "http://shop.bench"
WS_PATH = "/channels/webchat/site/ws"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIMEOUT = 120.0
REPLY_CONCURRENCY = 32
PACED_SECONDS = 4.0


def write_config(workdir: Path, visitors: int) -> Path:
    config = workdir / "webchat.yaml"
    data = {
        "server": {"host": "127.0.0.1", "port": 0},
        "storage": {"url": f"sqlite+aiosqlite:///{workdir / 'webchat.db'}"},
        "routing": {
            "business_hours": {"timezone": "UTC", "week": {d: ["00:00-24:00"] for d in DAYS}}
        },
        "channels": [
            {
                "type": "webchat",
                "name": "site",
                "allowed_origins": [ORIGIN],
                "connections_per_ip": visitors + 50,
                "messages_per_minute": 1000,
                "ip_messages_per_minute": 10_000_000,
            }
        ],
    }
    config.write_text(json.dumps(data, indent=2))
    return config


@dataclass
class Visitor:
    """One connected visitor: when each text it waits for arrived on its socket."""

    index: int
    ws: aiohttp.ClientWebSocketResponse
    visitor_id: str = ""
    arrived: dict[str, float] = field(default_factory=dict)
    acked: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            frame = json.loads(message.data)
            if frame.get("type") == "message" and frame.get("text"):
                self.arrived.setdefault(frame["text"], now)
            elif frame.get("type") in ("ack", "echo"):
                self.acked.setdefault(frame.get("client_id", ""), now)
            self.changed.set()

    async def wait(self, done: Callable[[], bool]) -> None:
        while not done():
            self.changed.clear()
            await self.changed.wait()


@dataclass
class Run:
    """What one direction measured: how many, how long, and each one's delay."""

    count: int
    seconds: float
    delays: list[float]
    answered: list[float] = field(default_factory=list)
    """Agent replies only: how long each reply POST took to be answered."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "seconds": self.seconds,
            "per_second": self.count / self.seconds,
            "p50": percentile(self.delays, 50),
            "p99": percentile(self.delays, 99),
            "lost": self.count - len(self.delays),
            "post_p50": percentile(self.answered, 50) if self.answered else None,
        }


async def _connect(
    http: aiohttp.ClientSession, url: str, count: int, hello: Callable[[int], dict[str, Any]]
) -> list[Visitor]:
    """Open `count` sockets, 100 at a time, and say hello on each."""
    visitors: list[Visitor] = []

    async def one(index: int) -> Visitor:
        ws = await http.ws_connect(url, headers={"Origin": ORIGIN}, heartbeat=None)
        await ws.send_str(json.dumps(hello(index)))
        welcome = json.loads((await ws.receive()).data)
        visitor = Visitor(index, ws, visitor_id=str(welcome.get("visitor", index)))
        return visitor

    for start in range(0, count, 100):
        visitors += await asyncio.gather(*(one(i) for i in range(start, min(count, start + 100))))
    return visitors


async def _burst(
    visitors: Sequence[Visitor],
    tag: str,
    arrived: Callable[[str], float | None],
    wait_all: Callable[[list[str]], Awaitable[None]],
) -> Run:
    """Every visitor sends one message at once; done when every text has `arrived`."""
    texts = [f"{tag}-{v.index} سلام، سفارشم کجاست؟" for v in visitors]
    started = time.perf_counter()
    await asyncio.gather(
        *(
            v.ws.send_str(
                json.dumps({"type": "message", "client_id": f"{tag}{v.index}", "text": t})
            )
            for v, t in zip(visitors, texts, strict=True)
        )
    )
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(TIMEOUT):
            await wait_all(texts)
    times = [t for t in (arrived(text) for text in texts) if t is not None]
    if not times:
        raise RuntimeError(f"{tag}: nothing arrived")
    return Run(len(texts), max(times) - started, [t - started for t in times])


async def _paced(
    visitors: Sequence[Visitor],
    tag: str,
    rate: float,
    arrived: Callable[[str], float | None],
    wait_all: Callable[[list[str]], Awaitable[None]],
) -> Run:
    """One message from each visitor in turn at `rate` a second, each on time whatever the
    server does (an open loop): the latency a visitor sees when the server is not saturated."""
    count = max(20, min(len(visitors), int(rate * PACED_SECONDS)))
    texts = [f"{tag}-{i} کی می‌رسد؟" for i in range(count)]
    sent: dict[str, float] = {}
    started = time.perf_counter()
    for i, text in enumerate(texts):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[text] = time.perf_counter()
        frame = {"type": "message", "client_id": f"{tag}{i}", "text": text}
        await visitors[i].ws.send_str(json.dumps(frame))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(TIMEOUT):
            await wait_all(texts)
    delays = [t - sent[text] for text in texts if (t := arrived(text)) is not None]
    if not delays:
        raise RuntimeError(f"{tag}: nothing arrived")
    return Run(count, time.perf_counter() - started, delays)


class AgentEvents:
    """The agent's `/api/v1/events` stream: when each message text first showed up, and in
    which conversation. Like the inbox's own client, it reconnects with `since=` when the
    server cuts it off for falling behind (a burst of a thousand visitors does that)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.stored_at: dict[str, float] = {}
        """Agent replies: when their `message.created` arrived (the reply is committed)."""
        self.conversation: dict[str, int] = {}
        self.changed = asyncio.Event()
        self.reconnects = 0
        self._since = 0

    async def run(self, http: aiohttp.ClientSession, url: str, auth: dict[str, str]) -> None:
        while True:
            query = f"?since={self._since}" if self._since else ""
            async with http.ws_connect(url + query, headers=auth, max_msg_size=0) as ws:
                await self._read(ws)
            self.reconnects += 1

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            event = json.loads(message.data)
            if event.get("type") == "replay.truncated":
                self._since = int(event["next_since"])
                return  # continue the replay from there
            if isinstance(event.get("id"), int):
                self._since = max(self._since, event["id"])
            if event.get("type") == "message.created":
                data = event["data"]["message"]
                if data["direction"] == "out":
                    self.stored_at.setdefault(data["text"], now)
                if data["direction"] == "in":
                    self.at.setdefault(data["text"], now)
                    self.conversation[data["text"]] = data["conversation_id"]
                    self.changed.set()

    async def wait(self, texts: list[str]) -> None:
        while any(t not in self.at for t in texts):
            self.changed.clear()
            await self.changed.wait()


async def pipeline(settings: Settings, workdir: Path) -> dict[str, Any]:
    count = settings.webchat_visitors
    config = write_config(workdir, count)
    server, token = await procs.start_pishkhan(config, capacity=10_000_000)
    auth = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.put(
                server.url + "/api/v1/me/presence", json={"presence": "online"}, headers=auth
            ) as response:
                if response.status != 200:
                    raise RuntimeError(f"going online failed: {await response.text()}")
            events_url = server.url.replace("http", "ws", 1) + "/api/v1/events"
            agent = AgentEvents()
            tasks = [asyncio.create_task(agent.run(http, events_url, auth), name="bench-events")]
            started = time.perf_counter()
            url = server.url.replace("http", "ws", 1) + WS_PATH
            visitors = await _connect(
                http, url, count, lambda i: {"type": "hello", "token": None, "last_id": 0}
            )
            connect_seconds = time.perf_counter() - started
            tasks += [asyncio.create_task(v.read(), name="bench-visitor") for v in visitors]
            try:
                await _burst(visitors, "warm", agent.at.get, agent.wait)
                inbound = await _burst(visitors, "in", agent.at.get, agent.wait)
                rate = inbound.count / inbound.seconds / 2
                paced = await _paced(visitors, "paced", rate, agent.at.get, agent.wait)
                outbound = await _replies(
                    http,
                    visitors,
                    settings.webchat_replies,
                    post=lambda text, i: http.post(
                        f"{server.url}/api/v1/conversations/"
                        f"{agent.conversation[f'in-{i} سلام، سفارشم کجاست؟']}/messages",
                        json={"text": text},
                        headers=auth,
                    ),
                )
                # The channel's own part: from the committed reply to the visitor's socket.
                arrivals = {t: v.arrived[t] for v in visitors for t in v.arrived}
                pushed = [
                    arrivals[text] - at
                    for text, at in agent.stored_at.items()
                    if text in arrivals and text.startswith("reply-")
                ]
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.gather(*(v.ws.close() for v in visitors), return_exceptions=True)
    finally:
        await server.stop()
    return {
        "stored_to_visitor": {
            "samples": len(pushed),
            "p50": percentile(pushed, 50) if pushed else None,
            "p99": percentile(pushed, 99) if pushed else None,
        },
        "visitors": count,
        "connect_seconds": connect_seconds,
        "agent_stream_reconnects": agent.reconnects,
        "visitor_to_agent": inbound.as_dict(),
        "paced": {"rate": rate, **paced.as_dict()},
        "agent_to_visitor": outbound.as_dict(),
    }


async def _replies(
    http: aiohttp.ClientSession,
    visitors: Sequence[Visitor],
    count: int,
    *,
    post: Callable[[str, int], Any],
) -> Run:
    """`count` replies, `REPLY_CONCURRENCY` in flight, each to the next visitor in turn; the
    delay is from the POST to the text on the visitor's socket."""
    jobs = iter(range(count))
    sent: dict[str, float] = {}
    answered: list[float] = []
    targets: dict[str, Visitor] = {}
    started = time.perf_counter()

    async def worker() -> None:
        for n in jobs:
            visitor = visitors[n % len(visitors)]
            text = f"reply-{n} ارسال شد"
            targets[text], sent[text] = visitor, time.perf_counter()
            async with post(text, visitor.index) as response:
                await response.read()
                if response.status not in (200, 201, 202):
                    raise RuntimeError(f"reply failed: {response.status}")
            answered.append(time.perf_counter() - sent[text])

    await asyncio.gather(*(worker() for _ in range(REPLY_CONCURRENCY)))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(TIMEOUT):
            for text, visitor in targets.items():
                await visitor.wait(lambda t=text, v=visitor: t in v.arrived)  # type: ignore[misc]
    delays = [v.arrived[t] - sent[t] for t, v in targets.items() if t in v.arrived]
    if not delays:
        raise RuntimeError("no reply reached a visitor")
    last = max(v.arrived[t] for t, v in targets.items() if t in v.arrived)
    return Run(count, last - started, delays, answered)


async def echo(settings: Settings, workdir: Path, *, rate: float) -> dict[str, Any]:
    """The same visitors and the same pattern against the bare echo server."""
    count = settings.webchat_visitors
    server = await procs.start(["-m", "bench.webchat", "--echo"], log=workdir / "echo.log")
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            url = server.url.replace("http", "ws", 1) + "/ws"
            visitors = await _connect(http, url, count, lambda i: {"type": "hello", "index": i})
            tasks = [asyncio.create_task(v.read(), name="bench-visitor") for v in visitors]

            def arrived(text: str) -> float | None:
                index = int(text.split(" ")[0].split("-")[1])
                return visitors[index].arrived.get(text)

            async def wait_all(texts: list[str]) -> None:
                for text in texts:
                    index = int(text.split(" ")[0].split("-")[1])
                    await visitors[index].wait(lambda t=text, i=index: t in visitors[i].arrived)  # type: ignore[misc]

            try:
                await _burst(visitors, "warm", arrived, wait_all)
                inbound = await _burst(visitors, "in", arrived, wait_all)
                paced = await _paced(visitors, "paced", rate, arrived, wait_all)
                outbound = await _replies(
                    http,
                    visitors,
                    settings.webchat_replies,
                    post=lambda text, i: http.post(f"{server.url}/push/{i}", json={"text": text}),
                )
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.gather(*(v.ws.close() for v in visitors), return_exceptions=True)
    finally:
        await server.stop()
    return {
        "visitor_to_agent": inbound.as_dict(),
        "paced": {"rate": rate, **paced.as_dict()},
        "agent_to_visitor": outbound.as_dict(),
    }


async def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    pipe = await pipeline(settings, workdir)
    bare = await echo(settings, workdir, rate=pipe["paced"]["rate"])
    return {
        "pipeline": pipe,
        "echo": bare,
        "ratio": {
            way: pipe[way]["per_second"] / bare[way]["per_second"]
            for way in ("visitor_to_agent", "agent_to_visitor")
        },
    }


def table(result: dict[str, Any]) -> str:
    pipe, bare, ratio = result["pipeline"], result["echo"], result["ratio"]
    rows = [("webchat, " + f"{pipe['visitors']} visitors connected", "pishkhan", "echo", "ratio")]
    for way, label in (
        ("visitor_to_agent", "visitor → agent's events WS, all at once"),
        ("paced", f"  paced at {pipe['paced']['rate']:.0f}/s"),
        ("agent_to_visitor", "agent reply POST → visitor WS"),
    ):
        p, b = pipe[way], bare[way]
        if way != "paced":
            rows.append(
                (
                    f"{label}: msgs/s",
                    f"{p['per_second']:.0f}/s",
                    f"{b['per_second']:.0f}/s",
                    f"{ratio[way] * 100:.1f} %",
                )
            )
        else:
            rows.append((label, "", "", ""))
        rows.append(
            (
                "  p50 / p99 latency",
                f"{p['p50'] * 1000:.0f} / {p['p99'] * 1000:.0f} ms",
                f"{b['p50'] * 1000:.0f} / {b['p99'] * 1000:.0f} ms",
                "",
            )
        )
        if p["post_p50"] is not None:
            rows.append(
                (
                    "  p50 reply POST answered",
                    f"{p['post_p50'] * 1000:.0f} ms",
                    f"{b['post_p50'] * 1000:.0f} ms",
                    "",
                )
            )
        if p["lost"]:
            rows.append(("  lost", str(p["lost"]), str(b["lost"]), ""))
    stored = pipe["stored_to_visitor"]
    if stored["p50"] is not None:
        rows.append(
            (
                "  of which reply stored → visitor WS",
                f"{stored['p50'] * 1000:.0f} / {stored['p99'] * 1000:.0f} ms",
                "",
                "",
            )
        )
    rows.append(("connecting all visitors", f"{pipe['connect_seconds']:.1f} s", "", ""))
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows
    )


# The ceiling: a bare aiohttp WebSocket echo, with a push endpoint for the other direction. ----

SOCKETS = web.AppKey("sockets", dict[int, web.WebSocketResponse])


async def _echo_ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    index = -1
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        frame = json.loads(message.data)
        if frame.get("type") == "hello":
            index = int(frame["index"])
            request.app[SOCKETS][index] = ws
            await ws.send_str(json.dumps({"type": "welcome", "visitor": str(index)}))
        else:
            await ws.send_str(json.dumps({"type": "message", "text": frame.get("text", "")}))
    request.app[SOCKETS].pop(index, None)
    return ws


async def _push(request: web.Request) -> web.Response:
    body = await request.json()
    ws = request.app[SOCKETS].get(int(request.match_info["index"]))
    if ws is None:
        return web.json_response({"error": "no such visitor"}, status=404)
    await ws.send_str(json.dumps({"type": "message", "text": body["text"]}))
    return web.json_response({"status": "sent"}, status=201)


async def _serve_echo() -> None:
    app = web.Application()
    app[SOCKETS] = {}
    app.router.add_get("/ws", _echo_ws)
    app.router.add_post("/push/{index}", _push)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"Bare aiohttp echo is serving on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for ws in list(app[SOCKETS].values()):
            await ws.close()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webchat", description=__doc__)
    parser.add_argument("--echo", action="store_true", help="serve the bare echo ceiling")
    parser.add_argument("--quick", action="store_true", help="run the benchmark, small")
    args = parser.parse_args()
    if args.echo:
        asyncio.run(_serve_echo())
        return
    import tempfile

    from bench.settings import QUICK

    settings = QUICK if args.quick else Settings()
    with tempfile.TemporaryDirectory(prefix="pishkhan-webchat-bench-") as tmp:
        result = asyncio.run(run(settings, Path(tmp)))
    print(table(result))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
