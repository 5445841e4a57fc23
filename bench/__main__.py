"""Run the benchmarks: `pishkhan bench`, `make bench`, or `python -m bench [--quick]`."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import email, faq, inbox, ingest, meta, report, reports, scale, telegram, webchat
from bench.procs import REPO
from bench.settings import Settings, load


def machine() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    dirty = "+changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "aiohttp": version("aiohttp"),
        "sqlalchemy": version("sqlalchemy"),
        "commit": git("rev-parse", "--short", "HEAD") + dirty,
        "load_average": os.getloadavg()[0],
    }


CHANNELS = {
    "email": email,
    "telegram": telegram,
    "meta": meta,
    "webchat": webchat,
    "faq": faq,
    "reports": reports,
    "scale": scale,
}
"""The benchmarks each issue added, each measured against its own ceiling in the same run."""


async def run(settings: Settings) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pishkhan-bench-") as tmp:
        workdir = Path(tmp)
        pipe, pipe_latency, database = await ingest.pipeline(settings, workdir)
        bare, bare_latency = await ingest.bare(settings, workdir, rate=pipe_latency.rate)
        reads = await inbox.run(settings, workdir)
        channels: dict[str, Any] = {}
        for name, module in CHANNELS.items():
            print(f"… {name}", flush=True)
            (workdir / name).mkdir()
            channels[name] = await module.run(settings, workdir / name)
    return {
        "settings": settings.as_dict(),
        "ingest": {
            "pipeline": pipe.as_dict(),
            "bare": bare.as_dict(),
            "ratio": pipe.per_second / bare.per_second,
        },
        "latency": {"pipeline": pipe_latency.as_dict(), "bare": bare_latency.as_dict()},
        "database": database,
        "inbox": reads,
        "channels": channels,
    }


def main() -> None:
    settings = load()
    started = time.perf_counter()
    print(f"Running the benchmarks ({'quick' if settings.quick else 'full'})…", flush=True)
    result = {"machine": machine(), **asyncio.run(run(settings))}
    result["seconds"] = time.perf_counter() - started
    result["machine"]["load_average_after"] = os.getloadavg()[0]
    print(report.table(result))
    print(report.inbox_table(result))
    for name, module in CHANNELS.items():
        print()
        print(module.table(result["channels"][name]))
    print(f"\n{result['seconds']:.0f} s in all; results in {report.save(result)}")


if __name__ == "__main__":
    main()
