"""The live board in a real browser with the simulator's whole district (1,419 stations), served
by the real API server app from a replica filled as the worker's feed fills it: it draws every
station without jank, follows changes without a reload, says when the data is old or the API
cannot be reached, and its time helpers read ISO times in any offset."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page

from stationwatch.broker import free_port
from streams.api import Replica, build_app
from tests.board_replica import filled_replica, fleet_states, report, with_liveness
from tests.integration.browser import RED, counts, dot, launched, open_board, screenshot

pytestmark = pytest.mark.integration

DISTRICT = 1419  # the seed district's stations
FIRST_DRAW_MS = 1000  # budget for drawing 1,419 dots the first time (measured: 30-50 ms)
UPDATE_MS = 100  # budget for drawing one poll's changes (measured: 7-10 ms)
LONG_TASK_MS = 200  # longest main-thread task after the first draw, layout and paint included
GOING_OFFLINE = 50


class Served:
    def __init__(self, replica: Replica, runner: web.AppRunner, url: str) -> None:
        self.replica = replica
        self.runner = runner
        self.url = url


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async for running in launched():
        yield running


@contextlib.asynccontextmanager
async def serving(replica: Replica) -> AsyncIterator[Served]:
    """The real API server app for ``replica``, on a port of its own."""
    runner = web.AppRunner(build_app(replica))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Served(replica, runner, f"http://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()
        await replica.close()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serving(filled_replica(fleet_states(DISTRICT))) as running:
        yield running


def liveness_counts(replica: Replica) -> dict[str, int]:
    found = Counter(entry.liveness for entry in replica.index)
    return {k: found.get(k, 0) for k in ("online", "stale", "offline", "unknown", "not_monitored")}


async def stats(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = await page.evaluate("() => ({...window.stationBoard.stats})")
    return found


async def test_the_whole_district_is_drawn_and_followed_without_jank(
    browser: Browser, served: Served
) -> None:
    page = await open_board(browser, served.url, watch_long_tasks=True)
    await page.wait_for_function(
        "(n) => document.querySelectorAll('#map circle.dot').length === n",
        arg=DISTRICT,
        timeout=15_000,
    )
    assert await counts(page) == liveness_counts(served.replica)
    first = await stats(page)
    drawn_at = await page.evaluate("() => performance.now()")
    assert first["maxRenderMs"] < FIRST_DRAW_MS, first
    # Chinese names reach the tooltips as text
    assert (await dot(page, "SY-0001"))["title"].startswith("空港祥云工会驿站 (SY-0001)")

    # Stations go offline: the next poll turns them red, and only their dots are touched.
    online = [e for e in served.replica.index if e.liveness == "online"][:GOING_OFFLINE]
    now = datetime.now(UTC)
    for entry in online:
        served.replica.index.put(entry.station_id, 0, with_liveness(entry.state, "offline", now))
    report(served.replica)
    expected = liveness_counts(served.replica)
    await page.wait_for_function(
        "(n) => document.getElementById('count-offline').textContent === String(n)",
        arg=expected["offline"],
        timeout=10_000,
    )
    assert await counts(page) == expected
    for entry in online[:5]:
        shown = await dot(page, entry.station_id)
        assert shown["liveness"] == "offline"
        assert shown["fill"] == RED
    # the newest offline stations head the list
    listed = await page.eval_on_selector_all("#offline-list li", "(rows) => rows.length")
    assert listed == min(expected["offline"], 200)
    head = await page.eval_on_selector("#offline-list li", "(row) => row.getAttribute('data-id')")
    assert head in {e.station_id for e in online}
    after = await stats(page)
    # Every poll redraws; the ones after the first only change what changed.
    polls_since = after["renders"] - first["renders"]
    assert polls_since >= 1
    assert after["lastRenderMs"] < UPDATE_MS, after
    # the browser's own view: no task (script, style, layout, paint) held the page up since
    long_tasks = await page.evaluate(
        "(since) => window.__longTasks.filter((t) => t.start > since)", drawn_at
    )
    assert all(t["duration"] < LONG_TASK_MS for t in long_tasks), long_tasks
    assert await page.evaluate("() => window.__loadedOnce") == "yes"  # no reload
    assert page.navigations == 1  # type: ignore[attr-defined]
    await screenshot(page, "board-district.png")
    await page.close()


async def test_the_banner_says_when_data_is_old_and_when_the_api_is_gone(
    browser: Browser, served: Served
) -> None:
    page = await open_board(browser, served.url)
    await page.wait_for_function("() => window.stationBoard.stats.renders >= 1", timeout=15_000)
    assert await page.is_hidden("#banner")

    served.replica.status_at = time.monotonic() - 60  # the worker stopped reporting
    await page.wait_for_selector("#banner[data-problem='old']", timeout=10_000)
    assert "has not reported" in await page.inner_text("#banner")
    assert await page.evaluate("() => document.body.classList.contains('outdated')")

    report(served.replica)  # it reports again
    await page.wait_for_selector("#banner", state="hidden", timeout=10_000)

    await served.runner.cleanup()  # the API server is gone
    await page.wait_for_selector("#banner[data-problem='unreachable']", timeout=15_000)
    text = await page.inner_text("#banner")
    assert "Cannot reach the stationwatch API" in text
    assert "The board shows the state of" in text
    # the last picture stays, marked as outdated
    drawn = await page.evaluate("() => document.querySelectorAll('#map circle.dot').length")
    assert drawn == DISTRICT
    assert await page.evaluate("() => document.body.classList.contains('outdated')")
    await screenshot(page, "board-unreachable.png")
    await page.close()


@pytest.mark.parametrize(
    ("text", "wall"),
    [
        pytest.param("2026-12-02T15:04:05+08:00", "15:04:05", id="plus-eight"),
        pytest.param("2026-12-02T07:04:05Z", "07:04:05", id="zulu"),
        pytest.param("2026-12-02T02:04:05.123456-05:00", "02:04:05", id="micro-minus-five"),
        pytest.param("2026-12-02T07:04:05.5+00:00", "07:04:05", id="tenths"),
    ],
)
async def test_times_are_read_in_the_offset_they_are_written_in(
    browser: Browser, served: Served, text: str, wall: str
) -> None:
    """The instant, and the wall-clock time as written (not in the browser's zone)."""
    epoch_ms = int(datetime.fromisoformat(text).timestamp() * 1000)
    page = await open_board(browser, served.url)
    parsed = await page.evaluate("(t) => window.stationBoard.parseIso(t)", text)
    assert parsed["epoch"] == epoch_ms
    assert parsed["time"] == wall
    assert (
        await page.evaluate(
            "([a, b]) => window.stationBoard.formatSince(a, b)",
            [text, "2026-12-02T15:16:06+08:00"],
        )
        == f"since {wall} (12 min)"
    )
    await page.close()


async def test_a_time_of_another_day_shows_its_date(browser: Browser, served: Served) -> None:
    page = await open_board(browser, served.url)
    shown = await page.evaluate(
        "([a, b]) => window.stationBoard.formatSince(a, b)",
        ["2026-11-30T23:50:00+08:00", "2026-12-02T00:10:00+08:00"],
    )
    assert shown == "since 2026-11-30 23:50:00 (24 h 20 min)"
    await page.close()


async def test_names_are_shown_as_text_never_as_markup(browser: Browser) -> None:
    """A registry name is data: markup in it is shown, not run (and the page's policy would
    refuse an inline script anyway)."""
    [state] = fleet_states(1)
    hostile = '空港<img src=x onerror="window.__owned=1">驿站<b>粗</b>'
    state = with_liveness(
        {**state, "profile": {**state["profile"], "name": hostile}}, "offline", datetime.now(UTC)
    )
    async with serving(filled_replica([state])) as running:
        page = await open_board(browser, running.url)
        await page.wait_for_selector("#offline-list li", timeout=15_000)
        assert await page.inner_text("#offline-list li .name") == hostile
        assert (
            await page.eval_on_selector_all("#offline-list img, #offline-list b", "e => e.length")
            == 0
        )
        assert (await dot(page, state["station_id"]))["title"].startswith(hostile)
        assert await page.evaluate("() => window.__owned") is None
        await page.close()


async def test_with_a_token_the_page_asks_for_it_once(browser: Browser) -> None:
    secret = "board-token"  # noqa: S105 - a test's token
    async with serving(filled_replica(fleet_states(30), api_token=secret)) as running:
        page = await open_board(browser, running.url)
        await page.wait_for_selector("#token-form", state="visible", timeout=15_000)
        assert await page.get_attribute("#banner", "data-problem") == "unreachable"
        assert "bearer token" in await page.inner_text("#banner")
        await page.fill("#token", secret)
        await page.click("#token-form button")
        await page.wait_for_function(
            "() => document.querySelectorAll('#map circle.dot').length === 30", timeout=10_000
        )
        await page.wait_for_selector("#banner", state="hidden", timeout=10_000)
        assert await page.is_hidden("#token-form")
        # kept for the next visit
        await page.reload()
        await page.wait_for_function(
            "() => document.querySelectorAll('#map circle.dot').length === 30", timeout=10_000
        )
        assert await page.is_hidden("#token-form")
        await page.close()
