"""What the benchmark runs: sizes from the command line or `PISHKHAN_BENCH_*` variables."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

ENV = "PISHKHAN_BENCH_"


@dataclass(frozen=True)
class Settings:
    requests: int = 3000
    """Posts in the measured ingest run (the same number against both servers)."""
    concurrency: int = 64
    """Posts in flight during the ingest run."""
    warmup: int = 300
    latency_seconds: float = 10.0
    """How long the paced latency run lasts, at half the pipeline's measured rate."""
    latency_max: int = 3000
    synchronous: str = "full"
    """The SQLite `synchronous` setting of the pipeline's database (the default is `full`)."""
    inbox_conversations: int = 100_000
    """Conversations seeded for the inbox read run (list, open, search)."""
    inbox_messages: int = 1_000_000
    inbox_samples: int = 200
    """Requests timed per inbox figure."""
    email_messages: int = 5000
    """Mails in the Dovecot mailbox the email channel reads (`bench/email.py`)."""
    email_replies: int = 1000
    """Replies the email channel sends to the SMTP server (at most `email_messages`)."""
    webchat_visitors: int = 1000
    """Website chat visitors connected at once (`bench/webchat.py`)."""
    webchat_replies: int = 1000
    """Agent replies pushed to chat visitors in the agent → visitor run."""
    quick: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


QUICK = Settings(
    requests=600,
    concurrency=32,
    warmup=100,
    latency_seconds=4.0,
    latency_max=800,
    inbox_conversations=2000,
    inbox_messages=20_000,
    inbox_samples=50,
    email_messages=300,
    email_replies=300,
    webchat_visitors=200,
    webchat_replies=200,
    quick=True,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Pishkhan's benchmarks. Every option also reads PISHKHAN_BENCH_<NAME> "
        "(e.g. PISHKHAN_BENCH_QUICK=1, PISHKHAN_BENCH_REQUESTS=5000), which is how to set them "
        "through `pishkhan bench`.",
    )
    parser.add_argument("--quick", action="store_true", help="a small run (about 30 s)")
    parser.add_argument("--requests", type=int)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--latency-seconds", type=float)
    parser.add_argument("--latency-max", type=int)
    parser.add_argument("--synchronous", choices=("full", "normal"))
    parser.add_argument("--inbox-conversations", type=int)
    parser.add_argument("--inbox-messages", type=int)
    parser.add_argument("--inbox-samples", type=int)
    parser.add_argument("--email-messages", type=int)
    parser.add_argument("--email-replies", type=int)
    parser.add_argument("--webchat-visitors", type=int)
    parser.add_argument("--webchat-replies", type=int)
    return parser


def _bench_argv() -> list[str]:
    # `python -m bench --quick` passes its own options; under `pishkhan bench` (runpy, argv
    # untouched) the arguments are pishkhan's, already parsed, so only the environment counts.
    return sys.argv[1:] if sys.argv[0].endswith("__main__.py") else []


def load(argv: Sequence[str] | None = None) -> Settings:
    args = _parser().parse_args(_bench_argv() if argv is None else argv)
    quick = args.quick or os.environ.get(ENV + "QUICK", "") not in ("", "0", "false")
    base = QUICK if quick else Settings()
    values = base.as_dict()
    for name, default in values.items():
        if name == "quick":
            continue
        given = getattr(args, name, None)
        if given is None and (raw := os.environ.get(ENV + name.upper())):
            given = type(default)(raw)
        if given is not None:
            values[name] = given
    settings = Settings(**values)
    if settings.synchronous not in ("full", "normal"):
        raise SystemExit("synchronous: full or normal")
    if min(settings.requests, settings.concurrency, settings.latency_max) < 1:
        raise SystemExit("requests, concurrency and latency-max must be positive")
    return settings
