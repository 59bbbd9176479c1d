"""The live board end to end, as an office would use it: a real worker (and its API server
process) on the real broker and database, stations with Chinese names sending heartbeats,
and the board open in a real headless browser (the system's chromium). When one station
falls silent its dot turns red, the counts and the offline list follow, all without a reload;
screenshots are kept as test artifacts."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from stationwatch.broker import EmbeddedBroker
from tests.factories import dumps, heartbeat, profile
from tests.integration.browser import (
    GREEN,
    RED,
    counts,
    dot,
    launched,
    open_board,
    screenshot,
)
from tests.integration.harness import Producer, WorkerProcess, wait_for, worker_env

pytestmark = pytest.mark.integration

STALE_AFTER, OFFLINE_AFTER = 3, 6  # heartbeat intervals of 1 s
NAMES = [
    ("空港祥云工会驿站", "空港街道", 40.0801, 116.5842),
    ("天竺镇花园党群服务中心工会驿站", "天竺镇", 40.0602, 116.5823),
    ("后沙峪镇幸福里超市工会驿站", "后沙峪镇", 40.1081, 116.5312),
    ("仁和镇站前快递工会驿站", "仁和镇", 40.1183, 116.6851),
    ("顺鑫石门市场果市管理部24小时货车司机工会驿站", "南法信镇", 40.1252, 116.6061),
]
WITHOUT_DEVICE = ("石园街道建新餐饮工会驿站", "石园街道", 40.1210, 116.6420)


@dataclass
class Beats:
    """Heartbeats every half second for the stations in ``beating``."""

    producer: Producer
    beating: set[str] = field(default_factory=set)
    seq: Counter[str] = field(default_factory=Counter)

    async def run(self) -> None:
        while True:
            now = datetime.now(UTC)
            for sid in sorted(self.beating):
                self.seq[sid] += 1
                await self.producer.send(
                    "station.heartbeat", sid, dumps(heartbeat(sid, now, self.seq[sid]))
                )
            await self.producer.flush()
            await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async for running in launched():
        yield running


async def board_of(worker: WorkerProcess) -> dict[str, Any] | None:
    answer = await worker.get("/board.json")
    return answer.json() if answer.status_code == 200 else None


async def test_a_station_that_goes_offline_turns_red_without_a_reload(
    browser: Browser, broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    env = worker_env(
        kafka_url=broker.url, database_url=database_url, token=unique, data_dir=tmp_path / "data"
    )
    env.update(
        STATIONWATCH_STALE_AFTER=str(STALE_AFTER),
        STATIONWATCH_OFFLINE_AFTER=str(OFFLINE_AFTER),
        STATIONWATCH_TICK_INTERVAL_S="0.25",
    )
    token = unique[:5].upper()
    beating = {f"BD-{token}{i:02d}": entry for i, entry in enumerate(NAMES)}
    quiet = f"BD-{token}{len(NAMES):02d}"
    names = {sid: entry[0] for sid, entry in beating.items()} | {quiet: WITHOUT_DEVICE[0]}
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        await worker.wait_healthy()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            for sid, (name, street, lat, lon) in [*beating.items(), (quiet, WITHOUT_DEVICE)]:
                message = profile(
                    sid,
                    name=name,
                    street=street,
                    location={"lat": lat, "lon": lon},
                    heartbeat_interval_s=None if sid == quiet else 1,
                )
                await producer.send("station.registry", sid, dumps(message))
            await producer.flush()
            beats = Beats(producer, set(beating))
            sending = asyncio.create_task(beats.run())
            try:
                await _watch_the_board(worker, browser, beats, names, quiet)
            finally:
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
    finally:
        worker.stop()


async def _watch_the_board(
    worker: WorkerProcess, browser: Browser, beats: Beats, names: dict[str, str], quiet: str
) -> None:
    everyone_online = {
        "online": len(names) - 1,
        "stale": 0,
        "offline": 0,
        "unknown": 0,
        "not_monitored": 1,
    }

    async def settled() -> dict[str, Any] | None:
        board = await board_of(worker)
        return board if board and board["by_liveness"] == everyone_online else None

    board = await wait_for(settled, timeout_s=60, what="every beating station online")
    assert {s["id"]: s["name"] for s in board["stations"]} == names
    assert all(s["x"] is not None for s in board["stations"])

    page = await open_board(browser, f"{worker.url}/")
    await page.wait_for_function(
        "(n) => document.querySelectorAll('#map circle.dot').length === n",
        arg=len(names),
        timeout=15_000,
    )
    assert await counts(page) == everyone_online
    assert await page.inner_text("#count-total") == str(len(names))
    for sid, name in names.items():
        shown = await dot(page, sid)
        assert shown["title"].startswith(f"{name} ({sid})"), shown
        assert shown["liveness"] == ("not_monitored" if sid == quiet else "online")
    silent = sorted(set(names) - {quiet})[1]
    assert (await dot(page, silent))["fill"] == GREEN
    assert await page.is_visible("#offline-none")
    assert await page.is_hidden("#banner")
    await screenshot(page, "board-live-online.png")

    beats.beating.discard(silent)  # its device falls silent

    await page.wait_for_function(
        """(id) => {
            const el = document.querySelector(`#map circle[data-id="${id}"]`);
            return el && el.getAttribute('data-liveness') === 'offline';
        }""",
        arg=silent,
        timeout=(OFFLINE_AFTER + 20) * 1000,
    )
    shown = await dot(page, silent)
    assert shown["fill"] == RED
    assert "offline since" in shown["title"]
    assert await counts(page) == {**everyone_online, "online": len(names) - 2, "offline": 1}
    rows = await page.eval_on_selector_all(
        "#offline-list li", "(rows) => rows.map((r) => [r.dataset.id, r.innerText])"
    )
    assert len(rows) == 1
    assert rows[0][0] == silent
    assert names[silent] in rows[0][1]
    assert "since" in rows[0][1]
    # every other station is still green
    for sid in set(names) - {silent, quiet}:
        assert (await dot(page, sid))["fill"] == GREEN
    assert await page.evaluate("() => window.__loadedOnce") == "yes"  # no reload
    assert page.navigations == 1  # type: ignore[attr-defined]
    path = await screenshot(page, "board-live-offline.png")
    assert path.exists()
    await page.close()
