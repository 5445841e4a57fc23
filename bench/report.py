"""The benchmark's table and its JSON record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def table(result: dict[str, Any]) -> str:
    machine, settings = result["machine"], result["settings"]
    ingest, latency = result["ingest"], result["latency"]
    pipe, bare = ingest["pipeline"], ingest["bare"]
    lp, lb = latency["pipeline"], latency["bare"]
    rows = [
        ("figure", "pipeline", "ceiling (bare aiohttp)", "ratio", "aim"),
        (
            "ingest msgs/s, POST → stored+assigned",
            f"{pipe['per_second']:.0f}/s",
            f"{bare['per_second']:.0f}/s",
            f"{ingest['ratio'] * 100:.1f} %",
            "≥ 40 %" + (" ✓" if ingest["ratio"] >= 0.40 else " ✗"),
        ),
        (
            "  of which: POST answered 202 (queued)",
            f"{pipe['accepted_per_second']:.0f}/s",
            f"{bare['per_second']:.0f}/s",
            f"{pipe['accepted_per_second'] / bare['per_second'] * 100:.1f} %",
            "",
        ),
        (
            f"latency p50 @ {lp['rate']:.0f}/s, POST → agent WS",
            _ms(lp["p50"]),
            _ms(lb["p50"]) + " (POST round trip)",
            f"{lp['p50'] / lb['p50']:.1f}× bare",
            "",
        ),
        (
            f"latency p99 @ {lp['rate']:.0f}/s, POST → agent WS",
            _ms(lp["p99"]),
            _ms(lb["p99"]) + " (POST round trip)",
            f"{lp['p99'] / lb['p99']:.1f}× bare",
            "< 50 ms" + (" ✓" if lp["p99"] < 0.050 else " ✗"),
        ),
        (
            "  pipeline POST round trip p50 / p99",
            f"{_ms(lp['post_p50'])} / {_ms(lp['post_p99'])}",
            f"{_ms(lb['p50'])} / {_ms(lb['p99'])}",
            f"{lp['post_p99'] / lb['p99']:.1f}× bare (p99)",
            "",
        ),
    ]
    lost = lp["posts"] - lp["samples"]
    if lost:
        rows.append(
            (
                "  LOST: message.created never on agent WS",
                f"{lost} of {lp['posts']}",
                "0",
                f"{lost / lp['posts'] * 100:.1f} %",
                "0 ✗",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"Pishkhan bench — {machine['nproc']} cores, Python {machine['python']}, "
        f"{machine['platform']}, commit {machine['commit']}, load average "
        f"{machine['load_average']:.2f} before / {machine['load_average_after']:.2f} after",
        f"settings: {settings['requests']} posts at concurrency {settings['concurrency']} "
        f"(warm-up {settings['warmup']}); latency: {lp['posts']} posts paced at "
        f"{lp['rate']:.0f}/s (half the saturated rate); SQLite synchronous="
        f"{settings['synchronous']}; one agent online; every post from a new sender; "
        "bare req/s is the best of 3 runs",
        "",
    ]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def save(result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "latest.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return path


def inbox_table(result: dict[str, Any]) -> str:
    """Inbox read latency over the API on a large seeded inbox, per backend."""
    settings, reads = result["settings"], result.get("inbox")
    if not reads:
        return ""
    aims = {"list": 0.050, "open": 0.050, "search": 0.200}
    lines = [
        f"inbox reads — {settings['inbox_conversations']} conversations, "
        f"{settings['inbox_messages']} messages, {settings['inbox_samples']} requests each",
    ]
    for backend, figures in reads.items():
        if "error" in figures:
            lines.append(f"  {backend}: skipped ({figures['error']})")
            continue
        lines.append(f"  {backend} (seeded in {figures['seed_seconds']:.0f} s):")
        for role in ("admin", "agent"):
            for name, aim in aims.items():
                f = figures[role][name]
                mark = "✓" if f["p95"] < aim else "✗"
                lines.append(
                    f"    {role:<5} {name:<7} p50 {_ms(f['p50']):>9}  p95 {_ms(f['p95']):>9}  "
                    f"aim p95 < {aim * 1000:.0f} ms {mark}"
                )
    return "\n".join(lines)
