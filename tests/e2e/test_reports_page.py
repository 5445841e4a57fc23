"""The reports page in a real Chromium, in Persian and in English: a custom period, summary
cards that match the API, charts drawn by the page, tables with CSV downloads. Screenshots land
in tests/e2e/screenshots/reports-fa.png and reports-en.png."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Team
from tests.e2e.test_inbox import login
from tests.routing.test_reports import seed_month

pytestmark = pytest.mark.asyncio(loop_scope="session")

PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


async def show_october(page: Any) -> None:
    await page.fill("input[name=from]", "2026-10-01")
    await page.fill("input[name=to]", "2026-10-31")
    await page.click("[data-apply]")
    await page.wait_for_selector(".custom-period.active")
    await page.wait_for_selector(".stat-card")


async def whole_page(page: Any, path: Path) -> None:
    """The page scrolls inside its own pane: make the window as tall as the report first."""
    height = await page.eval_on_selector(".reports", "node => node.scrollHeight")
    await page.set_viewport_size({"width": 1360, "height": height + 80})
    await page.screenshot(path=str(path))
    await page.set_viewport_size({"width": 1360, "height": 900})


async def test_reports_page_in_persian_and_english(
    browser: Any, pishkhan: Team, screenshots: Path
) -> None:
    await seed_month(pishkhan.stack.sessions)
    admin = await pishkhan.agent("boss@example.com", "مدیر پشتیبانی", role="admin", online=False)
    _, figures = await admin.get("/api/v1/reports/summary?from=2026-10-01&to=2026-10-31")
    totals = figures["totals"]
    page = await login(browser, pishkhan.base, "boss@example.com")
    await page.set_viewport_size({"width": 1360, "height": 900})
    await page.click("[data-page=reports]")
    await page.wait_for_selector(".stat-card")
    await show_october(page)

    period = await page.text_content(".period-line")
    assert "۹ مهر ۱۴۰۵" in period and "۹ آبان ۱۴۰۵" in period  # 1 and 31 October, in Jalali
    opened = await page.text_content("[data-figure=opened] .stat-value")
    assert opened == str(totals["opened"]).translate(PERSIAN_DIGITS)
    resolved = await page.text_content("[data-figure=resolved] .stat-value")
    assert resolved == str(totals["resolved"]).translate(PERSIAN_DIGITS)
    assert await page.locator(".volume-chart rect[data-series=opened]").count() == 31
    heights = await page.eval_on_selector_all(
        ".volume-chart rect[data-series=opened]", "bars => bars.map(b => +b.getAttribute('height'))"
    )
    assert max(heights) > 0
    # Persian reads right to left: the first day's bar is the rightmost.
    xs = await page.eval_on_selector_all(
        ".volume-chart rect[data-series=opened]", "bars => bars.map(b => +b.getAttribute('x'))"
    )
    assert xs == sorted(xs, reverse=True)
    assert await page.locator(".heat-map rect").count() == 7 * 24
    assert await page.locator(".rating-bars rect").count() == 5
    assert await page.locator(".report-table[data-report=teams] tbody tr").count() == 3
    assert "فروش" in await page.text_content(".report-table[data-report=teams]")
    async with page.expect_download() as download_info:
        await page.click(".report-table[data-report=agents] .csv-link")
    download = await download_info.value
    assert download.suggested_filename == "pishkhan-agents-2026-10-01-2026-10-31.csv"
    data = await asyncio.to_thread(Path(await download.path()).read_bytes)
    assert data.startswith(b"\xef\xbb\xbf") and "مریم".encode() in data
    await whole_page(page, screenshots / "reports-fa.png")

    await page.click("#lang-switch")
    await page.wait_for_selector("text=Conversations opened")
    await page.wait_for_selector(".stat-card")
    assert "1 October 2026" in await page.text_content(".period-line")
    assert await page.text_content("[data-figure=opened] .stat-value") == str(totals["opened"])
    xs = await page.eval_on_selector_all(
        ".volume-chart rect[data-series=opened]", "bars => bars.map(b => +b.getAttribute('x'))"
    )
    assert xs == sorted(xs)
    await whole_page(page, screenshots / "reports-en.png")
    assert page.errors == []
    await page.context.close()
