"""Fault test 5 (issue 12): the notifier killed between sending a notice and recording it.

Every notice is in flight at once: the receivers have it, the database is cut before the notifier
can record the delivery, and the notifier is killed (-9) while it waits for the database. The
next notifier does not know those notices were delivered and sends them again — at-least-once,
as any notifier that records after sending. What the receivers see:

- a receiver that honours ``Idempotency-Key`` takes every notice once: the copy carries the key
  of the first;
- one that does not gets each notice in flight at the kill at most twice (one duplicate).
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import psycopg
import pytest
from aiohttp import web

from stationwatch.broker import EmbeddedBroker, free_port
from tests.integration.harness import Producer, wait_for
from tests.integration.notifier_harness import (
    NotifierProcess,
    Sink,
    alert,
    notifier_env_for,
    send_alerts,
    station_ids,
    write_config,
)
from tests.integration.pgproxy import CuttableProxy
from tests.integration.reliability import Report, sizes

pytestmark = pytest.mark.integration

STATIONS_PER_STREET = 3


@dataclass
class KeyedSink(Sink):
    """A webhook receiver that reads ``Idempotency-Key``. With ``honour_keys`` it takes a key
    once (a repeat is answered 200, as the first was, and counted in ``replays``); without, it
    takes every request, as a receiver that knows nothing of keys. While ``held`` is set,
    answers wait for it to be cleared (the notices stay in flight)."""

    honour_keys: bool = True
    keys: list[str] = field(default_factory=list)  # the key of every body taken
    replays: int = 0
    arrived: int = 0  # requests, taken or not
    held: asyncio.Event | None = None  # set: answers wait until it is cleared
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> Self:
        async def hook(request: web.Request) -> web.Response:
            key = request.headers.get("Idempotency-Key", "")
            body = await request.json()
            self.arrived += 1
            if self.held is not None and self.held.is_set():
                await self.released.wait()
            if self.honour_keys and key and key in self.keys:
                self.replays += 1
                return web.Response(text="ok (a repeat: not taken again)")
            self.keys.append(key)
            return self.accept(body)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self


def two_receivers_config(keyed: str, plain: str) -> str:
    """Every offline alert to both receivers (one group per street each); the webhook's
    deadline is long, so a held answer is no failed try."""
    return f"""
route:
  receiver: keyed
  group_by: [street, kind]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - match: {{kind: offline}}
      receiver: keyed
      continue: true
    - match: {{kind: offline}}
      receiver: plain
receivers:
  - name: keyed
    webhook: {{url: "{keyed}", timeout: 60s}}
  - name: plain
    webhook: {{url: "{plain}", timeout: 60s}}
