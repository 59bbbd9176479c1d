"""A real headless browser for the live board's tests: the system's chromium (Debian's
package, which `.ci/run` installs), driven by Playwright; never a downloaded browser."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

ROOT = Path(__file__).resolve().parents[2]


def chromium_path() -> str:
    """The system chromium, or the test is skipped saying why."""
    found = shutil.which("chromium")
    if found is None:
        pytest.skip(
            "Debian's chromium is not installed (apt-get install chromium; .ci/run does): "
            "the live board's browser tests need it"
        )
    return found


def artifacts_dir() -> Path:
    """Where the tests leave screenshots: ``$STATIONWATCH_TEST_ARTIFACTS`` or
    ``test-artifacts/`` in the checkout (ignored by git)."""
    folder = Path(os.environ.get("STATIONWATCH_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def launched() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const t of list.getEntries()) {
    window.__longTasks.push({start: t.startTime, duration: t.duration});
  }
}).observe({type: "longtask", buffered: true});
"""


async def open_board(browser: Browser, url: str, *, watch_long_tasks: bool = False) -> Page:
    """The board in a new page, with a marker that a reload would wipe and a count of the
    page's navigations; with ``watch_long_tasks``, the main thread's tasks over 50 ms are
    collected in ``window.__longTasks``."""
    page = await browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    if watch_long_tasks:
        await page.add_init_script(LONG_TASKS)
    page.navigations = 0  # type: ignore[attr-defined]

    def navigated(frame: Any) -> None:
        if frame == page.main_frame:
            page.navigations += 1  # type: ignore[attr-defined]

    page.on("framenavigated", navigated)
    await page.goto(url)
    await page.evaluate("() => { window.__loadedOnce = 'yes'; }")
    return page


async def counts(page: Page) -> dict[str, int]:
    """The counts by liveness the page shows."""
    shown: dict[str, int] = await page.evaluate(
        """() => Object.fromEntries(
            [...document.querySelectorAll('#counts .n')].map(
                (cell) => [cell.id.replace('count-', ''), Number(cell.textContent)]))"""
    )
    return shown


async def dot(page: Page, station_id: str) -> dict[str, Any]:
    """A station's dot: its liveness, its computed fill colour and its tooltip."""
    found: dict[str, Any] = await page.evaluate(
        """(id) => {
            const el = document.querySelector(`#map circle[data-id="${id}"]`);
            if (!el) return null;
            return {liveness: el.getAttribute('data-liveness'),
                    fill: getComputedStyle(el).fill,
                    title: el.querySelector('title').textContent};
        }""",
        station_id,
    )
    return found


async def screenshot(page: Page, name: str) -> Path:
    path = artifacts_dir() / name
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"{path} is too small to show the board"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


RED = "rgb(215, 25, 28)"  # --offline in board.css
GREEN = "rgb(26, 152, 80)"  # --online
