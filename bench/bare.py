"""The ingest ceiling: a bare aiohttp server whose one handler answers 202 JSON at once.

Run as `python -m bench.bare [--host H] [--port P]`; prints `... serving on URL` when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import uuid

from aiohttp import web


async def accept(request: web.Request) -> web.Response:
    # Read the body like the web form channel does, so both servers do the same HTTP work.
    await request.read()
    return web.json_response({"id": str(uuid.uuid4()), "status": "queued"}, status=202)


async def serve(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_post("/channels/webform/{name}", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = runner.addresses[0][1]
    print(f"Bare aiohttp is serving on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