"""


@pytest.fixture
async def sinks() -> AsyncIterator[tuple[KeyedSink, KeyedSink]]:
    held = asyncio.Event()
    keyed = await KeyedSink(honour_keys=True, held=held).start()
    plain = await KeyedSink(honour_keys=False, held=held).start()
    yield keyed, plain
    keyed.released.set()
    plain.released.set()
    await keyed.stop()
    await plain.stop()


def delivered_notices(database_url: str, streets: list[str]) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT receiver, notice_id FROM stationwatch.deliveries "
            "WHERE outcome = 'delivered' AND group_labels->>'street' = ANY(%s)",
            (streets,),
        ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


@pytest.mark.parametrize("streets_count", sizes(reduced=3, full=20))
async def test_a_notifier_killed_between_sending_and_recording_repeats_a_notice_at_most_once(
    broker: EmbeddedBroker,
    database_url: str,
    tmp_path: Path,
    unique: str,
    sinks: tuple[KeyedSink, KeyedSink],
    report: Report,
    streets_count: int,
) -> None:
    keyed, plain = sinks
    assert keyed.held is not None
    parts = urlsplit(database_url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    via_proxy = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    config = write_config(tmp_path / "notify.yaml", two_receivers_config(keyed.url, plain.url))
    env = notifier_env_for(broker.url, via_proxy, unique, tmp_path, config)
    streets = [f"街道{unique[:4]}{n:02d}" for n in range(streets_count)]
    stations = {street: station_ids("NK", STATIONS_PER_STREET) for street in streets}
    notices = 2 * streets_count  # one per street and receiver
    start = datetime.now(UTC).replace(microsecond=0)
    first = NotifierProcess(env, tmp_path / "first.log").start()
    second = NotifierProcess(env, tmp_path / "second.log")
    sent = 0
    try:
        await first.wait_healthy()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            keyed.held.set()  # every notice stays in flight until the kill
            for street in streets:
                await send_alerts(
                    producer,
                    [alert(s, "offline", "firing", start, street=street) for s in stations[street]],
                )
                sent += STATIONS_PER_STREET

            async def all_in_flight() -> bool:
                return keyed.arrived + plain.arrived >= notices

            await wait_for(all_in_flight, timeout_s=60, what=f"{notices} notices in flight")
            # The receivers take them; the notifier cannot record that, and is killed so.
            await proxy.cut()
            keyed.released.set()
            plain.released.set()
            keyed.held.clear()

            async def recording_fails() -> bool:
                return "database unavailable" in first.log()

            await wait_for(recording_fails, timeout_s=30, what="the notifier to fail recording")
            first.stop(signal.SIGKILL)
            assert delivered_notices(database_url, streets) == []  # nothing recorded
            assert (len(keyed.bodies), len(plain.bodies)) == (streets_count, streets_count)
            await proxy.restore()
            second.start()
            await second.wait_healthy(timeout_s=90)

            async def resent() -> bool:
                return len(delivered_notices(database_url, streets)) == notices

            await wait_for(resent, timeout_s=90, what="every notice resent and recorded")
            # Afterwards the notifier goes on as usual: the streets' recoveries, once each.
            end = datetime.now(UTC)
            for street in streets:
                await send_alerts(
                    producer,
                    [
                        alert(s, "offline", "resolved", start, street=street, ends_at=end)
                        for s in stations[street]
                    ],
                )
                sent += STATIONS_PER_STREET

            async def recovered() -> bool:
                return len(delivered_notices(database_url, streets)) == 2 * notices

            await wait_for(recovered, timeout_s=60, what="every recovery notice recorded")
            await asyncio.sleep(3)  # an observation window: a repeated notice would arrive in it

        def per_street(sink: KeyedSink, status: str) -> Counter[str]:
            return Counter(b["groupLabels"]["street"] for b in sink.bodies if b["status"] == status)

        duplicates = sum(n - 1 for n in per_street(plain, "firing").values())
        report.record(
            events_sent=sent,
            rows_found=len(delivered_notices(database_url, streets)),
            duplicates=duplicates,
            alerts_expected=2 * notices,
            alerts_seen=len(keyed.bodies) + len(set(plain.keys)),
            replays_dropped_by_key=keyed.replays,
        )
        # Honoured keys: every notice taken once; the resent copies were dropped by their key.
        assert per_street(keyed, "firing") == dict.fromkeys(streets, 1)
        assert per_street(keyed, "resolved") == dict.fromkeys(streets, 1)
        assert keyed.replays == streets_count
        assert len(set(keyed.keys)) == len(keyed.keys) == 2 * streets_count
        # No keys: each notice in flight at the kill twice (the same key both times), the
        # later notices once.
        assert per_street(plain, "firing") == dict.fromkeys(streets, 2)
        assert per_street(plain, "resolved") == dict.fromkeys(streets, 1)
        assert set(Counter(plain.keys).values()) == {1, 2}
        assert duplicates == streets_count
        for body in keyed.bodies:
            street = body["groupLabels"]["street"]
            assert {a["labels"]["station_id"] for a in body["alerts"]} == set(stations[street])
    finally:
        first.stop()
        second.stop()
        await proxy.close()
